import CNetlink
import IPVSModel
import ShimDumps
import Synchronization
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
    // The shim's socket is not thread-safe: it is used only with `lock` held.
    private nonisolated(unsafe) let handle: OpaquePointer
    private let lock = Mutex(())
    // The kernel does not flag IPVS dumps interrupted (they carry no generation number), but reading them
    // the way every other dump is read costs nothing and holds if it ever does.
    private let dumps = DumpRereader()

    /// Opens a handle for the caller's network namespace, or for the namespace at `networkNamespacePath`
    /// (such as `/var/run/netns/NAME`).
    /// - Throws: ``IPVSError`` with reason ``IPVSError/Reason/ipvsUnavailable`` when the kernel has no IPVS.
    public init(networkNamespacePath: String? = nil) throws {
        var handle: OpaquePointer?
        let result = cnetlink_ipvs_open(networkNamespacePath, &handle)
        guard result == 0, let handle else {
            let place = networkNamespacePath.map { " in network namespace \($0)" } ?? ""
            throw IPVSError(operation: "open IPVS netlink socket\(place)", code: result)
        }
        self.handle = handle
    }

    /// Opens a handle inside the named network namespace (`ip netns add NAME`).
    public convenience init(networkNamespace name: String) throws {
        try self.init(networkNamespacePath: "/var/run/netns/\(name)")
    }

    deinit {
        cnetlink_ipvs_close(handle)
    }

    /// Sets the socket's receive buffer (8 MiB by default), where the answers to a batch's failed operations
    /// wait to be read. When they overflow it, ``apply(_:)`` throws `ENOBUFS`: the batch's outcome is unknown.
    public func setReceiveBufferSize(_ bytes: Int) throws {
        try withHandle {
            try Self.check(cnetlink_ipvs_set_receive_buffer($0, Int32(clamping: bytes)), "set the receive buffer")
        }
    }

    private func withHandle<Result>(_ body: (OpaquePointer) throws -> Result) rethrows -> Result {
        try lock.withLock { _ in try body(handle) }
    }

    private static func check(_ result: Int32, _ operation: @autoclosure () -> String) throws {
        if result < 0 { throw IPVSError(operation: operation(), code: result) }
    }

    // MARK: - Reading

    /// The IPVS version and connection table size.
    public func info() throws -> IPVSInfo {
        var version: UInt32 = 0
        var tableSize: UInt32 = 0
        try withHandle { try Self.check(cnetlink_ipvs_get_info($0, &version, &tableSize), "get IPVS info") }
        return IPVSInfo(version: IPVSVersion(encoded: version), connectionTableSize: tableSize)
    }

    /// The connection timeouts (the kernel's GET_CONFIG).
    public func timeouts() throws -> IPVSTimeouts {
        var timeouts = cnetlink_timeouts()
        try withHandle { try Self.check(cnetlink_ipvs_get_timeouts($0, &timeouts), "get IPVS timeouts") }
        return IPVSTimeouts(tcp: timeouts.tcp, tcpFin: timeouts.tcp_fin, udp: timeouts.udp)
    }

    /// Sets connection timeouts; a timeout of 0 is left unchanged.
    public func setTimeouts(_ timeouts: IPVSTimeouts) throws {
        var cTimeouts = cnetlink_timeouts(tcp: timeouts.tcp, tcp_fin: timeouts.tcpFin, udp: timeouts.udp)
        try withHandle {
            try Self.check(cnetlink_ipvs_set_timeouts($0, &cTimeouts), "set IPVS timeouts \(timeouts)")
        }
    }

    /// Every virtual server, without their real servers.
    public func virtualServers() throws -> [VirtualServerState] {
        try withHandle { try dumpServices($0) }
    }

    /// One virtual server, or `nil` when the kernel has none with that key.
    public func virtualServer(_ key: VirtualServerKey) throws -> VirtualServerState? {
        var cKey = key.cKey
        var entry = cnetlink_service_entry()
        let result = withHandle { cnetlink_ipvs_get_service($0, &cKey, &entry) }
        if result == -Errno.noSuchProcess.rawValue { return nil }
        try Self.check(result, "get virtual server \(key)")
        return VirtualServerState(entry)
    }

    /// The real servers of one virtual server (none when it does not exist).
    public func realServers(of key: VirtualServerKey) throws -> [RealServerState] {
        try withHandle { try dumpDestinations($0, key) }
    }

    /// The whole table: every virtual server with its real servers, in one service dump plus one real
    /// server dump per virtual server. A dump is not an atomic snapshot: the table may change meanwhile.
    public func table() throws -> [VirtualServerState] {
        try withHandle { handle in
            var servers = try dumpServices(handle)
            for index in servers.indices {
                servers[index].realServers = try dumpDestinations(handle, servers[index].server.key)
            }
            return servers
        }
    }

    /// How many of this handle's dumps the kernel marked interrupted (each was read again from the start).
    /// The kernel does not mark IPVS dumps, so this stays 0 unless that changes.
    public var interruptedDumps: Int { dumps.interruptedDumps }

    private func dumpServices(_ handle: OpaquePointer) throws -> [VirtualServerState] {
        let (result, servers) = dumps.gather(startingWith: [VirtualServerState]()) { servers in
            cnetlink_ipvs_dump_services(
                handle,
                { entry, context in
                    let servers = context!.assumingMemoryBound(to: [VirtualServerState].self)
                    servers.pointee.append(VirtualServerState(entry!.pointee))
                    return 0
                }, servers)
        }
        try Self.check(result, "dump virtual servers")
        return servers
    }

    private func dumpDestinations(_ handle: OpaquePointer, _ key: VirtualServerKey) throws -> [RealServerState] {
        var cKey = key.cKey
        let (result, servers) = dumps.gather(startingWith: [RealServerState]()) { servers in
            cnetlink_ipvs_dump_destinations(
                handle, &cKey,
                { entry, context in
                    let servers = context!.assumingMemoryBound(to: [RealServerState].self)
                    servers.pointee.append(RealServerState(entry!.pointee))
                    return 0
                }, servers)
        }
        try Self.check(result, "dump real servers of \(key)")
        return servers
    }

    // MARK: - Writing

    /// Applies one operation and waits for the kernel to acknowledge it.
    public func execute(_ operation: TableOperation) throws {
        var cOperation = operation.cOperation
        let result = withHandle { cnetlink_ipvs_execute($0, &cOperation) }
        if result < 0 {
            throw IPVSError(operation: operation.description, code: result, scheduler: operation.requestedScheduler)
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
        try withHandle { try Self.check(cnetlink_ipvs_flush($0), "flush IPVS table") }
    }

    /// Zeroes the counters of one virtual server and its real servers, or of all when `key` is `nil`.
    public func zeroCounters(of key: VirtualServerKey? = nil) throws {
        let result: Int32
        if var cKey = key?.cKey {
            result = withHandle { cnetlink_ipvs_zero($0, &cKey) }
        } else {
            result = withHandle { cnetlink_ipvs_zero($0, nil) }
        }
        try Self.check(result, key.map { "zero counters of \($0)" } ?? "zero all counters")
    }

    /// Applies operations as one batch: many netlink messages per `send()`, no acknowledgement per message,
    /// then one acknowledged request that proves the kernel has handled them all.
    ///
    /// The kernel applies operations in order and goes on after a failure; the failures come back here.
    /// - Returns: The operations the kernel refused, in batch order (empty when all succeeded).
    /// - Throws: ``IPVSError`` when the batch could not be sent or its outcome is unknown (for example,
    ///   `ENOBUFS` when the socket overflowed): then any part of it may have been applied.
    public func apply(_ operations: [TableOperation]) throws -> [BatchFailure] {
        let (result, failures) = withHandle { handle -> (Int32, ShimFailures) in
            let begun = cnetlink_ipvs_batch_begin(handle)
            guard begun == 0 else { return (begun, []) }
            for operation in operations {
                var cOperation = operation.cOperation
                let appended = cnetlink_ipvs_batch_append(handle, &cOperation)
                guard appended == 0 else { return (appended, []) }
            }
            return collectingFailures { cnetlink_ipvs_batch_commit(handle, $0, $1) }
        }
        try Self.check(result, "apply a batch of \(operations.count) IPVS operations")
        return failures.map { failure in
            let operation = operations[failure.index]
            return BatchFailure(
                index: failure.index, operation: operation,
                error: IPVSError(
                    operation: operation.description, code: failure.code, scheduler: operation.requestedScheduler))
        }
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
