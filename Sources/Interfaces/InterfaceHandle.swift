import CNetlink
import InterfaceModel
import KernelShim

/// A connection to the kernel's routing interface (rtnetlink) of one network namespace: links, their
/// addresses, and the local routes that make service addresses local. Calls are serialized, so a handle may be
/// shared between tasks.
///
/// Errors are `KernelCallError` values that keep the kernel's errno.
public final class InterfaceHandle: Sendable {
    private let shim: ShimHandle<KernelCallError>

    /// Opens a handle for the caller's network namespace, or the one at `networkNamespacePath`.
    public init(networkNamespacePath: String? = nil) throws {
        shim = try ShimHandle(
            "open route netlink socket", networkNamespacePath: networkNamespacePath,
            open: { cnetlink_route_open(networkNamespacePath, $0) }, close: { cnetlink_route_close($0) })
    }

    /// For tests: a handle that talks to a peer playing the kernel over `socketDescriptor`, a connected
    /// datagram socket (an `AF_UNIX` socket pair's end), which it then owns.
    init(testingSocket socketDescriptor: Int32) throws {
        shim = try ShimHandle(
            "open a test socket", open: { cnetlink_route_open_socket(socketDescriptor, $0) },
            close: { cnetlink_route_close($0) })
    }

    /// How many of this handle's dumps the kernel marked interrupted: links, addresses or routes changed while they
    /// were read. Each was read again from the start, up to a bound (then the read threw
    /// `KernelFailure.dumpInterrupted`).
    public var interruptedDumps: Int { shim.interruptedDumps }

    /// Every link of the namespace.
    /// - Throws: `KernelCallError`; `KernelFailure.dumpInterrupted` when links kept changing through every read.
    public func links() throws -> [NetworkLink] {
        try shim.dump("list links", startingWith: []) { handle, links in
            cnetlink_route_dump_links(
                handle,
                { link, context in
                    let links = context!.assumingMemoryBound(to: [NetworkLink].self)
                    var cLink = link!.pointee
                    let name = withUnsafeBytes(of: &cLink.name) {
                        String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                    }
                    let kind = withUnsafeBytes(of: &cLink.kind) {
                        String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                    }
                    links.pointee.append(NetworkLink(index: cLink.index, name: name, kind: kind, flags: cLink.flags))
                    return 0
                }, links)
        }
    }

    /// The link with this name, if any.
    public func link(named name: String) throws -> NetworkLink? {
        try links().first { $0.name == name }
    }

    /// Every address of every link, both families.
    /// - Throws: `KernelCallError`; `KernelFailure.dumpInterrupted` when addresses kept changing through every
    ///   read.
    public func addresses() throws -> [InterfaceAddress] {
        try shim.dump("list addresses", startingWith: []) { handle, addresses in
            cnetlink_route_dump_addresses(
                handle,
                { address, context in
                    let addresses = context!.assumingMemoryBound(to: [InterfaceAddress].self)
                    let entry = address!.pointee
                    addresses.pointee.append(
                        InterfaceAddress(
                            linkIndex: entry.link_index,
                            address: IPAddress(family: entry.family, cBytes: entry.address),
                            prefixLength: entry.prefix_length))
                    return 0
                }, addresses)
        }
    }

    /// Creates a dummy link and returns its index.
    public func addDummyLink(named name: String) throws -> Int32 {
        var index: Int32 = 0
        try shim.call("create dummy link \(name)") { cnetlink_route_add_dummy_link($0, name, &index) }
        return index
    }

    /// Deletes a link.
    public func deleteLink(index: Int32) throws {
        try shim.call("delete link \(index)") { cnetlink_route_delete_link($0, index) }
    }

    /// Sets a link administratively up.
    public func setLinkUp(index: Int32) throws {
        try shim.call("set link \(index) up") { cnetlink_route_set_link_up($0, index) }
    }

