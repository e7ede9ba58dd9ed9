import IPVSModel
import Testing

@testable import IPVS

#if canImport(Glibc)
    import Glibc
#endif

/// Whether this kernel has IPVS loaded (it registers /proc/net/ip_vs).
private let kernelHasIPVS = access("/proc/net/ip_vs", F_OK) == 0

@Suite("A kernel without IPVS", .timeLimit(.minutes(2)))
struct UnavailableIPVSTests {
    // The development and CI hosts run a kernel without IPVS; in the VM this is covered by the
    // integration tests instead.
    @Test(.enabled(if: !kernelHasIPVS, "this kernel has IPVS"))
    func openingAHandleFailsWithAClearReason() throws {
        let error = try #require(throws: IPVSError.self) { try IPVSHandle() }
        #expect(error.reason == .ipvsUnavailable)
        #expect(error.description.contains("IPVS is not available on this node"))
    }
}
