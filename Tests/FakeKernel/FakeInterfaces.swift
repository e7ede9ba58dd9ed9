import IPVSModel
import InterfaceModel
import Sync
import Synchronization
import SystemPackage

/// A node's links, addresses and local routes in memory that answer a sync as the kernel does (binding an address
/// that is there is `EEXIST`, unbinding one that is not `EADDRNOTAVAIL`, a missing link `ENODEV`; adding a local
/// route that is there `EEXIST`, deleting one that is not `ESRCH`), and that a test can tell to refuse changes or to
/// fail a whole batch.
public final class FakeInterfaces: InterfaceConnection {
    private struct State {
        var links: [NetworkLink]
        var addresses: [InterfaceAddress]
        var refusals: [(matches: @Sendable (AddressChange) -> Bool, errno: Errno)] = []
        var failNextBatch: Errno?
        var beforeNextBatch: (@Sendable ([AddressChange]) -> Void)?
        var batches: [[AddressChange]] = []
        var reads = 0
        /// The local table's routes of type local (the kernel's own for bound addresses are not kept).
        var routes: [LocalRoute] = []
        var routeRefusals: [(matches: @Sendable (RouteChange) -> Bool, errno: Errno)] = []
        var failNextRouteBatch: Errno?
        var routeBatches: [[RouteChange]] = []
    }

    private let state: Mutex<State>

    /// A node with loopback (`lo`, 127.0.0.1) and `eth0` holding `nodeAddress`.
    public init(nodeAddress: IPAddress = IPAddress("192.168.1.10")!) {
        state = Mutex(
            State(
                links: [
                    NetworkLink(index: 1, name: "lo", kind: "", flags: 0x9),
                    NetworkLink(index: 2, name: "eth0", kind: "veth", flags: 0x1),
                ],
                addresses: [
                    InterfaceAddress(linkIndex: 1, address: IPAddress("127.0.0.1")!, prefixLength: 8),
                    InterfaceAddress(linkIndex: 2, address: nodeAddress, prefixLength: 24),
                ]))
    }

    /// The addresses on the link with this name.
    public func addresses(on name: String) -> Set<IPAddress> {
        state.withLock { state in
            guard let link = state.links.first(where: { $0.name == name }) else { return [] }
            return Set(state.addresses.filter { $0.linkIndex == link.index }.map(\.address))
        }
    }

    /// Every address change batch sent, in order.
    public var batches: [[AddressChange]] { state.withLock { $0.batches } }
    /// How many times the addresses were read.
    public var addressReads: Int { state.withLock { $0.reads } }

    /// Refuses every change that `matches`, with `errno`.
    public func refuse(_ errno: Errno, where matches: @escaping @Sendable (AddressChange) -> Bool) {
        state.withLock { $0.refusals.append((matches, errno)) }
    }

    /// The next batch fails as a whole with `errno` (its outcome unknown to the caller); nothing is changed.
    public func failNextBatch(with errno: Errno) {
        state.withLock { $0.failNextBatch = errno }
    }

    /// Runs `look` when the next batch arrives, before any of it is applied.
    public func beforeNextBatch(_ look: @escaping @Sendable ([AddressChange]) -> Void) {
        state.withLock { $0.beforeNextBatch = look }
    }

    /// Adds an address to a node interface (`eth0` unless said), as an administrator would.
    public func add(_ address: IPAddress, on name: String = "eth0") {
        state.withLock { state in
            guard let link = state.links.first(where: { $0.name == name }) else { return }
            state.addresses.append(
                InterfaceAddress(
                    linkIndex: link.index, address: address, prefixLength: address.family == .ipv4 ? 24 : 64))
        }
    }

    /// Removes an address behind the syncer's back.
    public func remove(_ address: IPAddress) {
        state.withLock { $0.addresses.removeAll { $0.address == address } }
    }

    public func links() throws -> [NetworkLink] { state.withLock { $0.links } }

    public func link(named name: String) throws -> NetworkLink? {
        state.withLock { $0.links.first { $0.name == name } }
    }

    public func addresses() throws -> [InterfaceAddress] {
        state.withLock { state in
            state.reads += 1
            return state.addresses
        }
    }

    public func addDummyLink(named name: String) throws -> Int32 {
        try state.withLock { state in
            guard !state.links.contains(where: { $0.name == name }) else {
                throw KernelCallError(operation: "create dummy link \(name)", reason: .kernel(.fileExists))
            }
            let index = (state.links.map(\.index).max() ?? 0) + 1
            state.links.append(NetworkLink(index: index, name: name, kind: "dummy"))
            return index
        }
    }

    public func setLinkUp(index: Int32) throws {
        try state.withLock { state in
            guard let position = state.links.firstIndex(where: { $0.index == index }) else {
                throw KernelCallError(
                    operation: "set link \(index) up", reason: .kernel(.operationNotSupportedByDevice))
            }
            state.links[position].flags |= 0x1
        }
    }

    public func deleteLink(index: Int32) throws {
        state.withLock { state in
            state.links.removeAll { $0.index == index }
            state.addresses.removeAll { $0.linkIndex == index }
            // The kernel flushes the routes of a link that goes away.
            state.routes.removeAll { $0.linkIndex == index }
        }
    }

