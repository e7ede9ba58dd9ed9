import CNetlink
import KernelErrors
import KernelShim
import Synchronization
import Testing

/// What a fake shim was asked.
private final class FakeShim: Sendable {
    static let address = 0x5EED
    static var pointer: OpaquePointer { OpaquePointer(bitPattern: address)! }
    /// The addresses of the pointers closed, in order.
    let closed = Mutex<[Int]>([])

    func open(result: Int32 = 0) throws(KernelCallError) -> ShimHandle<KernelCallError> {
        try ShimHandle(
            "open a fake", networkNamespacePath: "/run/netns/x",
            open: { place in
                if result == 0 { place.pointee = Self.pointer }
                return result
            }, close: { [self] pointer in closed.withLock { $0.append(Int(bitPattern: pointer)) } })
    }
}

@Suite("A shim handle", .timeLimit(.minutes(2)))
struct ShimHandleTests {
    @Test func itClosesWhatItOpenedOnce() throws {
        let shim = FakeShim()
        do {
            let handle = try shim.open()
            #expect(handle.withHandle { $0 } == FakeShim.pointer)
        }
        #expect(shim.closed.withLock { $0 } == [FakeShim.address])
    }

    @Test func aFailedOpenSaysWhereAndWhy() {
        let shim = FakeShim()
        let error = #expect(throws: KernelCallError.self) { try shim.open(result: -2) }
        #expect(error?.operation == "open a fake in network namespace /run/netns/x")
        #expect(error?.reason == .kernel(.noSuchFileOrDirectory))
        #expect(shim.closed.withLock { $0 }.isEmpty)
    }

    @Test func aCallPassesItsResultOnOrThrows() throws {
        let handle = try FakeShim().open()
        #expect(try handle.call("count") { _ in 3 } == 3)
        let error = #expect(throws: KernelCallError.self) { try handle.call("set link 4 up") { _ in -19 } }
        #expect(error?.description == "set link 4 up: No such device (ENODEV)")
    }

    /// Each attempt gathers into a fresh value; the interrupted ones are counted and thrown away.
    @Test func anInterruptedDumpIsReadAgainFromScratch() throws {
        let handle = try FakeShim().open()
        var attempt = 0
        let gathered = try handle.dump("list links", startingWith: [Int]()) { pointer, list in
            #expect(pointer == FakeShim.pointer)
            attempt += 1
            list.pointee.append(attempt)
            return attempt < 3 ? ShimError.dumpInterrupted.rawValue : 1
        }
        #expect(gathered == [3])
        #expect(handle.interruptedDumps == 2)
    }

    @Test func aDumpInterruptedEveryTimeThrowsAndIsNeverShort() throws {
        let handle = try FakeShim().open()
        var attempts = 0
        let error = #expect(throws: KernelCallError.self) {
            try handle.dump("list addresses", startingWith: [Int]()) { _, list in
                attempts += 1
                list.pointee.append(attempts)
                return ShimError.dumpInterrupted.rawValue
            }
        }
        #expect(error?.reason == .dumpInterrupted)
        #expect(error?.operation == "list addresses")
        #expect(attempts == DumpRereader.attempts)
        #expect(handle.interruptedDumps == DumpRereader.attempts)
    }

    @Test func aDumpThatFailsThrowsAtOnce() throws {
        let handle = try FakeShim().open()
        var attempts = 0
        let error = #expect(throws: KernelCallError.self) {
            try handle.dump("list links", startingWith: 0) { _, _ in
                attempts += 1
                return -5
            }
        }
        #expect(error?.reason == .kernel(.ioError))
        #expect(attempts == 1)
        #expect(handle.interruptedDumps == 0)
    }
}

/// What a fake batch was asked, and when.
private struct BatchLog {
    var calls: [String] = []
}

@Suite("A shim batch and its refusals", .timeLimit(.minutes(2)))
struct ShimBatchTests {
    /// The collector hands the commit a visitor and gathers what it reports, in order.
    @Test func theCollectorGathersEveryRefusal() {
        let (code, refusals) = ShimRefusal.collecting { visitor, context in
            visitor(2, -17, context)
            visitor(0, -3, context)
            visitor(7, -Int32(CNETLINK_EBADREPLY), context)
            return 3
        }
        #expect(code == 3)
        #expect(
            refusals == [
                ShimRefusal(index: 2, error: .kernel(.fileExists)),
                ShimRefusal(index: 0, error: .kernel(.noSuchProcess)),
                ShimRefusal(index: 7, error: .malformedReply),
            ])
    }

    @Test func aCommitWithoutRefusalsGathersNone() {
        let (code, refusals) = ShimRefusal.collecting { _, _ in 0 }
        #expect(code == 0)
        #expect(refusals.isEmpty)
    }

    @Test func aBatchBeginsAppendsEachAndCommits() throws {
        let handle = try FakeShim().open()
        var log = BatchLog()
        let refusals = try handle.batch(
            "apply 3", ["a", "b", "c"],
            begin: { _ in
                log.calls.append("begin")
                return 0
            },
            append: { _, item in
                log.calls.append(item)
                return 0
            },
            commit: { _, visitor, context in
                log.calls.append("commit")
                visitor(1, -17, context)
                return 1
            })
        #expect(log.calls == ["begin", "a", "b", "c", "commit"])
        #expect(refusals == [ShimRefusal(index: 1, error: .kernel(.fileExists))])
    }

    /// A batch that cannot be built or whose outcome is unknown throws, and sends nothing after the failure.
    @Test(arguments: [
        ("begin", ["begin"]), ("b", ["begin", "a", "b"]), ("commit", ["begin", "a", "b", "c", "commit"]),
    ])
    func aFailureAnywhereThrowsForTheWholeBatch(_ failing: String, _ calls: [String]) throws {
        let handle = try FakeShim().open()
        var log = BatchLog()
        let error = #expect(throws: KernelCallError.self) {
            try handle.batch(
                "apply 3", ["a", "b", "c"],
                begin: { _ in
                    log.calls.append("begin")
                    return failing == "begin" ? -12 : 0
                },
                append: { _, item in
                    log.calls.append(item)
                    return failing == item ? -12 : 0
                },
                commit: { _, visitor, context in
                    log.calls.append("commit")
                    visitor(0, -17, context)
                    return failing == "commit" ? -105 : 1
                })
        }
        #expect(log.calls == calls)
        #expect(error?.operation == "apply 3")
        #expect(error?.reason == .kernel(failing == "commit" ? .noBufferSpace : .noMemory))
    }
}
