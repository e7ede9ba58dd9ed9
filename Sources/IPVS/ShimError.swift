import CNetlink
import IPVSModel
import SystemPackage

extension IPVSError {
    /// Decodes one of the shim's negative return codes: `-errno`, or one of its own codes above the errno range.
    init(operation: String, code: Int32, scheduler: Scheduler? = nil) {
        let positive = -code
        let reason: Reason =
            switch positive {
            case Int32(CNETLINK_ENOIPVS): .ipvsUnavailable
            case Int32(CNETLINK_EBADREPLY): .malformedReply
            case Int32(CNETLINK_EDUMPINTR): .dumpInterrupted
            case Int32(CNETLINK_LIBNL_BASE)...: .netlinkLibrary(code: positive - Int32(CNETLINK_LIBNL_BASE))
            default: .kernel(Errno(rawValue: positive))
            }
        self.init(operation: operation, reason: reason, scheduler: scheduler)
    }
}
