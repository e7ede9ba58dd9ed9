import CNetlink
import Synchronization

/// Reads the shim's dumps again, from scratch, while the kernel marks them interrupted; counts how often.
///
/// The kernel sends a large dump in parts and resumes it by position. When its table changes between two parts,
/// rtnetlink flags the parts that follow `NLM_F_DUMP_INTR` (they may skip or repeat links or addresses), and the
/// shim returns `-CNETLINK_EDUMPINTR`. IPVS and conntrack dumps are not flagged today; they are read the same
/// way, so that nothing depends on which dumps the kernel flags. What such a read gathered is not the table:
/// it is thrown away and the dump read anew, at most ``attempts`` times; after that the code goes to the caller,
/// which throws it. A dump is never taken as shorter than it is.
package final class DumpRereader: Sendable {
    /// How many times one dump is read at most. Churn that outlasts this many reads in a row is a failure the
    /// caller reports (and retries at its next sync), not a reason to wait here.
    package static let attempts = 5

    private let interrupted = Atomic<Int>(0)

    package init() {}

    /// How many dump reads the kernel marked interrupted (each was read again, unless it was the last attempt).
    package var interruptedDumps: Int { interrupted.load(ordering: .relaxed) }

    /// Runs `dump` until it returns anything but `-CNETLINK_EDUMPINTR`, at most ``attempts`` times.
    /// - Parameter dump: One whole dump, gathered into a result it makes itself, so that no attempt adds to
    ///   another's. Returns the shim's code with that result.
    /// - Returns: The last attempt's code and result; a negative code means the result must not be used.
    /// Runs a shim dump whose visitor gathers into the value its context points to: each attempt starts from a
    /// fresh `initial` value.
    /// - Parameter dump: Calls the shim with the pointer as the visitor's context; returns the shim's code.
    /// - Returns: The last attempt's code and what it gathered; a negative code means it must not be used.
    package func gather<Gathered>(
        startingWith initial: @autoclosure () -> Gathered, _ dump: (UnsafeMutablePointer<Gathered>) -> Int32
    ) -> (code: Int32, result: Gathered) {
        read {
            var gathered = initial()
            let code = withUnsafeMutablePointer(to: &gathered) { dump($0) }
            return (code, gathered)
        }
    }

    package func read<Result>(_ dump: () -> (code: Int32, result: Result)) -> (code: Int32, result: Result) {
        var attempt = 1
        while true {
            let outcome = dump()
            guard outcome.code == -Int32(CNETLINK_EDUMPINTR) else { return outcome }
            interrupted.add(1, ordering: .relaxed)
            guard attempt < Self.attempts else { return outcome }
            attempt += 1
        }
    }
}
