import CNetlink
import IPVSModel
import KernelErrors
import KernelShim
import NetfilterModel
import SystemPackage
import Testing

/// The shim's return codes decoded in their one place, `ShimError`.
@Suite("The shim's codes", .timeLimit(.minutes(2)))
struct ShimErrorTests {
    @Test(
        arguments: [
            // -errno, as the kernel and the C library answer.
            (-1, KernelFailure.kernel(.notPermitted)), (-2, .kernel(.noSuchFileOrDirectory)),
            (-3, .kernel(.noSuchProcess)),
            (-12, .kernel(.noMemory)), (-17, .kernel(.fileExists)), (-105, .kernel(.noBufferSpace)),
            // The shim's own codes, above every errno.
            (-0x10001, .ipvsUnavailable), (-0x10002, .malformedReply), (-0x10004, .dumpInterrupted),
            // libnl's NLE_* codes, which are not errno values: NLE_OBJ_NOTFOUND is 12, like ENOMEM.
            (-0x20000, .netlinkLibrary(code: 0)), (-(0x20000 + 12), .netlinkLibrary(code: 12)),
            (-(0x20000 + 33), .netlinkLibrary(code: 33)),
        ] as [(Int32, KernelFailure)])
    func eachCodeHasItsReason(_ code: Int32, _ reason: KernelFailure) throws {
        let error = try #require(ShimError(code: code))
        #expect(error.rawValue == code)
        #expect(error.reason == reason)
        #expect(error.description == reason.description)
    }

    @Test func aResultThatIsNotNegativeIsNoError() {
        #expect(ShimError(code: 0) == nil)
        #expect(ShimError(code: 7) == nil)
        #expect(ShimError(code: -1) != nil)
    }

    /// The named codes are the C constants, negated as the shim returns them, and decode to their own reasons.
    @Test func namedCodesAreTheCConstants() {
        #expect(ShimError.ipvsUnavailable.rawValue == -Int32(CNETLINK_ENOIPVS))
        #expect(ShimError.malformedReply.rawValue == -Int32(CNETLINK_EBADREPLY))
        #expect(ShimError.dumpInterrupted.rawValue == -Int32(CNETLINK_EDUMPINTR))
        #expect(ShimError.netlinkLibrary(12).rawValue == -(Int32(CNETLINK_LIBNL_BASE) + 12))
        #expect(ShimError.kernel(.fileExists).rawValue == -17)
        #expect(ShimError.ipvsUnavailable.reason == .ipvsUnavailable)
        #expect(ShimError.malformedReply.reason == .malformedReply)
        #expect(ShimError.dumpInterrupted.reason == .dumpInterrupted)
        #expect(ShimError.netlinkLibrary(12).reason == .netlinkLibrary(code: 12))
        #expect(ShimError.kernel(.resourceBusy).reason == .kernel(.resourceBusy))
    }

    /// The shim's own codes lie above every errno (Linux's MAX_ERRNO is 4095), apart from each other, and
    /// below libnl's range.
    @Test func theShimsCodesCollideWithNothing() {
        let own = [CNETLINK_ENOIPVS, CNETLINK_EBADREPLY, CNETLINK_EDUMPINTR].map { Int32($0) }
        #expect(own.allSatisfy { $0 > 4095 && $0 < Int32(CNETLINK_LIBNL_BASE) })
        #expect(Set(own).count == own.count)
    }
}

/// Every kernel error's words, written out: they are what users read in messages and logs, and must not change
/// when the errors are made differently.
@Suite("The kernel errors' words", .timeLimit(.minutes(2)))
struct KernelErrorWordsTests {
    static let interrupted =
        "the kernel's table kept changing while it was read (each read was marked interrupted and could miss "
        + "entries); try again"
    static let noIPVS =
        "IPVS is not available on this node: the kernel has no IPVS generic netlink family (module ip_vs not "
        + "loaded, or not built into this kernel; try `modprobe ip_vs`)"

    @Test(
        arguments: [
            (KernelFailure.kernel(.fileExists), "op: File exists (EEXIST)"),
            (.kernel(.notPermitted), "op: Operation not permitted (EPERM); IPVS needs root or CAP_NET_ADMIN"),
            (.kernel(.permissionDenied), "op: Permission denied (EACCES); IPVS needs root or CAP_NET_ADMIN"),
            (.kernel(Errno(rawValue: 1234)), "op: Unknown error 1234 (errno 1234)"),
            (.ipvsUnavailable, "op: " + noIPVS),
            (.malformedReply, "op: the kernel's reply was malformed"),
            (.dumpInterrupted, "op: " + interrupted),
            (.netlinkLibrary(code: 12), "op: libnl error 12"),
        ] as [(KernelFailure, String)])
    func linksAddressesAndTheTableSayTheSame(_ reason: KernelFailure, _ text: String) {
        #expect(KernelCallError(operation: "op", reason: reason).description == text)
        #expect(IPVSError(operation: "op", reason: reason).description == text)
    }

    @Test func aMissingSchedulerModuleIsNamed() {
        let error = IPVSError(
            operation: "add-virtual-server TCP 10.0.0.1:80 scheduler twos", reason: .kernel(.noSuchFileOrDirectory),
            scheduler: .weightedRandomTwosChoice)
        #expect(
            error.description
                == "add-virtual-server TCP 10.0.0.1:80 scheduler twos: scheduler 'twos' is not available in this "
                + "kernel (module ip_vs_twos not found) (ENOENT: No such file or directory)")
        // Without a scheduler, ENOENT is only ENOENT.
        #expect(
            IPVSError(operation: "op", reason: .kernel(.noSuchFileOrDirectory)).description
                == "op: No such file or directory (ENOENT)")
    }

    @Test(
        arguments: [
            (KernelFailure.kernel(.protocolNotSupported), "op: Protocol not supported"),
            (.kernel(.notPermitted), "op: Operation not permitted"),
            (
                .nftablesRefused("Error: Could not process rule: No such file or directory\nadd rule ...\n\n"),
                "op: Error: Could not process rule: No such file or directory\nadd rule ..."
            ),
            (.malformedReply, "op: the kernel's reply was malformed"),
            (.dumpInterrupted, "op: " + interrupted),
            (.netlinkLibrary(code: 3), "op: libnl error 3"),
        ] as [(KernelFailure, String)])
    func netfilterNamesTheErrnoInWordsOnly(_ reason: KernelFailure, _ text: String) {
        #expect(NetfilterError(operation: "op", reason: reason).description == text)
    }

    /// What a shim code becomes in an error: its decoded reason, worded the same.
    @Test func anErrorTakesTheDecodedReason() {
        let codes: [ShimError] = [.kernel(.fileExists), .malformedReply, .dumpInterrupted, .netlinkLibrary(12)]
        for code in codes {
            #expect(KernelCallError(operation: "op", code).reason == code.reason)
            #expect(KernelCallError(operation: "op", code).description == "op: \(code)")
        }
    }
}
