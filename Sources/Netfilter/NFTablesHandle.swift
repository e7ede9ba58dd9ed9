import CNFTables
import CNetlink
import KernelShim
import NetfilterModel

/// A connection to the kernel's nftables of one network namespace, through libnftables: commands in nft's own
/// syntax, each call one atomic transaction.
///
/// Calls are serialized (a libnftables context is not thread-safe), so one handle may be shared between tasks.
public final class NFTablesHandle: Sendable {
    // The libnftables context, and a netlink socket of the shim's own for what libnftables does not expose.
    private let commands: ShimHandle<NetfilterError>
    private let netlink: ShimHandle<NetfilterError>

    /// Opens a context whose sockets live in the network namespace at `networkNamespacePath` (or the caller's).
    public init(networkNamespacePath: String? = nil) throws(NetfilterError) {
        netlink = try ShimHandle(
            "open nftables", networkNamespacePath: networkNamespacePath,
            open: { cnetlink_nftables_open(networkNamespacePath, $0) }, close: { cnetlink_nftables_close($0) })
        commands = try ShimHandle(
            "open nftables", networkNamespacePath: networkNamespacePath,
            open: { cnftables_open(networkNamespacePath, $0) }, close: { cnftables_close($0) })
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
        let result = self.commands.withHandle { cnftables_run($0, commands, flags, &output, &error) }
        defer {
            cnftables_free(output)
            cnftables_free(error)
        }
        if result == Int32(CNFTABLES_REFUSED) {
            throw NetfilterError(
                operation: operation, reason: .nftablesRefused(error.map { String(cString: $0) } ?? ""))
        }
        try NetfilterError.check(result, operation)
        return output.map { String(cString: $0) } ?? ""
    }

    /// The ruleset's generation id: every committed transaction, anyone's, moves it.
    public func generation() throws(NetfilterError) -> UInt32 {
        var generation: UInt32 = 0
        try netlink.call("read the nftables generation") { cnetlink_nftables_generation($0, &generation) }
        return generation
    }
}

extension NetfilterError: ShimCallError {
    package init(operation: String, _ error: ShimError) {
        self.init(operation: operation, reason: error.reason)
    }
}
