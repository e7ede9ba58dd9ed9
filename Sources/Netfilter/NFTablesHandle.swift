import CNFTables
import CNetlink
import NetfilterModel
import Synchronization
import SystemPackage

/// A connection to the kernel's nftables of one network namespace, through libnftables: commands in nft's own
/// syntax, each call one atomic transaction.
///
/// Calls are serialized (a libnftables context is not thread-safe), so one handle may be shared between tasks.
public final class NFTablesHandle: Sendable {
    // Used only with `lock` held: the libnftables context, and the netlink socket for the generation id.
    private nonisolated(unsafe) let handle: OpaquePointer
    private nonisolated(unsafe) let netlink: OpaquePointer
    private let lock = Mutex(())

    /// Opens a context whose sockets live in the network namespace at `networkNamespacePath` (or the caller's).
    public init(networkNamespacePath: String? = nil) throws(NetfilterError) {
        let place = networkNamespacePath.map { " in network namespace \($0)" } ?? ""
        var netlink: OpaquePointer?
        var result = cnetlink_nftables_open(networkNamespacePath, &netlink)
        guard result == 0, let netlink else { throw NetfilterError(operation: "open nftables\(place)", code: result) }
        var handle: OpaquePointer?
        result = cnftables_open(networkNamespacePath, &handle)
        guard result == 0, let handle else {
            cnetlink_nftables_close(netlink)
            throw NetfilterError(operation: "open nftables\(place)", code: result)
        }
        self.handle = handle
        self.netlink = netlink
    }

    deinit {
        cnftables_close(handle)
        cnetlink_nftables_close(netlink)
    }

    /// Runs `commands` as one transaction (all of it or nothing) and returns what libnftables printed.
    /// - Parameters:
    ///   - dryRun: Check the commands, and the kernel's answer to them, without committing anything.
    ///   - json: List in libnftables' JSON.
    public func run(_ commands: String, operation: String, dryRun: Bool = false, json: Bool = false)
        throws(NetfilterError)
        -> String
    {
        var flags: UInt32 = 0
        if dryRun { flags |= UInt32(CNFTABLES_DRY_RUN) }
        if json { flags |= UInt32(CNFTABLES_JSON) }
        var output: UnsafeMutablePointer<CChar>?
        var error: UnsafeMutablePointer<CChar>?
        let result = lock.withLock { _ in cnftables_run(handle, commands, flags, &output, &error) }
        defer {
            cnftables_free(output)
            cnftables_free(error)
        }
        let outputText = output.map { String(cString: $0) } ?? ""
        if result == Int32(CNFTABLES_REFUSED) {
            throw NetfilterError(operation: operation, reason: .refused(error.map { String(cString: $0) } ?? ""))
        }
        if result < 0 { throw NetfilterError(operation: operation, code: result) }
        return outputText
    }

    /// The ruleset's generation id: every committed transaction, anyone's, moves it.
    public func generation() throws(NetfilterError) -> UInt32 {
        var generation: UInt32 = 0
        let result = lock.withLock { _ in cnetlink_nftables_generation(netlink, &generation) }
        if result < 0 { throw NetfilterError(operation: "read the nftables generation", code: result) }
        return generation
    }
}

extension NetfilterError {
    /// Decodes one of the shim's negative return codes.
    init(operation: String, code: Int32) {
        let positive = -code
        let reason: Reason =
            switch positive {
            case Int32(CNETLINK_EBADREPLY): .malformedReply
            case Int32(CNETLINK_EDUMPINTR): .dumpInterrupted
            case Int32(CNETLINK_LIBNL_BASE)...: .netlinkLibrary(code: positive - Int32(CNETLINK_LIBNL_BASE))
            default: .kernel(Errno(rawValue: positive))
            }
        self.init(operation: operation, reason: reason)
    }
}
