import Logging
import NIOCore
import NIOPosix
import Synchronization

/// Connections an HTTP server refused, closed or failed to accept.
package enum ConnectionEvent: Sendable, Equatable {
    /// Closed at once: the server (`perServer`) or the process (`processBudget`) had no room.
    case refused(ConnectionLimit)
    /// Closed by the request timeout before it had sent its request and taken the answer.
    case timedOut
    /// `accept` failed (the server backs off before it tries again).
    case acceptFailed(String)
}

/// Which limit refused a connection.
package enum ConnectionLimit: String, Sendable, Equatable {
    case perServer = "the server's --http-max-connections"
    case processBudget = "the process's budget (descriptor limit less a reserve)"
}

/// What one kind of endpoint's events come to in the log: the first event of a spell is logged on its own,
/// later ones are counted and summed up at each tick, and a tick that finds none ends the spell.
struct ConnectionEventSummary: Equatable {
    /// What the events since the last tick came to.
    struct Counts: Equatable {
        var refused = 0
        var timedOut = 0
        var acceptFailures = 0

        var isEmpty: Bool { refused == 0 && timedOut == 0 && acceptFailures == 0 }
    }

    /// What a tick has to say.
    enum Tick: Equatable {
        /// Events went on: these since the last tick.
        case summary(Counts)
        /// None since the last tick: the spell is over.
        case ended
        /// No spell: nothing to say.
        case idle
    }

    private(set) var inSpell = false
    private var counts = Counts()

    /// Takes in an event; `true` when it starts a spell (log it, and start ticking).
    mutating func record(_ event: ConnectionEvent) -> Bool {
        guard inSpell else {
            inSpell = true
            return true
        }
        switch event {
        case .refused: counts.refused += 1
        case .timedOut: counts.timedOut += 1
        case .acceptFailed: counts.acceptFailures += 1
        }
        return false
    }

    /// Called every summary interval while in a spell.
    mutating func tick() -> Tick {
        guard inSpell else { return .idle }
        defer { counts = Counts() }
        if counts.isEmpty {
            inSpell = false
            return .ended
        }
        return .summary(counts)
    }
}

/// Logs the HTTP servers' connection events without flooding the log: a line when they start, then at most one
/// summary line per `interval` and endpoint kind while they go on, and a line once an interval passes without any.
final class ConnectionEventLog: Sendable {
    let logger: Logger
    let interval: Duration
    private let summaries = Mutex<[HTTPEndpointKind: ConnectionEventSummary]>([:])

    init(logger: Logger, interval: Duration = .seconds(10)) {
        self.logger = logger
        self.interval = interval
    }

    func record(_ event: ConnectionEvent, endpoint: HTTPEndpointKind, address: String, limits: String) {
        let starts = summaries.withLock { $0[endpoint, default: ConnectionEventSummary()].record(event) }
        guard starts else { return }
        var metadata: Logger.Metadata = [
            "endpoint": "\(endpoint.rawValue)", "address": "\(address)", "limits": "\(limits)",
            "summaryEvery": "\(interval)",
        ]
        switch event {
        case .refused(let limit):
            logger.warning("refusing HTTP connections: no room under \(limit.rawValue)", metadata: metadata)
        case .timedOut:
            logger.warning(
                "closed an HTTP connection that had not sent its request and taken the answer in time",
                metadata: metadata)
        case .acceptFailed(let error):
            metadata["error"] = "\(error)"
            logger.warning("could not accept an HTTP connection; backing off", metadata: metadata)
        }
        scheduleTicks(endpoint)
    }

    private func scheduleTicks(_ endpoint: HTTPEndpointKind) {
        let delay = TimeAmount(interval)
        MultiThreadedEventLoopGroup.singleton.any().scheduleRepeatedTask(initialDelay: delay, delay: delay) {
            [self] task in
            let tick = summaries.withLock { $0[endpoint, default: ConnectionEventSummary()].tick() }
            switch tick {
            case .summary(let counts):
                logger.warning(
                    "HTTP connections refused or closed in the last \(interval)",
                    metadata: [
                        "endpoint": "\(endpoint.rawValue)", "refused": "\(counts.refused)",
                        "timedOut": "\(counts.timedOut)", "acceptFailures": "\(counts.acceptFailures)",
                    ])
            case .ended:
                logger.info(
                    "no HTTP connection refused or closed for \(interval)",
                    metadata: ["endpoint": "\(endpoint.rawValue)"])
                task.cancel()
            case .idle:
                task.cancel()
            }
        }
    }
}
