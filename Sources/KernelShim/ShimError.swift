import CNetlink
import KernelErrors
import SystemPackage

/// A negative code from the C shim, in the style of swift-system's `Errno`: the raw value is the code as the shim
/// returned it, `-errno` or one of the shim's own codes above the errno range, and ``reason`` says what it means.
///
/// The one place the shim's codes are decoded (CNetlink.h lists them). Each kernel module makes its own error of
/// it (``ShimCallError``), with what was being done.
package struct ShimError: RawRepresentable, Error, Hashable, Sendable, CustomStringConvertible {
    package let rawValue: Int32

    package init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// The failure a shim call's result reports, or `nil` when the call succeeded (0 or a count).
    package init?(code: Int32) {
        guard code < 0 else { return nil }
        self.init(rawValue: code)
    }

    /// The kernel's (or the C library's) errno, as the shim returns it: negated.
    package static func kernel(_ errno: Errno) -> ShimError { ShimError(rawValue: 0 &- errno.rawValue) }

    /// The IPVS generic netlink family is not registered.
    ///
    /// The corresponding C constant is `CNETLINK_ENOIPVS`.
    package static var ipvsUnavailable: ShimError { ShimError(rawValue: -Int32(CNETLINK_ENOIPVS)) }

    /// A reply was truncated or lacked an attribute the protocol requires.
    ///
    /// The corresponding C constant is `CNETLINK_EBADREPLY`.
    package static var malformedReply: ShimError { ShimError(rawValue: -Int32(CNETLINK_EBADREPLY)) }

    /// The kernel marked a dump interrupted: read it again.
    ///
    /// The corresponding C constant is `CNETLINK_EDUMPINTR`.
    package static var dumpInterrupted: ShimError { ShimError(rawValue: -Int32(CNETLINK_EDUMPINTR)) }

    /// libnl failed on its own with this `NLE_*` code, which is not an errno (`NLE_OBJ_NOTFOUND` is 12, like
    /// `ENOMEM`).
    ///
    /// The corresponding C constant is `CNETLINK_LIBNL_BASE`, plus the code.
    package static func netlinkLibrary(_ code: Int32) -> ShimError {
        ShimError(rawValue: -(Int32(CNETLINK_LIBNL_BASE) + code))
    }

    /// What the code means.
    package var reason: KernelFailure {
        let positive = 0 &- rawValue
        return switch positive {
        case Int32(CNETLINK_ENOIPVS): .ipvsUnavailable
        case Int32(CNETLINK_EBADREPLY): .malformedReply
        case Int32(CNETLINK_EDUMPINTR): .dumpInterrupted
        case Int32(CNETLINK_LIBNL_BASE)...: .netlinkLibrary(code: positive - Int32(CNETLINK_LIBNL_BASE))
        default: .kernel(Errno(rawValue: positive))
        }
    }

    package var description: String { reason.description }
}

/// The error a kernel module throws for a failed shim call: what was being done, and what the shim said.
package protocol ShimCallError: Error {
    init(operation: String, _ error: ShimError)
}

extension ShimCallError {
    /// Passes a shim call's result on: `code` when the call succeeded (0 or a count), this error for `operation`
    /// when the shim returned a negative code.
    @discardableResult
    package static func check(_ code: Int32, _ operation: @autoclosure () -> String) throws(Self) -> Int32 {
        if let error = ShimError(code: code) { throw Self(operation: operation(), error) }
        return code
    }
}

extension KernelCallError: ShimCallError {
    package init(operation: String, _ error: ShimError) {
        self.init(operation: operation, reason: error.reason)
    }
}
