import CNetlink
import IPVSModel
import ShimDumps
import Synchronization
import SystemPackage

/// A connection to the kernel's routing interface (rtnetlink) of one network namespace: links and
/// their addresses. Calls are serialized, so a handle may be shared between tasks.
public final class InterfaceHandle: Sendable {
    // The shim's socket is not thread-safe: it is used only with `lock` held.
    private nonisolated(unsafe) let handle: OpaquePointer
    private let lock = Mutex(())
    private let dumps = DumpRereader()

    /// Opens a handle for the caller's network namespace, or the one at `networkNamespacePath`.
    public init(networkNamespacePath: String? = nil) throws {
        var handle: OpaquePointer?
        let result = cnetlink_route_open(networkNamespacePath, &handle)
        guard result == 0, let handle else {
            let place = networkNamespacePath.map { " in network namespace \($0)" } ?? ""
            throw IPVSError(operation: "open route netlink socket\(place)", code: result)
        }
        self.handle = handle
    }

    /// For tests: a handle that talks to a peer playing the kernel over `socketDescriptor`, a connected
    /// datagram socket (an `AF_UNIX` socket pair's end), which it then owns.
    init(testingSocket socketDescriptor: Int32) throws {
        var handle: OpaquePointer?
        let result = cnetlink_route_open_socket(socketDescriptor, &handle)
        guard result == 0, let handle else { throw IPVSError(operation: "open a test socket", code: result) }
        self.handle = handle
    }

    deinit {
        cnetlink_route_close(handle)
    }

    private func withHandle<Result>(_ body: (OpaquePointer) throws -> Result) rethrows -> Result {
        try lock.withLock { _ in try body(handle) }
    }

    private static func check(_ result: Int32, _ operation: @autoclosure () -> String) throws {
        if result < 0 { throw IPVSError(operation: operation(), code: result) }
    }

    /// How many of this handle's dumps the kernel marked interrupted: links or addresses changed while they
    /// were read. Each was read again from the start, up to a bound (then the read threw
    /// ``IPVSError/Reason/dumpInterrupted``).
    public var interruptedDumps: Int { dumps.interruptedDumps }

    /// Every link of the namespace.
    /// - Throws: ``IPVSError``; ``IPVSError/Reason/dumpInterrupted`` when links kept changing through every read.
    public func links() throws -> [NetworkLink] {
        let (result, links) = withHandle { handle in
            dumps.gather(startingWith: [NetworkLink]()) { links in
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
                        links.pointee.append(
                            NetworkLink(index: cLink.index, name: name, kind: kind, flags: cLink.flags))
                        return 0
                    }, links)
            }
        }
        try Self.check(result, "list links")
        return links
    }

    /// The link with this name, if any.
    public func link(named name: String) throws -> NetworkLink? {
        try links().first { $0.name == name }
    }

    /// Every address of every link, both families.
    /// - Throws: ``IPVSError``; ``IPVSError/Reason/dumpInterrupted`` when addresses kept changing through every
    ///   read.
    public func addresses() throws -> [InterfaceAddress] {
        let (result, addresses) = withHandle { handle in
            dumps.gather(startingWith: [InterfaceAddress]()) { addresses in
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
        try Self.check(result, "list addresses")
        return addresses
    }

    /// Creates a dummy link and returns its index.
    public func addDummyLink(named name: String) throws -> Int32 {
        var index: Int32 = 0
        try withHandle { try Self.check(cnetlink_route_add_dummy_link($0, name, &index), "create dummy link \(name)") }
        return index
    }

    /// Deletes a link.
    public func deleteLink(index: Int32) throws {
        try withHandle { try Self.check(cnetlink_route_delete_link($0, index), "delete link \(index)") }
    }

    /// Sets a link administratively up.
    public func setLinkUp(index: Int32) throws {
        try withHandle { try Self.check(cnetlink_route_set_link_up($0, index), "set link \(index) up") }
    }

    /// Applies address changes as one batch (many per `send()`, failures only answered).
    /// - Returns: The changes the kernel refused.
    public func apply(_ changes: [AddressChange]) throws -> [AddressChangeFailure] {
        let (result, failures) = withHandle { handle -> (Int32, ShimFailures) in
            let begun = cnetlink_route_batch_begin(handle)
            guard begun == 0 else { return (begun, []) }
            for change in changes {
                let address = change.address
                var cAddress = cnetlink_address()
                cAddress.link_index = address.linkIndex
                cAddress.family = address.address.family.rawValue
                cAddress.prefix_length = address.prefixLength
                address.address.copy(into: &cAddress.address)
                let isBind: Int32 = if case .bind = change { 1 } else { 0 }
                let appended = cnetlink_route_batch_append_address(handle, isBind, &cAddress)
                guard appended == 0 else { return (appended, []) }
            }
            return collectingFailures { cnetlink_route_batch_commit(handle, $0, $1) }
        }
        try Self.check(result, "apply a batch of \(changes.count) address changes")
        return failures.map {
            AddressChangeFailure(
                index: $0.index, change: changes[$0.index],
                error: IPVSError(operation: changes[$0.index].description, code: $0.code))
        }
    }
}
