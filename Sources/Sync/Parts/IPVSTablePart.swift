import IPVSModel
import ProxyRules
import SystemPackage

/// The kernel's IPVS table: the virtual servers ipvs-proxy owns and their real servers.
///
/// A full read is one dump of the virtual servers and one of each one's real servers. From memory, only the real
/// servers of virtual servers whose endpoints changed, or that are draining, are read: their connection counts
/// decide whether a removed real server drains at weight 0 or goes at once. So an endpoint change costs its
/// own operations and one small read.
package struct IPVSTablePart: KernelPart {
    private let connection: any IPVSTableConnection

    package init(connection: any IPVSTableConnection) {
        self.connection = connection
    }

    /// Its batch goes on the sync's own thread; a race reads the table again.
    package var stage: PartStage { .lead }
    package var phases: PartPhases {
        PartPhases(
            read: "read table", recall: "read changed real servers", plan: "plan", apply: "apply", follow: "follow")
    }

    /// The table as a sync sees it.
    package struct State: Sendable {
        package var servers: ObservedTable
        /// Virtual servers with real servers draining at weight 0 (unknown after a read: planning finds them).
        package var draining: Set<VirtualServerKey> = []
    }

    /// What a sync did to the table, or (in a dry run) would do, over all its attempts.
    package struct Report: PartReport {
        /// Every operation sent, in order; in a dry run, the planned ones.
        package var operations: [TableOperation] = []
        /// Every operation the kernel refused (`index` is its position in ``operations``), races that a later
        /// attempt resolved included.
        package var refused: [BatchFailure] = []
        /// The refusals of the last attempt: what the sync could not do.
        package var failures: [BatchFailure] = []
        /// Desired virtual servers left alone because something ipvs-proxy does not own holds their key.
        package var blocked: [VirtualServerKey: ServicePortName] = [:]
        /// Real servers no longer wanted, draining at weight 0 until their connections end.
        package var draining: [(virtualServer: VirtualServerKey, realServer: RealServerKey)] = []
        /// How many times the whole table was read.
        package var fullReads = 0
        /// How many virtual servers' real servers were read on their own.
        package var realServerReads = 0

        /// Operations applied (or, in a dry run, planned) by kind; refused ones are not counted.
        package var counts: [TableOperation.Kind: Int] {
            var counts: [TableOperation.Kind: Int] = [:]
            let refusedIndexes = Set(refused.map(\.index))
            for (index, operation) in operations.enumerated() where !refusedIndexes.contains(index) {
                counts[operation.kind, default: 0] += 1
            }
            return counts
        }

        package init() {}

        package var failureDescriptions: [String] { failures.map(\.error.description) }

        package var operationResults: [(kind: String, succeeded: Int, refused: Int)] {
            var results: [String: (succeeded: Int, refused: Int)] = [:]
            let refusedIndexes = Set(refused.map(\.index))
            for (index, operation) in operations.enumerated() {
                if refusedIndexes.contains(index) {
                    results[operation.kind.rawValue, default: (0, 0)].refused += 1
                } else {
                    results[operation.kind.rawValue, default: (0, 0)].succeeded += 1
                }
            }
            return results.map { (kind: $0.key, succeeded: $0.value.succeeded, refused: $0.value.refused) }
        }

        /// Adds the refusals of the batch that was planned last (its operations are the last ones reported).
        mutating func append(refusals: [BatchFailure], ofLast batchSize: Int) {
            let offset = operations.count - batchSize
            refused += refusals.map { BatchFailure(index: offset + $0.index, operation: $0.operation, error: $0.error) }
            failures = refusals
        }
    }

    /// What the kernel made of a batch.
    package struct Outcome: Sendable {
        /// The operations it refused, with their positions in the batch.
        package var refused: [BatchFailure]

        /// Whether the table changed under the plan, so that reading it again and planning again can succeed:
        /// a virtual server that appeared (`EEXIST`) or vanished (`ESRCH`), a real server that vanished
        /// (`ENOENT` on an edit or delete). Any other refusal would repeat.
        package var isRace: Bool {
            !refused.isEmpty && refused.allSatisfy(Self.isRace)
        }

        static func isRace(_ failure: BatchFailure) -> Bool {
            switch (failure.operation.kind, failure.error.errno) {
            case (_, .fileExists?), (_, .noSuchProcess?): true
            case (.editRealServer, .noSuchFileOrDirectory?), (.deleteRealServer, .noSuchFileOrDirectory?): true
            default: false
            }
        }
    }

    /// What a cleanup deletes: the virtual servers ipvs-proxy owns that are in the table.
    package struct Removal: PartReport {
        package var deleted: [VirtualServerKey] = []
        /// The deletions the kernel refused (one already gone is not refused).
        package var failures: [BatchFailure] = []

        package init() {}

        package var failureDescriptions: [String] { failures.map(\.error.description) }
    }

    package func raced(_ outcome: Outcome) -> Bool { outcome.isRace }

    package func read(report: inout Report) throws -> State {
        report.fullReads += 1
        var servers: ObservedTable = [:]
        for state in try connection.table() { servers[state.server.key] = state }
        return State(servers: servers)
    }

    package func recall(
        _ state: inout State, previous: DesiredState?, for desired: DesiredState, scope: SyncScope,
        report: inout Report
    ) throws {
        for (key, wanted, had) in scope.virtualServers(of: desired, previous: previous, also: state.draining)
        where state.servers[key] != nil {
            if had?.realServers != wanted.realServers || state.draining.contains(key) {
                state.servers[key]?.realServers = try connection.realServers(of: key)
                report.realServerReads += 1
            }
        }
    }

    package func plan(_ desired: DesiredState, observed: State, owned: OwnershipRecord, scope: SyncScope) -> Plan {
        switch scope {
        case .everything:
            Planner.plan(desired: desired, observed: observed.servers, owned: owned.virtualServers)
        case .touched(let touched):
            // Draining real servers are looked at again, to delete those whose last connection ended.
            Planner.plan(
                desired: desired, observed: observed.servers, owned: owned.virtualServers,
                only: Set(touched.virtualServers.keys).union(observed.draining))
        }
    }

    package func report(_ changes: Plan, into report: inout Report) {
        report.operations += changes.operations
        report.blocked = changes.blocked
        report.draining = changes.draining
    }

    /// Sends the plan as one batch. A plan that makes virtual servers sends those first, on their own: should
    /// another writer have made one meanwhile (`EEXIST`), its real servers are not sent, so that none lands in
    /// a virtual server ipvs-proxy does not own. They count as refused with `ESRCH`, as the kernel refuses a
    /// real server whose virtual server is missing.
    package func apply(_ changes: Plan) throws -> Outcome {
        let operations = changes.operations
        let creations = operations.indices.filter { operations[$0].kind == .addVirtualServer }
        guard !creations.isEmpty else {
            return Outcome(refused: operations.isEmpty ? [] : try connection.apply(operations))
        }
        var refused = try sendBatch(creations, of: operations)
        let notMade = Set(refused.map(\.operation.virtualServerKey))
        var rest: [Int] = []
        for index in operations.indices where operations[index].kind != .addVirtualServer {
            let operation = operations[index]
            if operation.isRealServerOperation && notMade.contains(operation.virtualServerKey) {
                let error = IPVSError(
                    operation: "\(operation) (not sent: its virtual server was not made)",
                    reason: .kernel(.noSuchProcess))
                refused.append(BatchFailure(index: index, operation: operation, error: error))
            } else {
                rest.append(index)
            }
        }
        refused += try sendBatch(rest, of: operations)
        return Outcome(refused: refused.sorted { $0.index < $1.index })
    }

    /// Sends the operations at `indexes` as one batch; the refusals keep their index in `operations`.
    private func sendBatch(_ indexes: [Int], of operations: [TableOperation]) throws -> [BatchFailure] {
        guard !indexes.isEmpty else { return [] }
        return try connection.apply(indexes.map { operations[$0] }).map {
            BatchFailure(index: indexes[$0.index], operation: $0.operation, error: $0.error)
        }
    }

    package func follow(
        _ changes: Plan, outcome: Outcome, state: inout State, owned: inout OwnershipRecord, report: inout Report
    ) -> Bool {
        Self.own(after: changes, refused: outcome.refused, in: &owned.virtualServers)
        report.append(refusals: outcome.refused, ofLast: changes.operations.count)
        guard outcome.refused.isEmpty else { return false }
        for operation in changes.operations { state.servers.apply(operation) }
        // A plan of only some virtual servers says which of those drain; the others drain as before.
        if let looked = changes.looked { state.draining.subtract(looked) } else { state.draining = [] }
        state.draining.formUnion(changes.draining.map(\.0))
        return true
    }

    package func removal(owned: OwnershipRecord) throws -> Removal {
        let present = Set(try connection.table().map(\.server.key))
        var removal = Removal()
        removal.deleted = owned.virtualServers.keys.filter { present.contains($0) }.sorted()
        return removal
    }

    package func remove(_ removal: inout Removal, owned: inout OwnershipRecord) throws {
        removal.failures = try connection.apply(removal.deleted.map(TableOperation.deleteVirtualServer))
            .filter { $0.error.errno != .noSuchProcess }
        let stillThere = Set(removal.failures.map(\.operation.virtualServerKey))
        owned.virtualServers = owned.virtualServers.filter { stillThere.contains($0.key) }
    }

    /// What is owned after a batch: the plan's result, except where an operation on a whole virtual server
    /// was refused.
    static func own(after plan: Plan, refused: [BatchFailure], in owned: inout [VirtualServerKey: ServicePortName]) {
        let before = owned
        plan.own(after: &owned)
        for failure in refused {
            switch failure.operation {
            case .addVirtualServer(let server):
                // Made by someone else meanwhile (EEXIST), or refused: not ours, unless it was before.
                owned[server.key] = before[server.key]
            case .deleteVirtualServer(let key) where failure.error.errno != .noSuchProcess:
                owned[key] = before[key]
            default:
                break
            }
        }
    }
}

extension Plan: PartChanges {
    package var isEmpty: Bool { operations.isEmpty }

    package func owned(during owned: OwnershipRecord) -> OwnershipRecord {
        var during = owned
        own(during: &during.virtualServers)
        return during
    }
}

extension SyncReport {
    /// The IPVS table's operations, refusals, blocked keys, draining real servers and reads.
    package var table: IPVSTablePart.Report { self[IPVSTablePart.self] }
}

extension Syncer.CleanupReport {
    /// The virtual servers a cleanup deleted, or would delete.
    package var deletedVirtualServers: [VirtualServerKey] { self[IPVSTablePart.self].deleted }
    /// The deletions the kernel refused.
    package var failures: [BatchFailure] { self[IPVSTablePart.self].failures }
}
