import Foundation
import Synchronization
import Testing

/// A clock that moves only when a test advances it, and that tells the test when something sleeps on it: a
/// loop that sleeps has done everything it could do until then.
final class ManualClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration

        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [Int: Sleeper] = [:]
        var cancelled: Set<Int> = []
        var nextID = 0
        /// The deadline of every sleep that began, in order.
        var sleeps: [Instant] = []
    }

    private let state = Mutex(State())
    /// The wall-clock time at the clock's zero, for what needs a `Date`.
    let epoch = Date(timeIntervalSince1970: 1_795_000_000)

    var now: Instant { state.withLock { $0.now } }
    var minimumResolution: Duration { .zero }

    /// The wall-clock time now.
    var date: Date {
        let offset = now.offset.components
        return epoch.addingTimeInterval(Double(offset.seconds) + Double(offset.attoseconds) / 1e18)
    }

    /// How many sleeps began so far.
    var sleepCount: Int { state.withLock { $0.sleeps.count } }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Result<Void, any Error>? in
                    state.sleeps.append(deadline)
                    if state.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                    if deadline <= state.now { return .success(()) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let sleeper = state.withLock { state -> Sleeper? in
                guard let sleeper = state.sleepers.removeValue(forKey: id) else {
                    state.cancelled.insert(id)
                    return nil
                }
                return sleeper
            }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock on and wakes every sleeper whose deadline has come.
    func advance(by duration: Duration) {
        let due = state.withLock { state -> [Sleeper] in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.value.deadline <= now }
            for id in due.keys { state.sleepers[id] = nil }
            return Array(due.values)
        }
        for sleeper in due { sleeper.continuation.resume() }
    }

    /// Waits (in real time, at most 60 s) until more than `count` sleeps have begun, and returns the deadline of
    /// the next one after `count`: where the sleeper will be woken, if nothing else wakes it first. The bound only
    /// catches a loop that never sleeps: the CPU-heavy tests that share Swift's two cooperative threads here have
    /// held the loop off for over 10 s on a loaded machine.
    func sleep(after count: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Instant {
        let limit = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < limit {
            if let deadline = state.withLock({ $0.sleeps.count > count ? $0.sleeps[count] : nil }) {
                return deadline
            }
            try await Task.sleep(for: .milliseconds(1))
        }
        Issue.record("nothing slept on the clock within 60 s", sourceLocation: sourceLocation)
        throw CancellationError()
    }
}
