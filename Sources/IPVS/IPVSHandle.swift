import CNetlink
import IPVSModel
import KernelShim
import SystemPackage

/// A connection to the kernel's IPVS table of one network namespace.
///
/// Every call is a netlink exchange with the kernel; calls are serialized, so one handle may be shared
/// between tasks. Reads return the kernel's own view. Writes go one at a time with an acknowledgement
/// each (``execute(_:)``), or many at once with ``apply(_:)``, which is how large tables are programmed fast.
///
/// Errors are ``IPVSError`` values that keep the kernel's errno: adding what exists is `EEXIST`,
/// editing or deleting a missing virtual server is `ESRCH`, a missing real server `ENOENT`.
public final class IPVSHandle: Sendable {
    // The netlink socket and its lock. The kernel does not flag IPVS dumps interrupted (they carry no generation
    // number), but reading them the way every other dump is read costs nothing and holds if it ever does.
    private let shim: ShimHandle<IPVSError>

    /// Opens a handle for the caller's network namespace, or for the namespace at `networkNamespacePath`
    /// (such as `/var/run/netns/NAME`).
    /// - Throws: ``IPVSError`` with reason ``IPVSError/Reason/ipvsUnavailable`` when the kernel has no IPVS.
    public init(networkNamespacePath: String? = nil) throws {
        shim = try ShimHandle(
            "open IPVS netlink socket", networkNamespacePath: networkNamespacePath,
            open: { cnetlink_ipvs_open(networkNamespacePath, $0) }, close: { cnetlink_ipvs_close($0) })
    }

    /// Opens a handle inside the named network namespace (`ip netns add NAME`).
    public convenience init(networkNamespace name: String) throws {
        try self.init(networkNamespacePath: "/var/run/netns/\(name)")
    }

    /// Sets the socket's receive buffer (8 MiB by default), where the answers to a batch's failed operations
    /// wait to be read. When they overflow it, ``apply(_:)`` throws `ENOBUFS`: the batch's outcome is unknown.
    public func setReceiveBufferSize(_ bytes: Int) throws {
        try shim.call("set the receive buffer") { cnetlink_ipvs_set_receive_buffer($0, Int32(clamping: bytes)) }
    }

    // MARK: - Reading

    /// The IPVS version and connection table size.
    public func info() throws -> IPVSInfo {
        var version: UInt32 = 0
        var tableSize: UInt32 = 0
        try shim.call("get IPVS info") { cnetlink_ipvs_get_info($0, &version, &tableSize) }
        return IPVSInfo(version: IPVSVersion(encoded: version), connectionTableSize: tableSize)
    }

    /// The connection timeouts (the kernel's GET_CONFIG).
    public func timeouts() throws -> IPVSTimeouts {
        var timeouts = cnetlink_timeouts()
        try shim.call("get IPVS timeouts") { cnetlink_ipvs_get_timeouts($0, &timeouts) }
        return IPVSTimeouts(tcp: timeouts.tcp, tcpFin: timeouts.tcp_fin, udp: timeouts.udp)
    }

    /// Sets connection timeouts; a timeout of 0 is left unchanged.
    public func setTimeouts(_ timeouts: IPVSTimeouts) throws {
        var cTimeouts = cnetlink_timeouts(tcp: timeouts.tcp, tcp_fin: timeouts.tcpFin, udp: timeouts.udp)
        try shim.call("set IPVS timeouts \(timeouts)") { cnetlink_ipvs_set_timeouts($0, &cTimeouts) }
    }

    /// Every virtual server, without their real servers.
    public func virtualServers() throws -> [VirtualServerState] {
        try shim.withHandle { handle throws(IPVSError) in try dumpServices(handle) }
    }

    /// One virtual server, or `nil` when the kernel has none with that key.
    public func virtualServer(_ key: VirtualServerKey) throws -> VirtualServerState? {
        var cKey = key.cKey
        var entry = cnetlink_service_entry()
        let result = shim.withHandle { cnetlink_ipvs_get_service($0, &cKey, &entry) }
        if result == ShimError.kernel(.noSuchProcess).rawValue { return nil }
        try IPVSError.check(result, "get virtual server \(key)")
        return VirtualServerState(entry)
    }

    /// The real servers of one virtual server (none when it does not exist).
    public func realServers(of key: VirtualServerKey) throws -> [RealServerState] {
        try shim.withHandle { handle throws(IPVSError) in try dumpDestinations(handle, key) }
    }

    /// The whole table: every virtual server with its real servers, in one service dump plus one real
    /// server dump per virtual server. A dump is not an atomic snapshot: the table may change meanwhile.
    public func table() throws -> [VirtualServerState] {
        try shim.withHandle { handle throws(IPVSError) in
            var servers = try dumpServices(handle)
            for index in servers.indices {
                servers[index].realServers = try dumpDestinations(handle, servers[index].server.key)
            }
            return servers
        }
    }

    /// How many of this handle's dumps the kernel marked interrupted (each was read again from the start).
    /// The kernel does not mark IPVS dumps, so this stays 0 unless that changes.
    public var interruptedDumps: Int { shim.interruptedDumps }

    private func dumpServices(_ handle: OpaquePointer) throws(IPVSError) -> [VirtualServerState] {
        try shim.dump(on: handle, "dump virtual servers", startingWith: []) { handle, servers in
            cnetlink_ipvs_dump_services(
                handle,
                { entry, context in
                    let servers = context!.assumingMemoryBound(to: [VirtualServerState].self)
                    servers.pointee.append(VirtualServerState(entry!.pointee))
                    return 0
                }, servers)
        }
    }

