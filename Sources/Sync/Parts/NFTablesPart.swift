import IPVSModel
import NetfilterModel
import ProxyRules

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
    private let connection: any NFTablesConnection
    package let rules: MasqueradeRules
    /// Where the tables as ipvs-proxy last left them are kept between runs; `nil` keeps nothing.
    private let ledger: NFTablesLedger?

    package init(connection: any NFTablesConnection, rules: MasqueradeRules, ledger: NFTablesLedger?) {
        self.connection = connection
        self.rules = rules
        self.ledger = ledger
    }

    /// Its transaction goes on a thread of its own: the kernel takes the nftables lock for it, not IPVS's.
    package var stage: PartStage { .alongside }
    package var phases: PartPhases {
        PartPhases(
            read: "read nftables", plan: "plan nftables", check: "check nftables", apply: "wait for nftables")
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

        /// Deletes and adds elements of one set (the deleted ones present, the added ones not), keeping its digest.
        mutating func change(_ set: String, deleting: Set<SetElement>, adding: Set<SetElement>) {
            var elements = self.elements(of: set)
            contents[set] = nil
            elements.subtract(deleting)
            elements.formUnion(adding)
            var digest = digests[set] ?? .empty
            for element in deleting {
                digest.count -= 1
                digest.sum &-= ElementsDigest.hash(element.text)
            }
            for element in adding {
                digest.count += 1
                digest.sum &+= ElementsDigest.hash(element.text)
            }
            digests[set] = elements.isEmpty ? nil : digest
            contents[set] = elements.isEmpty ? nil : .known(elements)
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
    package struct Report: PartReport {
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

        package init() {}

        package var failureDescriptions: [String] { failures.map(\.description) }
    }

    /// What a cleanup deletes: both families' `ipvs-proxy` tables, found by name.
    package struct Removal: PartReport {
        package var deletedTables: [NFTFamily] = []
        /// The deletion the kernel refused.
        package var failures: [NetfilterError] = []

        package init() {}

        package var failureDescriptions: [String] { failures.map(\.description) }
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

    package func removal(owned: OwnershipRecord) throws -> Removal {
        var removal = Removal()
        removal.deletedTables = try NFTFamily.allCases.filter {
            try connection.table($0, named: ProxyTable.name) != nil
        }
        return removal
    }

    package func remove(_ removal: inout Removal, owned: inout OwnershipRecord) throws {
        if !removal.deletedTables.isEmpty {
            let deletion = NFTTransaction(removal.deletedTables.map { .delete(ProxyTable.make($0, rules: rules)) })
            do {
                try connection.commit(deletion, dryRun: false)
            } catch {
                removal.failures = [error]
            }
        }
        ledger?.forget()
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
    package func recall(
        _ state: inout State, previous: DesiredState?, for desired: DesiredState, scope: SyncScope,
        report: inout Report
    ) {}

    package func plan(_ desired: DesiredState, observed: State, owned: OwnershipRecord, scope: SyncScope) -> Changes {
        if case .touched(let touched) = scope, let changes = planTouched(touched, to: desired, observed: observed) {
            return changes
        }
        return planEverything(desired, observed: observed)
    }

    /// Every set of both tables against what `desired` wants in it (only the sets whose digest differs are compared
    /// element by element).
    private func planEverything(_ desired: DesiredState, observed: State) -> Changes {
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

    /// Only the elements of what `touched` names, before and after: what the one state had there and the other
    /// has not is deleted or added. `nil` when the tables are not as ipvs-proxy makes them (then everything is
    /// planned, and a table replaced).
    private func planTouched(_ touched: DesiredChanges, to desired: DesiredState, observed: State) -> Changes? {
        var before = ElementCollector(rules: rules)
        var after = ElementCollector(rules: rules)
        for key in touched.virtualServers.keys {
            if let server = touched.previous(key) { before.add(server) }
            if let server = desired.virtualServers[key] { after.add(server) }
        }
        for (address, had) in touched.serviceAddresses {
            if had { before.add(address) }
            if desired.serviceAddresses.contains(address) { after.add(address) }
        }
        if touched.healthChecks != desired.healthChecks {
            before.add(touched.healthChecks.values)
            after.add(desired.healthChecks.values)
        }
        if touched.nodePodNetworks != desired.nodePodNetworks {
            before.addLocalNetworks(touched.nodePodNetworks)
            after.addLocalNetworks(desired.nodePodNetworks)
        }
        // An element of a shared set may still be wanted by a virtual server the change did not touch.
        var stillWanted: ElementCollector?
        if before.hasShared(notIn: after) {
            var collector = ElementCollector(rules: rules, onlyShared: true)
            for server in desired.virtualServers.values { collector.add(server) }
            stillWanted = collector
        }
        var transaction = NFTTransaction()
        var tables = observed.tables
        for family in NFTFamily.allCases {
            let had = before.elements[family] ?? [:]
            let has = after.elements[family] ?? [:]
            // Most changes (an endpoint on another node) want the same elements after as before.
            guard had != has else { continue }
            let table = ProxyTable.make(family, rules: rules)
            guard var current = tables[family], current.skeletonDigest == table.skeleton.digest,
                !current.hasUnreadableElements
            else { return nil }
            var deleting: [String: Set<SetElement>] = [:]
            var adding: [String: Set<SetElement>] = [:]
            for set in Set(had.keys).union(has.keys) {
                let present = current.elements(of: set)
                let gone = (had[set] ?? []).subtracting(has[set] ?? []).filter {
                    present.contains($0) && stillWanted?.elements[family]?[set]?.contains($0) != true
                }
                let new = (has[set] ?? []).filter { !present.contains($0) }
                if !gone.isEmpty { deleting[set] = gone }
                if !new.isEmpty { adding[set] = new }
                if !gone.isEmpty || !new.isEmpty { current.change(set, deleting: gone, adding: new) }
            }
            if !deleting.isEmpty || !adding.isEmpty {
                transaction.steps.append(.changeElements(table, deleting: deleting, adding: adding))
                tables[family] = current
            }
        }
        return Changes(transaction: transaction, after: tables, confirmedGeneration: nil)
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
                ledger?.save(State(tables: changes.after, generation: generation))
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
        ledger?.save(State(tables: changes.after, generation: generation))
        return Outcome(generation: generation, refusal: nil, commitTime: commitTime)
    }

    package func follow(
        _ changes: Changes, outcome: Outcome, state: inout State, owned: inout OwnershipRecord, report: inout Report
    ) -> Bool {
        report.commitTime += outcome.commitTime
        if let refusal = outcome.refusal {
            report.failures = [refusal]
            return false
        }
        report.failures = []
        state = State(tables: changes.after, generation: outcome.generation ?? state.generation)
        return true
    }

    /// The elements each family's table should hold for `desired`.
    static func elements(of desired: DesiredState, rules: MasqueradeRules) -> [NFTFamily: [String: Set<SetElement>]] {
        var collector = ElementCollector(rules: rules)
        for address in desired.serviceAddresses { collector.add(address) }
        collector.addLocalNetworks(desired.nodePodNetworks)
        collector.add(desired.healthChecks.values)
        for virtual in desired.virtualServers.values { collector.add(virtual) }
        return collector.elements
    }

    /// The networks not inside another one of the list: an interval set refuses overlapping elements.
    static func outermost(_ networks: [IPNetwork]) -> [IPNetwork] {
        let distinct = Set(networks)
        return distinct.filter { network in !distinct.contains { $0 != network && $0.contains(network) } }.sorted()
    }
}

/// Gathers the set elements that parts of a desired state want, by family and set.
struct ElementCollector {
    typealias Name = ProxyTable.SetName
    /// The sets whose elements more than one virtual server may want: a node port's (one virtual server per node
    /// address) and the hairpin set's (one per virtual server with that local endpoint).
    static let sharedSets: Set<String> = [Name.nodePorts, Name.hairpin]

    let rules: MasqueradeRules
    /// Whether to gather the shared sets' elements only.
    var onlyShared = false
    private(set) var elements: [NFTFamily: [String: Set<SetElement>]] = [:]

    init(rules: MasqueradeRules, onlyShared: Bool = false) {
        self.rules = rules
        self.onlyShared = onlyShared
    }

    /// Whether some shared set has an element here that `other` does not.
    func hasShared(notIn other: ElementCollector) -> Bool {
        elements.contains { family, sets in
            Self.sharedSets.contains { set in
                !(sets[set] ?? []).isSubset(of: other.elements[family]?[set] ?? [])
            }
        }
    }

    private mutating func insert(_ element: SetElement, into set: String, family: AddressFamily) {
        guard !onlyShared || Self.sharedSets.contains(set) else { return }
        elements[family == .ipv4 ? .ip : .ip6, default: [:]][set, default: []].insert(element)
    }

    mutating func add(_ address: IPAddress) {
        insert(SetElement(.address(address)), into: Name.serviceAddresses, family: address.family)
    }

    mutating func addLocalNetworks(_ nodePodNetworks: [IPNetwork]) {
        for family in NFTFamily.allCases {
            for network in rules.localNetworks(family, nodePodNetworks: nodePodNetworks) {
                insert(SetElement(.network(network)), into: Name.localNetworks, family: family.addressFamily)
            }
        }
    }

    mutating func add(_ checks: some Sequence<HealthCheck>) {
        let proto = UInt8(truncatingIfNeeded: TransportProtocol.tcp.rawValue)
        for check in checks {
            for family in check.localEndpoints.keys {
                insert(
                    SetElement(.transportProtocol(proto), .port(check.port)), into: Name.healthCheckNodePorts,
                    family: family)
            }
        }
    }

    mutating func add(_ virtual: DesiredVirtualServer) {
        guard case .address(let transport, let address, let port) = virtual.server.key else { return }
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
                for range in NFTablesPart.outermost(virtual.sourceRanges) {
                    insert(
                        SetElement(servicePort + [.network(range)]), into: Name.firewallAllowed, family: address.family)
                }
            }
        case .nodePort:
            if !virtual.keepsClientAddress {
                insert(SetElement(.transportProtocol(proto), .port(port)), into: Name.nodePorts, family: address.family)
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
}

extension SyncReport {
    /// The nftables transactions and their element changes.
    package var nftables: NFTablesPart.Report { self[NFTablesPart.self] }
}

extension Syncer.CleanupReport {
    /// The families whose `ipvs-proxy` table a cleanup deleted, or would delete.
    package var deletedTables: [NFTFamily] { self[NFTablesPart.self].deletedTables }
    /// The deletion the kernel refused.
    package var tableFailures: [NetfilterError] { self[NFTablesPart.self].failures }
}
