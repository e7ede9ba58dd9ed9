import SystemPackage

/// A failed call to the kernel's IPVS or routing interface, with the operation and its cause.
public struct IPVSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Why a call failed.
    public enum Reason: Sendable, Hashable {
        /// The kernel (or the C library) answered with this errno.
        case kernel(Errno)
        /// The IPVS generic netlink family is not registered: module `ip_vs` is not loaded or not built.
        case ipvsUnavailable
        /// The kernel's reply did not have the shape the protocol promises.
        case malformedReply
        /// The kernel marked a dump interrupted (`NLM_F_DUMP_INTR`) every time it was read: its table changed
        /// while it was read, so entries may have been missed or repeated. Nothing of it was used.
        case dumpInterrupted
        /// libnl failed on its own, with this `NLE_*` code.
        case netlinkLibrary(code: Int32)
    }

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
    public var errno: Errno? {
        if case .kernel(let errno) = reason { errno } else { nil }
    }

    public var description: String {
        switch reason {
        case .kernel(let errno):
            if errno == .noSuchFileOrDirectory, let scheduler {
                // The kernel says ENOENT when it cannot load a scheduler's module.
                return "\(operation): scheduler '\(scheduler)' is not available in this kernel "
                    + "(module \(scheduler.moduleName) not found) (\(errno.symbol): \(errno))"
            }
            if errno == .permissionDenied || errno == .notPermitted {
                return "\(operation): \(errno) (\(errno.symbol)); IPVS needs root or CAP_NET_ADMIN"
            }
            return "\(operation): \(errno) (\(errno.symbol))"
        case .ipvsUnavailable:
            return "\(operation): IPVS is not available on this node: the kernel has no IPVS generic netlink "
                + "family (module ip_vs not loaded, or not built into this kernel; try `modprobe ip_vs`)"
        case .malformedReply:
            return "\(operation): the kernel's reply was malformed"
        case .dumpInterrupted:
            return "\(operation): the kernel's table kept changing while it was read (each read was marked "
                + "interrupted and could miss entries); try again"
        case .netlinkLibrary(let code):
            return "\(operation): libnl error \(code)"
        }
    }
}

extension Errno {
    /// The C constant's name (`ENOENT`), for messages that people search for.
    public var symbol: String {
        let names: [Errno: String] = [
            .noSuchFileOrDirectory: "ENOENT", .noSuchProcess: "ESRCH", .fileExists: "EEXIST",
            .invalidArgument: "EINVAL", .notPermitted: "EPERM", .permissionDenied: "EACCES",
            .outOfRange: "ERANGE", .noBufferSpace: "ENOBUFS", .noSuchAddressOrDevice: "ENXIO",
            .operationNotSupportedByDevice: "ENODEV", .resourceBusy: "EBUSY", .noMemory: "ENOMEM",
            .notSupported: "EOPNOTSUPP", .addressNotAvailable: "EADDRNOTAVAIL", .interrupted: "EINTR",
            .messageTooLong: "EMSGSIZE", .protocolNotSupported: "EPROTONOSUPPORT",
        ]
        return names[self] ?? "errno \(rawValue)"
    }
}