    public func apply(_ changes: [AddressChange]) throws -> [AddressChangeFailure] {
        let look = state.withLock { state in
            defer { state.beforeNextBatch = nil }
            return state.beforeNextBatch
        }
        look?(changes)
        return try state.withLock { state in
            state.batches.append(changes)
            if let errno = state.failNextBatch {
                state.failNextBatch = nil
                throw KernelCallError(
                    operation: "apply a batch of \(changes.count) address changes", reason: .kernel(errno))
            }
            var failures: [AddressChangeFailure] = []
            for (index, change) in changes.enumerated() {
                if let errno = state.refusals.first(where: { $0.matches(change) })?.errno
                    ?? Self.kernelRefusal(change, state)
                {
                    failures.append(
                        AddressChangeFailure(
                            index: index, change: change,
                            error: KernelCallError(operation: change.description, reason: .kernel(errno))))
                    continue
                }
                switch change {
                case .bind(let address): state.addresses.append(address)
                case .unbind(let address):
                    state.addresses.removeAll { $0.linkIndex == address.linkIndex && $0.address == address.address }
                }
            }
            return failures
        }
    }

    private static func kernelRefusal(_ change: AddressChange, _ state: State) -> Errno? {
        let target = change.address
        guard state.links.contains(where: { $0.index == target.linkIndex }) else {
            return .operationNotSupportedByDevice
        }
        let present = state.addresses.contains { $0.linkIndex == target.linkIndex && $0.address == target.address }
        switch change {
        case .bind: return present ? .fileExists : nil
        case .unbind: return present ? nil : .addressNotAvailable
        }
    }

    // MARK: - Local routes

    /// Every local route of the local table, in the order they were made.
    public var routes: [LocalRoute] { state.withLock { $0.routes } }
    /// Every route change batch sent, in order.
    public var routeBatches: [[RouteChange]] { state.withLock { $0.routeBatches } }

    /// Adds a local route behind the syncer's back, as an administrator or another daemon would (any protocol).
    public func add(_ route: LocalRoute) {
        state.withLock { $0.routes.append(route) }
    }

    /// Removes a local route behind the syncer's back.
    public func remove(_ route: LocalRoute) {
        state.withLock { $0.routes.removeAll { $0 == route } }
    }

    /// Refuses every route change that `matches`, with `errno`.
    public func refuseRoutes(_ errno: Errno, where matches: @escaping @Sendable (RouteChange) -> Bool) {
        state.withLock { $0.routeRefusals.append((matches, errno)) }
    }

    /// The next route batch fails as a whole with `errno` (its outcome unknown to the caller); nothing is changed.
    public func failNextRouteBatch(with errno: Errno) {
        state.withLock { $0.failNextRouteBatch = errno }
    }

    public func localRoutes(linkIndex: Int32?, routeProtocol: RouteProtocol?) throws -> [LocalRoute] {
        state.withLock { state in
            state.routes.filter { route in
                (linkIndex.map { $0 == route.linkIndex } ?? true)
                    && (routeProtocol.map { $0 == route.routeProtocol } ?? true)
            }
        }
    }

    public func apply(_ changes: [RouteChange]) throws -> [RouteChangeFailure] {
        try state.withLock { state in
            state.routeBatches.append(changes)
            if let errno = state.failNextRouteBatch {
                state.failNextRouteBatch = nil
                throw KernelCallError(
                    operation: "apply a batch of \(changes.count) route changes", reason: .kernel(errno))
            }
            var failures: [RouteChangeFailure] = []
            for (index, change) in changes.enumerated() {
                if let errno = state.routeRefusals.first(where: { $0.matches(change) })?.errno
                    ?? Self.kernelRefusal(change, state)
                {
                    failures.append(
                        RouteChangeFailure(
                            index: index, change: change,
                            error: KernelCallError(operation: change.description, reason: .kernel(errno))))
                    continue
                }
                switch change {
                case .add(let route): state.routes.append(route)
                case .delete(let route): state.routes.removeAll { $0 == route }
                }
            }
            return failures
        }
    }

    /// What the kernel says to a route change: a route on a link that is not there is `ENODEV`; an IPv4 route that
    /// is there (the same network, link and protocol) is `EEXIST`, and so is an IPv6 one of the same network on the
    /// same link whatever its protocol (IPv6 compares the next hop, not the protocol, of routes of one metric);
    /// deleting needs the same network, link and protocol, or it is `ESRCH`.
    private static func kernelRefusal(_ change: RouteChange, _ state: State) -> Errno? {
        let target = change.route
        switch change {
        case .add:
            guard state.links.contains(where: { $0.index == target.linkIndex }) else {
                return .operationNotSupportedByDevice
            }
            let present = state.routes.contains { route in
                route.network == target.network && route.linkIndex == target.linkIndex
                    && (route.routeProtocol == target.routeProtocol || target.network.family == .ipv6)
            }
            return present ? .fileExists : nil
        case .delete:
            return state.routes.contains(target) ? nil : .noSuchProcess
        }
    }
}