    private func dumpDestinations(_ handle: OpaquePointer, _ key: VirtualServerKey) throws(IPVSError)
        -> [RealServerState]
    {
        var cKey = key.cKey
        return try shim.dump(on: handle, "dump real servers of \(key)", startingWith: []) { handle, servers in
            cnetlink_ipvs_dump_destinations(
                handle, &cKey,
                { entry, context in
                    let servers = context!.assumingMemoryBound(to: [RealServerState].self)
                    servers.pointee.append(RealServerState(entry!.pointee))
                    return 0
                }, servers)
        }
    }

    // MARK: - Writing

    /// Applies one operation and waits for the kernel to acknowledge it.
    public func execute(_ operation: TableOperation) throws {
        var cOperation = operation.cOperation
        let result = shim.withHandle { cnetlink_ipvs_execute($0, &cOperation) }
        if let error = ShimError(code: result) {
            throw IPVSError(operation: operation.description, error, scheduler: operation.requestedScheduler)
        }
    }

    public func add(_ server: VirtualServer) throws { try execute(.addVirtualServer(server)) }
    public func edit(_ server: VirtualServer) throws { try execute(.editVirtualServer(server)) }
    public func delete(_ key: VirtualServerKey) throws { try execute(.deleteVirtualServer(key)) }
    public func add(_ server: RealServer, to key: VirtualServerKey) throws {
        try execute(.addRealServer(server, to: key))
    }
    public func edit(_ server: RealServer, in key: VirtualServerKey) throws {
        try execute(.editRealServer(server, in: key))
    }
    public func delete(_ server: RealServerKey, from key: VirtualServerKey) throws {
        try execute(.deleteRealServer(server, from: key))
    }

    /// Deletes every virtual server in the namespace, including ones this program did not create.
    public func flush() throws {
        try shim.call("flush IPVS table") { cnetlink_ipvs_flush($0) }
    }

    /// Zeroes the counters of one virtual server and its real servers, or of all when `key` is `nil`.
    public func zeroCounters(of key: VirtualServerKey? = nil) throws {
        let operation = key.map { "zero counters of \($0)" } ?? "zero all counters"
        if var cKey = key?.cKey {
            try shim.call(operation) { cnetlink_ipvs_zero($0, &cKey) }
        } else {
            try shim.call(operation) { cnetlink_ipvs_zero($0, nil) }
        }
    }

    /// Applies operations as one batch: many netlink messages per `send()`, no acknowledgement per message,
    /// then one acknowledged request that proves the kernel has handled them all.
    ///
    /// The kernel applies operations in order and goes on after a failure; the failures come back here.
    /// - Returns: The operations the kernel refused, in batch order (empty when all succeeded).
    /// - Throws: ``IPVSError`` when the batch could not be sent or its outcome is unknown (for example,
    ///   `ENOBUFS` when the socket overflowed): then any part of it may have been applied.
    public func apply(_ operations: [TableOperation]) throws -> [BatchFailure] {
        let refusals = try shim.batch(
            "apply a batch of \(operations.count) IPVS operations", operations,
            begin: { cnetlink_ipvs_batch_begin($0) },
            append: { handle, operation in
                var cOperation = operation.cOperation
                return cnetlink_ipvs_batch_append(handle, &cOperation)
            },
            commit: { cnetlink_ipvs_batch_commit($0, $1, $2) })
        return refusals.map { refusal in
            let operation = operations[refusal.index]
            return BatchFailure(
                index: refusal.index, operation: operation,
                error: IPVSError(
                    operation: operation.description, refusal.error, scheduler: operation.requestedScheduler))
        }
    }
}

extension IPVSError: ShimCallError {
    package init(operation: String, _ error: ShimError) {
        self.init(operation: operation, error, scheduler: nil)
    }

    init(operation: String, _ error: ShimError, scheduler: Scheduler?) {
        self.init(operation: operation, reason: error.reason, scheduler: scheduler)
    }
}

/// The IPVS version, as the kernel encodes it (`0x010201` is 1.2.1).
public struct IPVSVersion: Sendable, Hashable, CustomStringConvertible {
    public let major: Int
    public let minor: Int
    public let patch: Int

    public init(encoded: UInt32) {
        major = Int(encoded >> 16 & 0xFF)
        minor = Int(encoded >> 8 & 0xFF)
        patch = Int(encoded & 0xFF)
    }

    public var description: String { "\(major).\(minor).\(patch)" }
}

/// What the kernel's GET_INFO reports.
public struct IPVSInfo: Sendable, Hashable {
    public let version: IPVSVersion
    /// The number of buckets in the connection hash table.
    public let connectionTableSize: UInt32
}

/// IPVS connection timeouts in seconds.
public struct IPVSTimeouts: Sendable, Hashable, CustomStringConvertible {
    public var tcp: UInt32
    public var tcpFin: UInt32
    public var udp: UInt32

    public init(tcp: UInt32 = 0, tcpFin: UInt32 = 0, udp: UInt32 = 0) {
        self.tcp = tcp
        self.tcpFin = tcpFin
        self.udp = udp
    }

    public var description: String { "tcp \(tcp)s, tcpfin \(tcpFin)s, udp \(udp)s" }
}
