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

    /// Runs a shim dump whose visitor gathers into the value its context points to, until it returns anything but
    /// the shim's dump-interrupted code, at most ``attempts`` times: each attempt starts from a fresh `initial`
    /// value, so that no attempt adds to another's.
    /// - Parameter dump: Calls the shim with the pointer as the visitor's context; returns the shim's code.
    /// - Returns: The last attempt's code and what it gathered; a negative code means it must not be used.
    package func gather<Gathered>(
        startingWith initial: @autoclosure () -> Gathered, _ dump: (UnsafeMutablePointer<Gathered>) -> Int32
    ) -> (code: Int32, result: Gathered) {
        var attempt = 1
        while true {
            var gathered = initial()
            let code = withUnsafeMutablePointer(to: &gathered) { dump($0) }
            guard code == ShimError.dumpInterrupted.rawValue else { return (code, gathered) }
            interrupted.add(1, ordering: .relaxed)
            guard attempt < Self.attempts else { return (code, gathered) }
            attempt += 1
        }
    }
}
