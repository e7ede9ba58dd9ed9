import IPVSModel
import NetfilterModel
import Translation

/// ipvs-proxy's nftables tables, `ip ipvs-proxy` and `ip6 ipvs-proxy` (``ProxyTable``): masquerade, hairpin,
/// filtering of service addresses and load-balancer source ranges around IPVS.
///
/// Found by name; no other table is ever read for planning, changed or flushed. A change of Services or
/// endpoints is a few element additions and deletions in one transaction, and a sync with nothing to change
/// sends none. A table whose chains, rules or set types are not as ipvs-proxy makes them is replaced whole, in one
/// transaction.
///
/// Reading a table back costs about as much as listing its elements, so a full read trusts the ruleset's
/// generation id: when it is the one the kernel gave after ipvs-proxy's own last transaction (or last read),
/// nothing has changed since, and the ledger's copy of the tables stands in for a listing.
package struct NFTablesPart: KernelPart {
    package let connection: any NFTablesConnection
    package let rules: MasqueradeRules
    /// Where the tables as ipvs-proxy last left them are kept between runs; `nil` keeps nothing.
    package let ledger: NFTablesLedger?

    package init(connection: any NFTablesConnection, rules: MasqueradeRules, ledger: NFTablesLedger?) {
        self.connection = connection
        self.rules = rules
        self.ledger = ledger
    }

    /// The tables of one family as they are in the kernel.
    ///
    /// Two table states are equal when their skeletons and every set's ``ElementsDigest`` are: a set is found
    /// unchanged without comparing its elements, and a table kept in the ledger leaves each set's elements unread
    /// (as the lines of the file) until a plan needs them, because its digest differs from what is wanted.
    package struct TableState: Sendable, Hashable {
        /// The digest of the table's skeleton (``TableSkeleton/digest``).
        package var skeletonDigest: String
        /// A digest of each set's elements (sets without elements left out).
        package private(set) var digests: [String: ElementsDigest]
        /// Each set's elements: known, or the ledger's lines, one element a line.
        private var contents: [String: Contents]
        /// Elements a listing showed that ipvs-proxy cannot name: the table is rewritten.
        package var hasUnreadableElements = false

        private enum Contents: Sendable {
            case known(Set<SetElement>)
            case lines(Substring)
        }

        package init(skeletonDigest: String, elements: [String: Set<SetElement>]) {
            self.skeletonDigest = skeletonDigest
            let nonEmpty = elements.filter { !$0.value.isEmpty }
            digests = nonEmpty.mapValues(ElementsDigest.init)
            contents = nonEmpty.mapValues(Contents.known)
        }

        /// A table as the ledger kept it: per set, its digest and its elements' lines.
        init(skeletonDigest: String, keptSets: [String: (digest: ElementsDigest, lines: Substring)]) {
            self.skeletonDigest = skeletonDigest
            digests = keptSets.mapValues(\.digest)
            contents = keptSets.mapValues { Contents.lines($0.lines) }
        }

        /// The elements of one set.
        package func elements(of set: String) -> Set<SetElement> {
            switch contents[set] {
            case .known(let elements): elements
            case .lines(let lines): Set(lines.split(separator: "\n").map { SetElement(text: String($0)) })
            case nil: []
            }
        }

        /// The names of the sets that hold elements.
        package var setNames: [String] { digests.keys.sorted() }

        /// One set's elements as the ledger writes them, one a line.
        func lines(of set: String) -> Substring {
            switch contents[set] {
            case .known(let elements): Substring(elements.map(\.text).sorted().joined(separator: "\n"))
            case .lines(let lines): lines
            case nil: ""
            }
        }

        package static func == (lhs: TableState, rhs: TableState) -> Bool {
            lhs.skeletonDigest == rhs.skeletonDigest && lhs.digests == rhs.digests
                && lhs.hasUnreadableElements == rhs.hasUnreadableElements
        }

        package func hash(into hasher: inout Hasher) {
            hasher.combine(skeletonDigest)
            hasher.combine(digests)
            hasher.combine(hasUnreadableElements)
        }
    }

    /// Both families' tables (`nil`: there is none) and the generation id they were seen at.
    package struct State: Sendable, Hashable {
        package var tables: [NFTFamily: TableState]
        package var generation: UInt32?
        /// Whether the tables were listed from the kernel (rather than trusted from the ledger or memory).
        package var wasListed = false

        package init(tables: [NFTFamily: TableState], generation: UInt32?, wasListed: Bool = false) {
            self.tables = tables
            self.generation = generation
            self.wasListed = wasListed
        }
    }

    /// What a sync did to the tables, or (in a dry run) would do.
    package struct Report: Sendable {
        /// The transactions sent (or, in a dry run, planned), in nft's syntax.
        package var transactions: [String] = []
        /// How many set elements were added and deleted.
        package var elementsAdded = 0
        package var elementsDeleted = 0
        /// The families whose table was made or replaced whole.
        package var replaced: [NFTFamily] = []
        /// Whether the tables were listed from the kernel.
        package var listed = false
        /// A transaction the kernel refused (nothing of it was applied).
        package var failures: [NetfilterError] = []
        /// How long committing the transactions took (on a thread of their own, alongside the IPVS batch).
        package var commitTime: Duration = .zero
    }

    /// The transaction, and the state it leads to.
    package struct Changes: PartChanges {
        package var transaction: NFTTransaction
        package var after: [NFTFamily: TableState]
        /// A generation to record with the state when there is no transaction (the tables were listed and are as
        /// wanted).
        package var confirmedGeneration: UInt32?

        package var isEmpty: Bool { transaction.isEmpty }

        /// The tables are found by name, not by the ownership record.
        package func owned(during owned: OwnershipRecord) -> OwnershipRecord { owned }
    }

    package struct Outcome: Sendable {
        /// The generation after the transaction; `nil` when it was refused.
        package var generation: UInt32?
        package var refusal: NetfilterError?
        package var commitTime: Duration = .zero
    }

    package func read(report: inout Report) throws -> State {
        let generation = try connection.generation()
        if let kept = ledger?.load(), kept.generation == generation {
            return kept
        }
        var tables: [NFTFamily: TableState] = [:]
        for family in NFTFamily.allCases {
            guard let listing = try connection.table(family, named: ProxyTable.name) else { continue }
            var table = TableState(skeletonDigest: listing.skeleton.digest, elements: listing.elements)
            table.hasUnreadableElements = !listing.unreadableElements.isEmpty
            tables[family] = table
        }
        report.listed = true
        return State(tables: tables, generation: generation, wasListed: true)
    }

    /// Only ipvs-proxy changes its tables between full syncs: memory is enough.
    package func recall(_ remembered: Remembered<State>, for desired: DesiredState, report: inout Report) -> State {
        remembered.state
    }

    package func plan(_ desired: DesiredState, observed: State, owned: OwnershipRecord) -> Changes {
        let wanted = Self.elements(of: desired, rules: rules)
        var transaction = NFTTransaction()
        var after: [NFTFamily: TableState] = [:]
        for family in NFTFamily.allCases {
            let table = ProxyTable.make(family, rules: rules)
            let elements = wanted[family] ?? [:]
            let digest = table.skeleton.digest
            let wantedTable = TableState(skeletonDigest: digest, elements: elements)
            after[family] = wantedTable
            guard let current = observed.tables[family], current.skeletonDigest == digest,
                !current.hasUnreadableElements
            else {
                transaction.steps.append(.replace(table, elements: elements))
                continue
            }
            var deleting: [String: Set<SetElement>] = [:]
            var adding: [String: Set<SetElement>] = [:]
            // Only a set whose digest differs is compared element by element.
            for set in table.sets where current.digests[set.name] != wantedTable.digests[set.name] {
                let have = current.elements(of: set.name)
                let want = elements[set.name] ?? []
                deleting[set.name] = have.subtracting(want)
                adding[set.name] = want.subtracting(have)
            }
            if !deleting.isEmpty || !adding.isEmpty {
                transaction.steps.append(.changeElements(table, deleting: deleting, adding: adding))
            }
        }
        let confirmed = transaction.isEmpty && observed.wasListed ? observed.generation : nil
        return Changes(transaction: transaction, after: after, confirmedGeneration: confirmed)
    }

    package func report(_ changes: Changes, into report: inout Report) {
        guard !changes.transaction.isEmpty else { return }
        report.transactions.append(changes.transaction.text)
        let counts = changes.transaction.elementCounts
        report.elementsAdded += counts.added
        report.elementsDeleted += counts.deleted
        for step in changes.transaction.steps {
            if case .replace(let table, _) = step { report.replaced.append(table.family) }
        }
    }

    /// Checks the transaction with the kernel without committing it (libnftables' dry run).
    package func check(_ changes: Changes) throws {
        guard !changes.transaction.isEmpty else { return }
        try connection.commit(changes.transaction, dryRun: true)
    }

    /// Commits the transaction; a refusal is an outcome, not an error: nothing of it was applied.
    package func apply(_ changes: Changes) throws -> Outcome {
        if changes.transaction.isEmpty {
            if let generation = changes.confirmedGeneration {
                try ledger?.save(State(tables: changes.after, generation: generation))
            }
            return Outcome(generation: changes.confirmedGeneration, refusal: nil)
        }
        let started = ContinuousClock.now
        do {
            try connection.commit(changes.transaction, dryRun: false)
        } catch {
            ledger?.forget()
            return Outcome(generation: nil, refusal: error, commitTime: ContinuousClock.now - started)
        }
        let commitTime = ContinuousClock.now - started
        // Read right after the commit; another writer in between would be mistaken for this one.
        let generation = try connection.generation()
        try ledger?.save(State(tables: changes.after, generation: generation))
        return Outcome(generation: generation, refusal: nil, commitTime: commitTime)
    }

    package func follow(
        _ changes: Changes, outcome: Outcome, observed: State, owned: inout OwnershipRecord, report: inout Report
    ) -> State? {
        report.commitTime += outcome.commitTime
        if let refusal = outcome.refusal {
            report.failures = [refusal]
            return nil
        }
        report.failures = []
        return State(tables: changes.after, generation: outcome.generation ?? observed.generation)
    }

    /// The elements each family's table should hold for `desired`.
    static func elements(of desired: DesiredState, rules: MasqueradeRules) -> [NFTFamily: [String: Set<SetElement>]] {
        typealias Name = ProxyTable.SetName
        var result: [NFTFamily: [String: Set<SetElement>]] = [:]
        func insert(_ element: SetElement, into set: String, family: AddressFamily) {
            result[family == .ipv4 ? .ip : .ip6, default: [:]][set, default: []].insert(element)
        }
        for address in desired.serviceAddresses {
            insert(SetElement(.address(address)), into: Name.serviceAddresses, family: address.family)
        }
        for family in NFTFamily.allCases {
            for network in rules.localNetworks(family, nodePodNetworks: desired.nodePodNetworks) {
                insert(SetElement(.network(network)), into: Name.localNetworks, family: family.addressFamily)
            }
        }
        for check in desired.healthChecks.values {
            let proto = UInt8(truncatingIfNeeded: TransportProtocol.tcp.rawValue)
            for family in check.localEndpoints.keys {
                insert(
                    SetElement(.transportProtocol(proto), .port(check.port)), into: Name.healthCheckNodePorts,
                    family: family)
            }
        }
        for virtual in desired.virtualServers.values {
            guard case .address(let transport, let address, let port) = virtual.server.key else { continue }
            let proto = UInt8(truncatingIfNeeded: transport.rawValue)
            let servicePort = [SetElement.Field.address(address), .transportProtocol(proto), .port(port)]
            switch virtual.kind {
            case .clusterIP:
                insert(SetElement(servicePort), into: Name.clusterIPs, family: address.family)
            case .externalIP, .loadBalancerIP:
                let set = virtual.keepsClientAddress ? Name.externalIPsLocal : Name.externalIPs
                insert(SetElement(servicePort), into: set, family: address.family)
                if !virtual.sourceRanges.isEmpty {
                    insert(SetElement(servicePort), into: Name.firewallPorts, family: address.family)
                    for range in Self.outermost(virtual.sourceRanges) {
                        insert(
                            SetElement(servicePort + [.network(range)]), into: Name.firewallAllowed,
                            family: address.family)
                    }
                }
            case .nodePort:
                if !virtual.keepsClientAddress {
                    insert(
                        SetElement(.transportProtocol(proto), .port(port)), into: Name.nodePorts, family: address.family
                    )
                }
            }
            for endpoint in virtual.localRealServers where endpoint.address.family == address.family {
                insert(
                    SetElement(
                        .address(endpoint.address), .transportProtocol(proto), .port(endpoint.port),
                        .address(endpoint.address)),
                    into: Name.hairpin, family: address.family)
            }
        }
        return result
    }

    /// The networks not inside another one of the list: an interval set refuses overlapping elements.
    static func outermost(_ networks: [IPNetwork]) -> [IPNetwork] {
        let distinct = Set(networks)
        return distinct.filter { network in !distinct.contains { $0 != network && $0.contains(network) } }.sorted()
    }
}