    /// Applies address changes as one batch (many per `send()`, failures only answered).
    /// - Returns: The changes the kernel refused.
    public func apply(_ changes: [AddressChange]) throws -> [AddressChangeFailure] {
        let refusals = try shim.batch(
            "apply a batch of \(changes.count) address changes", changes,
            begin: { cnetlink_route_batch_begin($0) },
            append: { handle, change in
                let address = change.address
                var cAddress = cnetlink_address()
                cAddress.link_index = address.linkIndex
                cAddress.family = address.address.family.rawValue
                cAddress.prefix_length = address.prefixLength
                address.address.copy(into: &cAddress.address)
                let isBind: Int32 = if case .bind = change { 1 } else { 0 }
                return cnetlink_route_batch_append_address(handle, isBind, &cAddress)
            },
            commit: { cnetlink_route_batch_commit($0, $1, $2) })
        return refusals.map {
            AddressChangeFailure(
                index: $0.index, change: changes[$0.index],
                error: KernelCallError(operation: changes[$0.index].description, $0.error))
        }
    }

    // MARK: - Routes of the local table

    /// Every route of the kernel's `local` table, both families, of any type, protocol and link.
    /// - Throws: `KernelCallError`; `KernelFailure.dumpInterrupted` when routes kept changing through every read.
    public func localTableRoutes() throws -> [TableRoute] {
        try shim.dump("list the local table's routes", startingWith: []) { handle, routes in
            cnetlink_route_dump_local_table(
                handle,
                { route, context in
                    let routes = context!.assumingMemoryBound(to: [TableRoute].self)
                    let entry = route!.pointee
                    let address = IPAddress(family: entry.family, cBytes: entry.destination)
                    // The shim has checked the length against the family.
                    guard let network = IPNetwork(address: address, prefixLength: Int(entry.prefix_length)) else {
                        return ShimError.malformedReply.rawValue
                    }
                    routes.pointee.append(
                        TableRoute(
                            network: network, kind: TableRoute.Kind(rawValue: entry.type),
                            routeProtocol: RouteProtocol(rawValue: entry.protocol), scope: entry.scope,
                            table: entry.table, linkIndex: entry.link_index))
                    return 0
                }, routes)
        }
    }

    /// The routes of type `local` in the `local` table, on the link with index `linkIndex` and made by
    /// `routeProtocol` (any link or protocol when `nil`).
    /// - Throws: As ``localTableRoutes()``.
    public func localRoutes(linkIndex: Int32? = nil, routeProtocol: RouteProtocol? = .ipvsProxy) throws
        -> [LocalRoute]
    {
        try localTableRoutes().compactMap { route in
            guard let local = route.localRoute, linkIndex.map({ $0 == local.linkIndex }) ?? true,
                routeProtocol.map({ $0 == local.routeProtocol }) ?? true
            else { return nil }
            return local
        }
    }

    /// Adds and deletes local routes as one batch (many per `send()`, failures only answered): each a route of type
    /// `local` in the `local` table, scope host, on its link, with its protocol. Adding a route that is there is
    /// refused with `EEXIST`, deleting one that is not (of that protocol, on that link) with `ESRCH`.
    /// - Returns: The changes the kernel refused.
    public func apply(_ changes: [RouteChange]) throws -> [RouteChangeFailure] {
        let refusals = try shim.batch(
            "apply a batch of \(changes.count) route changes", changes,
            begin: { cnetlink_route_batch_begin($0) },
            append: { handle, change in
                let route = change.route
                var entry = cnetlink_route_entry()
                entry.family = route.network.family.rawValue
                entry.prefix_length = route.network.prefixLength
                entry.protocol = route.routeProtocol.rawValue
                entry.link_index = route.linkIndex
                route.network.address.copy(into: &entry.destination)
                let isAdd: Int32 = if case .add = change { 1 } else { 0 }
                return cnetlink_route_batch_append_local_route(handle, isAdd, &entry)
            },
            commit: { cnetlink_route_batch_commit($0, $1, $2) })
        return refusals.map {
            RouteChangeFailure(
                index: $0.index, change: changes[$0.index],
                error: KernelCallError(operation: changes[$0.index].description, $0.error))
        }
    }
}
