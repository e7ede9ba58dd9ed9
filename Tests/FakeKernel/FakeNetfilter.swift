import InternetAddress
import NetfilterModel
import Sync
import Synchronization

/// nftables in memory: the tables a sync writes, as listings, changed by transactions as the kernel changes
/// them (all of a transaction or nothing; deleting an element that is not there refuses it), with a
/// generation id that every committed transaction moves. A test can refuse the next transaction, or change a
/// table behind the syncer's back.
public final class FakeNFTables: NFTablesConnection {
    private struct State {
        var tables: [NFTFamily: TableListing] = [:]
        var generation: UInt32 = 1
        var committed: [NFTTransaction] = []
        var checked: [NFTTransaction] = []
        var listings = 0
        var refuseNext: String?
        var otherChains: [ListedChain] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// The table of a family now, or `nil`.
    public func table(of family: NFTFamily) -> TableListing? { state.withLock { $0.tables[family] } }
    /// Every committed transaction, in order.
    public var committed: [NFTTransaction] { state.withLock { $0.committed } }
    /// Every transaction checked in a dry run.
    public var checked: [NFTTransaction] { state.withLock { $0.checked } }
    /// How many times a table was listed.
    public var listings: Int { state.withLock { $0.listings } }
    public var currentGeneration: UInt32 { state.withLock { $0.generation } }

    /// Refuses the next transaction with libnftables' `message`.
    public func refuseNext(_ message: String) {
        state.withLock { $0.refuseNext = message }
    }

    /// Changes a table behind the syncer's back, as another writer would (the generation moves).
    public func tamper(_ family: NFTFamily, _ change: (inout TableListing) -> Void) {
        state.withLock { state in
            guard var table = state.tables[family] else { return }
            change(&table)
            state.tables[family] = table
            state.generation += 1
        }
    }

    /// Another table's base chains, for the read-only policy check.
    public func addOtherChain(_ chain: ListedChain) {
        state.withLock {
            $0.otherChains.append(chain)
            $0.generation += 1
        }
    }

    public func table(_ family: NFTFamily, named name: String) throws(NetfilterError) -> TableListing? {
        state.withLock { state in
            state.listings += 1
            return name == ProxyTable.name ? state.tables[family] : nil
        }
    }

    public func generation() throws(NetfilterError) -> UInt32 { currentGeneration }

    public func baseChains() throws(NetfilterError) -> [ListedChain] {
        state.withLock { $0.otherChains }
    }

    public func commit(_ transaction: NFTTransaction, dryRun: Bool) throws(NetfilterError) {
        let result: Result<Void, NetfilterError> = state.withLock { state in
            if let message = state.refuseNext {
                state.refuseNext = nil
                return .failure(
                    NetfilterError(operation: "apply an nftables transaction", reason: .nftablesRefused(message)))
            }
            var tables = state.tables
            for step in transaction.steps {
                switch step {
                case .replace(let table, let elements):
                    tables[table.family] = TableListing(skeleton: table.skeleton, elements: elements)
                case .changeElements(let table, let deleting, let adding):
                    guard var listing = tables[table.family] else {
                        return .failure(Self.refusal("No such file or directory"))
                    }
                    for (set, members) in deleting {
                        guard listing.elements[set, default: []].isSuperset(of: members) else {
                            return .failure(Self.refusal("Could not process rule: No such file or directory"))
                        }
                        listing.elements[set]?.subtract(members)
                    }
                    for (set, members) in adding { listing.elements[set, default: []].formUnion(members) }
                    tables[table.family] = listing
                case .delete(let table):
                    guard tables[table.family] != nil else {
                        return .failure(Self.refusal("No such file or directory"))
                    }
                    tables[table.family] = nil
                }
            }
            if dryRun {
                state.checked.append(transaction)
            } else {
                state.tables = tables
                state.committed.append(transaction)
                state.generation += 1
            }
            return .success(())
        }
        try result.get()
    }

    private static func refusal(_ message: String) -> NetfilterError {
        NetfilterError(operation: "apply an nftables transaction", reason: .nftablesRefused("Error: \(message)"))
    }
}

/// A connection tracking table in memory.
public final class FakeConntrack: ConntrackConnection {
    private struct State {
        var entries: [ConntrackEntry] = []
        var dumps = 0
        var deleted: [ConntrackEntry] = []
    }

    private let state = Mutex(State())

    public init() {}

    public var entries: [ConntrackEntry] { state.withLock { $0.entries } }
    public var dumps: Int { state.withLock { $0.dumps } }
    public var deleted: [ConntrackEntry] { state.withLock { $0.deleted } }

    /// Adds a flow: `client` sent to `destination`, and the answers come from `answerer`.
    public func track(
        _ transportProtocol: UInt8, client: IPAddress, clientPort: UInt16, destination: IPAddress, port: UInt16,
        answerer: IPAddress, answererPort: UInt16
    ) {
        let entry = ConntrackEntry(
            transportProtocol: transportProtocol,
            original: ConntrackTuple(
                source: client, destination: destination, sourcePort: clientPort, destinationPort: port),
            reply: ConntrackTuple(
                source: answerer, destination: client, sourcePort: answererPort, destinationPort: clientPort))
        state.withLock { $0.entries.append(entry) }
    }

    public func entries(family: AddressFamily, protocols: Set<UInt8>) throws(NetfilterError) -> [ConntrackEntry] {
        state.withLock { state in
            state.dumps += 1
            return state.entries.filter { $0.family == family && protocols.contains($0.transportProtocol) }
        }
    }

    public func delete(_ entries: [ConntrackEntry]) throws(NetfilterError) -> [(ConntrackEntry, NetfilterError)] {
        state.withLock { state in
            let doomed = Set(entries)
            state.entries.removeAll { doomed.contains($0) }
            state.deleted += entries
            return []
        }
    }
}
