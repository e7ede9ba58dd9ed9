import CTestSupport
import Foundation
import IPVS
import IPVSModel

/// Reads a namespace's virtual servers every `interval`, on a thread of its own, and records each reading at which
/// a virtual server that should be there was missing: for tests that must show the table never loses what it
/// should hold while the daemon is flooded, starved, restarted, ...
///
/// `expected` gives the keys that must be present at the moment it is asked. It is asked just before and just after
/// each reading, and a key counts as missing only when both answers want it, so a test may change its answer
/// around a change of its own: drop a key before it deletes the Service, add one once it has seen it arrive.
final class VirtualServerSampler: @unchecked Sendable {
    /// One reading that lacked keys it should have had.
    struct Miss: CustomStringConvertible {
        /// Seconds since the sampler started.
        var at: Double
        var missing: [VirtualServerKey]
        var description: String {
            String(format: "%.2f s: ", at) + missing.map(\.description).sorted().joined(separator: ", ")
        }
    }

    /// What the sampler saw.
    struct Report: CustomStringConvertible {
        var readings: Int
        /// The longest time between the starts of two readings, in seconds.
        var longestGap: Double
        var misses: [Miss]
        /// Readings that failed (the table could not be read), with their error.
        var failures: [String]
        var description: String {
            "\(readings) readings, longest gap \(String(format: "%.3f", longestGap)) s, \(misses.count) with keys "
                + "missing\(misses.isEmpty ? "" : ": " + misses.prefix(10).map(\.description).joined(separator: "; "))"
                + (failures.isEmpty ? "" : ", \(failures.count) failed: \(failures.prefix(3))")
        }
    }

    private let report = LockedBox(Report(readings: 0, longestGap: 0, misses: [], failures: []))
    private let stopped = LockedBox(false)
    private let finished = DispatchSemaphore(value: 0)

    init(
        _ ipvs: IPVSHandle, every interval: Double = 0.1,
        expected: @escaping @Sendable () -> Set<VirtualServerKey>
    ) {
        let report = report
        let stopped = stopped
        let finished = finished
        Thread.detachNewThread {
            // The readings must keep their pace while the test and the daemon load the emulated VM: the thread runs at
            // real-time priority (root may), which a thread of normal priority cannot delay; else first among them.
            var priority = sched_param(sched_priority: 10)
            if pthread_setschedparam(pthread_self(), SCHED_FIFO, &priority) != 0 { _ = test_set_thread_nice(-10) }
            let start = Date()
            var last: Date?
            while !stopped.value {
                let now = Date()
                let wantedBefore = expected()
                let reading = Result { try ipvs.virtualServers() }
                let wanted = wantedBefore.intersection(expected())
                var current = report.value
                current.readings += 1
                if let last { current.longestGap = max(current.longestGap, now.timeIntervalSince(last)) }
                last = now
                switch reading {
                case .success(let servers):
                    let present = Set(servers.map(\.server.key))
                    let missing = wanted.subtracting(present)
                    if !missing.isEmpty {
                        current.misses.append(Miss(at: now.timeIntervalSince(start), missing: Array(missing)))
                    }
                case .failure(let error):
                    current.failures.append("\(error)")
                }
                report.value = current
                let rest = interval - Date().timeIntervalSince(now)
                if rest > 0 { Thread.sleep(forTimeInterval: rest) }
            }
            finished.signal()
        }
    }

    /// How many readings were taken so far: a fault is held for a number of them.
    var readings: Int { report.value.readings }

    /// Stops reading and says what was seen.
    func stop() -> Report {
        if !stopped.value {
            stopped.value = true
            finished.wait()
        }
        return report.value
    }

    deinit { _ = stop() }
}
