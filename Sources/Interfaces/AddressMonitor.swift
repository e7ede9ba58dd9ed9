import CNetlink
import InterfaceModel
import KernelShim

/// Hears the kernel announce address changes (rtnetlink's address groups) in one network namespace, so that
/// node ports follow the node's addresses as they come and go.
public final class AddressMonitor: Sendable {
    private let shim: ShimHandle<KernelCallError>

    /// Joins the announcements of the caller's network namespace, or the one at `networkNamespacePath`.
    public init(networkNamespacePath: String? = nil) throws {
        shim = try ShimHandle(
            "listen for address changes", networkNamespacePath: networkNamespacePath,
            open: { cnetlink_address_monitor_open(networkNamespacePath, $0) },
            close: { cnetlink_address_monitor_close($0) })
    }

    /// Blocks up to `timeout` for announcements; `nil` when none came.
    public func wait(timeout: Duration) throws -> AddressAnnouncement? {
        let (seconds, attoseconds) = timeout.components
        let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        let capacity = 1024
        var indexes = [Int32](repeating: 0, count: capacity)
        let result = shim.withHandle { handle in
            indexes.withUnsafeMutableBufferPointer {
                cnetlink_address_monitor_wait(handle, milliseconds, $0.baseAddress, capacity)
            }
        }
        // The socket's buffer overflowed: announcements were lost.
        if result == ShimError.kernel(.noBufferSpace).rawValue { return .lost }
        try KernelCallError.check(result, "read address changes")
        if result == 0 { return nil }
        // More than fit: the links beyond are unknown, which is as good as lost.
        return Int(result) > capacity ? .lost : .changed(links: Array(indexes.prefix(Int(result))))
    }
}
