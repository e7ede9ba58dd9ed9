import SystemPackage

/// Why a call to the kernel failed: the errno it answered, or what the C shim found wrong on its way.
///
/// The reason every kernel error of this package carries (``KernelCallError``, `IPVSError`, `NetfilterError`);
/// KernelShim's `ShimError` decodes the shim's return codes into it, in one place. Its description is the part
/// of a message after the operation, e.g. `File exists (EEXIST)`.
public enum KernelFailure: Sendable, Hashable, CustomStringConvertible {
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
    /// libnftables refused the commands or the kernel refused their transaction; libnftables' words.
    case nftablesRefused(String)

    /// The kernel's errno, when the kernel gave one.
    public var errno: Errno? {
        if case .kernel(let errno) = self { errno } else { nil }
    }

    public var description: String {
        switch self {
        case .kernel(let errno):
            if errno == .permissionDenied || errno == .notPermitted {
                "\(errno) (\(errno.symbol)); IPVS needs root or CAP_NET_ADMIN"
            } else {
                "\(errno) (\(errno.symbol))"
            }
        case .ipvsUnavailable:
            "IPVS is not available on this node: the kernel has no IPVS generic netlink family (module ip_vs not "
                + "loaded, or not built into this kernel; try `modprobe ip_vs`)"
        case .malformedReply:
            "the kernel's reply was malformed"
        case .dumpInterrupted:
            "the kernel's table kept changing while it was read (each read was marked interrupted and could miss "
                + "entries); try again"
        case .netlinkLibrary(let code):
            "libnl error \(code)"
        case .nftablesRefused(let text):
            text.trimmingTrailingNewlines
        }
    }
}

/// A failed call to the kernel, with what was being done and why: the error of the node's links, addresses and
/// address announcements, and of its settings and bound sockets.
public struct KernelCallError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was being done, e.g. `create dummy link kube-ipvs0`.
    public let operation: String
    public let reason: KernelFailure

    public init(operation: String, reason: KernelFailure) {
        self.operation = operation
        self.reason = reason
    }

    /// The kernel's errno, when the kernel gave one.
    public var errno: Errno? { reason.errno }

    public var description: String { "\(operation): \(reason)" }
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

extension String {
    var trimmingTrailingNewlines: String {
        var text = Substring(self)
        while text.last == "\n" { text = text.dropLast() }
        return String(text)
    }
}
