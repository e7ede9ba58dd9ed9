import CNetlink
import IPVSModel
import Synchronization
import SystemPackage

/// Hears the kernel announce address changes (rtnetlink's address groups) in one network namespace, so that
/// node ports follow the node's addresses as they come and go.
public final class AddressMonitor: Sendable {
    // The shim's socket is not thread-safe: it is used only with `lock` held.
    private nonisolated(unsafe) let handle: OpaquePointer
    private let lock = Mutex(())

    /// Joins the announcements of the caller's network namespace, or the one at `networkNamespacePath`.
    public init(networkNamespacePath: String? = nil) throws {
        var handle: OpaquePointer?
        let result = cnetlink_address_monitor_open(networkNamespacePath, &handle)
        guard result == 0, let handle else {
            let place = networkNamespacePath.map { " in network namespace \($0)" } ?? ""
            throw IPVSError(operation: "listen for address changes\(place)", code: result)
        }
        self.handle = handle
    }

    deinit {
        cnetlink_address_monitor_close(handle)
    }

    /// Blocks up to `timeout` for announcements; `nil` when none came.
    public func wait(timeout: Duration) throws -> AddressAnnouncement? {
        let (seconds, attoseconds) = timeout.components
        let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
        let capacity = 1024
        var indexes = [Int32](repeating: 0, count: capacity)
        let result = lock.withLock { _ in
            indexes.withUnsafeMutableBufferPointer {
                cnetlink_address_monitor_wait(handle, milliseconds, $0.baseAddress, capacity)
            }
        }
        if result == -Errno.noBufferSpace.rawValue { return .lost }
        if result < 0 { throw IPVSError(operation: "read address changes", code: result) }
        if result == 0 { return nil }
        // More than fit: the links beyond are unknown, which is as good as lost.
        return Int(result) > capacity ? .lost : .changed(links: Array(indexes.prefix(Int(result))))
    }
}
