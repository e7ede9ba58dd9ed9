import IPVSModel
import Sync
import Synchronization
import SystemPackage

/// An IPVS table in memory that answers a sync as the kernel does (``ObservedTable/apply(_:)`` makes the
/// changes; adding what exists is `EEXIST`, a missing virtual server `ESRCH`, a missing real server `ENOENT`),
/// and that a test can tell to refuse operations, to overflow in the middle of a batch, or to change under a
/// plan.
public final class FakeIPVSTable: IPVSTableConnection {
    private struct State {
        var table: ObservedTable = [:]
        var refusals: [Refusal] = []
        var overflowAfter: Int?
        var unavailable: Errno?
        var beforeNextBatch: (@Sendable (inout ObservedTable, [TableOperation]) -> Void)?
        var tableReads = 0
        var realServerReads = 0
        var batches: [[TableOperation]] = []
    }

    private struct Refusal {
        var matches: @Sendable (TableOperation) -> Bool
        var errno: Errno
    }

    private let state = Mutex(State())

    public init(_ table: ObservedTable = [:]) {
        state.withLock { $0.table = table }
    }

    /// The table now.
    public var current: ObservedTable { state.withLock { $0.table } }
    /// How many times the whole table was read.
    public var tableReads: Int { state.withLock { $0.tableReads } }
    /// How many times one virtual server's real servers were read.
    public var realServerReads: Int { state.withLock { $0.realServerReads } }
    /// Every batch sent, in order.
    public var batches: [[TableOperation]] { state.withLock { $0.batches } }

    /// Changes the table behind the syncer's back.
    public func modify(_ change: (inout ObservedTable) -> Void) {
        state.withLock { change(&$0.table) }
    }

    /// Refuses every operation that `matches`, with `errno`, until told otherwise.
    public func refuse(_ errno: Errno, where matches: @escaping @Sendable (TableOperation) -> Bool) {
        state.withLock { $0.refusals.append(Refusal(matches: matches, errno: errno)) }
    }

    /// Makes every call fail with `errno` (`nil`: work again), as a kernel that cannot be reached.
    public func fail(with errno: Errno?) {
        state.withLock { $0.unavailable = errno }
    }

    private func checkAvailable(_ state: State) throws {
        if let errno = state.unavailable { throw IPVSError(operation: "IPVS", reason: .kernel(errno)) }
    }

    /// Refuses nothing more than the kernel would.
    public func stopRefusing() {
        state.withLock { $0.refusals = [] }
    }

    /// The batches to come apply `count` more operations, then the one at hand fails with `ENOBUFS`, as a
    /// socket whose answers overflowed: its outcome is unknown to the caller.
    public func overflow(afterOperations count: Int) {
        state.withLock { $0.overflowAfter = count }
    }

    /// Runs `change` when the next batch arrives, before any of it is applied: another writer racing the plan.
    /// It also sees the batch, so that a test can look at what was recorded before it.
    public func beforeNextBatch(_ change: @escaping @Sendable (inout ObservedTable, [TableOperation]) -> Void) {
        state.withLock { $0.beforeNextBatch = change }
    }

    public func table() throws -> [VirtualServerState] {
        try state.withLock { state in
            try checkAvailable(state)
            state.tableReads += 1
            return state.table.values.sorted { $0.server.key < $1.server.key }
        }
    }

    public func realServers(of key: VirtualServerKey) throws -> [RealServerState] {
        try state.withLock { state in
            try checkAvailable(state)
            state.realServerReads += 1
            return state.table[key]?.realServers ?? []
        }
    }

    public func apply(_ operations: [TableOperation]) throws -> [BatchFailure] {
        let hook = state.withLock { state in
            defer { state.beforeNextBatch = nil }
            return state.beforeNextBatch
        }
        if let hook {
            var table = current
            hook(&table, operations)
            state.withLock { $0.table = table }
        }
        return try state.withLock { state in
            try checkAvailable(state)
            state.batches.append(operations)
            var failures: [BatchFailure] = []
            for (index, operation) in operations.enumerated() {
                if let remaining = state.overflowAfter {
                    guard remaining > 0 else {
                        state.overflowAfter = nil
                        throw IPVSError(
                            operation: "apply a batch of \(operations.count) IPVS operations",
                            reason: .kernel(.noBufferSpace))
                    }
                    state.overflowAfter = remaining - 1
                }
                let refusal =
                    state.refusals.first { $0.matches(operation) }?.errno ?? Self.kernelRefusal(operation, state.table)
                if let refusal {
                    let error = IPVSError(operation: operation.description, reason: .kernel(refusal))
                    failures.append(BatchFailure(index: index, operation: operation, error: error))
                } else {
                    state.table.apply(operation)
                }
            }
            return failures
        }
    }

    /// What the kernel answers to an operation that does not fit its table.
    static func kernelRefusal(_ operation: TableOperation, _ table: ObservedTable) -> Errno? {
        switch operation {
        case .addVirtualServer(let server):
            return table[server.key] == nil ? nil : .fileExists
        case .editVirtualServer(let server):
            return table[server.key] == nil ? .noSuchProcess : nil
        case .deleteVirtualServer(let key):
            return table[key] == nil ? .noSuchProcess : nil
        case .addRealServer(let real, let key):
            guard let virtual = table[key] else { return .noSuchProcess }
            return virtual.realServers.contains { $0.server.key == real.key } ? .fileExists : nil
        case .editRealServer(let real, let key):
            guard let virtual = table[key] else { return .noSuchProcess }
            return virtual.realServers.contains { $0.server.key == real.key } ? nil : .noSuchFileOrDirectory
        case .deleteRealServer(let real, let key):
            guard let virtual = table[key] else { return .noSuchProcess }
            return virtual.realServers.contains { $0.server.key == real } ? nil : .noSuchFileOrDirectory
        }
    }
}
