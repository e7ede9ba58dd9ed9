import CNetlink
import InterfaceModel
import KernelShim

/// A connection to the kernel's routing interface (rtnetlink) of one network namespace: links and
/// their addresses. Calls are serialized, so a handle may be shared between tasks.
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

    /// How many of this handle's dumps the kernel marked interrupted: links or addresses changed while they
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
}
