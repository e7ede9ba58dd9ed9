import Foundation
import IPVS
import IPVSModel
import Synchronization

/// Reads a namespace's IPVS virtual servers on a thread of its own, every `interval`, while a fault goes on, and
/// keeps every sample at which a virtual server that must be there was missing.
///
/// What must be there may change while sampling (a Service removed on purpose): `required` is asked at each sample.
final class VirtualServerSampler: Sendable {
    /// One sample that lacked something.
    struct Miss: CustomStringConvertible {
        var at: Date
        var missing: [VirtualServerKey]
        var description: String { "\(at.timeIntervalSince1970): missing \(missing.map(\.description))" }
    }

    /// What a sampling run saw.
    struct Report: CustomStringConvertible {
        var samples = 0
        /// The longest time between two samples (reads of the table included).
        var longestGap: TimeInterval = 0
        var misses: [Miss] = []
        /// Reads of the table that failed.
        var failures: [String] = []

        var description: String {
            "\(samples) samples, longest gap \(String(format: "%.2f", longestGap)) s, \(misses.count) with "
                + "something missing\(misses.first.map { " (first: \($0))" } ?? "")"
                + (failures.isEmpty ? "" : ", \(failures.count) failed reads (\(failures[0]))")
        }
    }

    private let report = Mutex(Report())
    private let running = Atomic<Bool>(true)
    private let done = DispatchSemaphore(value: 0)

    /// Starts sampling at once.
    /// - Parameters:
    ///   - interval: At most this long between samples (the issue's bound is 0.5 s; the default leaves room for a
    ///     slow read).
    ///   - required: The virtual servers that must be there at this moment.
    init(
        _ ipvs: IPVSHandle, every interval: TimeInterval = 0.1,
        required: @escaping @Sendable () -> Set<VirtualServerKey>
    ) {
        let thread = Thread { [self] in
            // Real-time priority (the tests run as root in the VM): in an emulated VM busy with daemons and other
            // tests, a normal thread can wait past the sampling bound for a CPU.
            var priority = sched_param(sched_priority: 10)
            _ = pthread_setschedparam(pthread_self(), SCHED_FIFO, &priority)
            var last = Date()
            while running.load(ordering: .relaxed) {
                let wanted = required()
                let now = Date()
                do {
                    let present = Set(try ipvs.virtualServers().map(\.server.key))
                    let missing = wanted.subtracting(present).sorted()
                    report.withLock { report in
                        if report.samples > 0 {
                            report.longestGap = max(report.longestGap, now.timeIntervalSince(last))
                        }
                        report.samples += 1
                        if !missing.isEmpty { report.misses.append(Miss(at: now, missing: missing)) }
                    }
                } catch {
                    report.withLock { $0.failures.append("\(error)") }
                }
                last = now
                Thread.sleep(forTimeInterval: interval)
            }
            done.signal()
        }
        thread.start()
    }

    /// How many samples were taken so far: a fault is held for a number of them.
    var samplesTaken: Int { report.withLock { $0.samples } }

    /// Stops sampling and says what was seen.
    func finish() -> Report {
        if running.exchange(false, ordering: .relaxed) { done.wait() }
        return report.withLock { $0 }
    }
}
