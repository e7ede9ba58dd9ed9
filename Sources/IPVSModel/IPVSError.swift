import KernelErrors
import SystemPackage

/// A failed call to the kernel's IPVS table, with the operation and its cause.
public struct IPVSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Why a call failed.
    public typealias Reason = KernelFailure

    /// What was being done, e.g. `add-virtual-server TCP 10.0.0.1:80 scheduler rr`.
    public let operation: String
    public let reason: Reason
    /// The scheduler the operation asked for, if any: the kernel's ENOENT then means it has no such module.
    public let scheduler: Scheduler?

    public init(operation: String, reason: Reason, scheduler: Scheduler? = nil) {
        self.operation = operation
        self.reason = reason
        self.scheduler = scheduler
    }

    /// The kernel's errno, when the kernel gave one.
    public var errno: Errno? { reason.errno }

    public var description: String {
        if case .kernel(let errno) = reason, errno == .noSuchFileOrDirectory, let scheduler {
            // The kernel says ENOENT when it cannot load a scheduler's module.
            return "\(operation): scheduler '\(scheduler)' is not available in this kernel "
                + "(module \(scheduler.moduleName) not found) (\(errno.symbol): \(errno))"
        }
        return "\(operation): \(reason)"
    }
}
