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
