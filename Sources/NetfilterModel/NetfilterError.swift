import SystemPackage

/// A failed call to the kernel's nftables or conntrack, with the operation and its cause.
public struct NetfilterError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Why a call failed.
    public enum Reason: Sendable, Hashable {
        /// The kernel or the C library answered with this errno.
        case kernel(Errno)
        /// libnftables refused the commands or the kernel refused their transaction; libnftables' words.
        case refused(String)
        /// The kernel's reply did not have the shape the protocol promises.
        case malformedReply
        /// The kernel marked a dump interrupted (`NLM_F_DUMP_INTR`) every time it was read: its table changed
        /// while it was read, so entries may have been missed or repeated. Nothing of it was used.
        case dumpInterrupted
        /// libnl failed on its own, with this `NLE_*` code.
        case netlinkLibrary(code: Int32)
    }

    /// What was being done, e.g. `apply an nftables transaction`.
    public let operation: String
    public let reason: Reason

    public init(operation: String, reason: Reason) {
        self.operation = operation
        self.reason = reason
    }

    /// The errno, when the kernel gave one.
    public var errno: Errno? {
        if case .kernel(let errno) = reason { errno } else { nil }
    }

    /// Whether the kernel has no nf_tables (or no nfnetlink at all) to answer.
    public var isNFTablesMissing: Bool {
        switch reason {
        case .kernel(let errno): errno == .protocolNotSupported || errno == .invalidArgument
        case .refused(let text): text.contains("Protocol not supported") || text.contains("Operation not supported")
        default: false
        }
    }

    public var description: String {
        switch reason {
        case .kernel(let errno): "\(operation): \(errno)"
        case .refused(let text): "\(operation): \(text.trimmingTrailingNewlines)"
        case .malformedReply: "\(operation): the kernel's reply was malformed"
        case .dumpInterrupted:
            "\(operation): the kernel's table kept changing while it was read (each read was marked interrupted "
                + "and could miss entries); try again"
        case .netlinkLibrary(let code): "\(operation): libnl error \(code)"
        }
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var text = Substring(self)
        while text.last == "\n" { text = text.dropLast() }
        return String(text)
    }
}
