@_exported import KernelErrors
import SystemPackage

/// A failed call to the kernel's nftables or conntrack, with the operation and its cause.
public struct NetfilterError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Why a call failed: for nftables, most often ``KernelFailure/nftablesRefused(_:)`` with libnftables' words.
    public typealias Reason = KernelFailure

    /// What was being done, e.g. `apply an nftables transaction`.
    public let operation: String
    public let reason: Reason

    public init(operation: String, reason: Reason) {
        self.operation = operation
        self.reason = reason
    }

    /// The errno, when the kernel gave one.
    public var errno: Errno? { reason.errno }

    /// Whether the kernel has no nf_tables (or no nfnetlink at all) to answer.
    public var isNFTablesMissing: Bool {
        switch reason {
        case .kernel(let errno): errno == .protocolNotSupported || errno == .invalidArgument
        case .nftablesRefused(let text):
            text.contains("Protocol not supported") || text.contains("Operation not supported")
        default: false
        }
    }

    public var description: String {
        switch reason {
        // Netfilter's messages name the errno in words only.
        case .kernel(let errno): "\(operation): \(errno)"
        default: "\(operation): \(reason)"
        }
    }
}
