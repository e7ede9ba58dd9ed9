import Foundation
import NIOCore

/// The fake API server's state: the objects, the open EndpointSlice watches, and the scripted events.
///
/// The server runs one event loop, and everything here happens on it: hence no locks, and `@unchecked Sendable`
/// (each entry point checks that it runs on the loop).
final class BenchAPI: @unchecked Sendable {
    /// How the events of one control request are spaced.
    enum Spacing {
        /// Each at least this long after the one before was sent.
        case atLeast(TimeAmount)
        /// Event i at i/count of this after the first (or as soon as the server can, if late).
        case spread(within: TimeAmount)
    }

    let loop: any EventLoop
    private var cluster: Cluster
    private let eventLog: FileHandle
    /// The open EndpointSlice watch streams; the events go to each.
    private var sliceWatches: [APIHandler] = []
    /// The events sent and when (nil: no watch was open), written to the event log once a request's are all sent:
    /// formatting and writing them per event would hold up the next (a millisecond apart in a burst).
    private var sent: [(event: Cluster.Event, time: Double?)] = []
    private(set) var listsServed = 0

    init(cluster: Cluster, eventLog: FileHandle, loop: any EventLoop) {
        self.cluster = cluster
        self.eventLog = eventLog
        self.loop = loop
    }

    func page(_ kind: Cluster.Kind, limit: Int, offset: Int, nodeName: String) -> [UInt8] {
        loop.preconditionInEventLoop()
        listsServed += 1
        return cluster.page(kind, limit: limit, offset: offset, nodeName: nodeName)
    }

    /// Starts a watch. Services and the Node never change, so their streams only stay open. An EndpointSlice
    /// watch from an older resource version than the newest is refused as compacted: this server keeps no
    /// history, which a real one may also have lost.
    func watch(_ kind: Cluster.Kind, on stream: APIHandler) {
        loop.preconditionInEventLoop()
        guard kind == .endpointSlices else { return }
        if Int(stream.watchedFrom) == cluster.resourceVersion {
            sliceWatches.append(stream)
        } else {
            stream.send(cluster.expiredEvent(asked: stream.watchedFrom))
            stream.endStream()
        }
    }

    func watchEnded(_ stream: APIHandler) {
        loop.preconditionInEventLoop()
        sliceWatches.removeAll { $0 === stream }
    }

    var status: String {
        "resourceVersion \(cluster.resourceVersion) services \(cluster.services.count) "
            + "endpointSlices \(cluster.slices.count) sliceWatches \(sliceWatches.count) lists \(listsServed)\n"
    }

    /// Makes `count` events, waits (up to a minute) for an EndpointSlice watch to be open, and sends them spaced
    /// as asked; each is logged as it is written (its time `-` if no watch is open then). Succeeds with a summary
    /// once all are sent.
    ///
    /// All events are made before the first is sent, so that the spacing is not held up by making them.
    func sendEvents(count: Int, spacing: Spacing) -> EventLoopFuture<String> {
        loop.preconditionInEventLoop()
        let promise = loop.makePromise(of: String.self)
        let events: [Cluster.Event]
        do {
            events = try (0..<count).map { _ in try cluster.makeEvent() }
        } catch {
            promise.fail(error)
            return promise.futureResult
        }
        whenSliceWatchOpen(deadline: .now() + .seconds(60)) { [self] in
            send(events[...], spacing: spacing, start: .now(), total: count) { [self] unwatched in
                writeEventLog()
                let versions = events.map { "\($0.resourceVersion)" }
                promise.succeed(
                    "sent \(count) events (resource versions \(versions.first ?? "-")-\(versions.last ?? "-")), "
                        + "\(unwatched) with no watch open\n")
            }
        }
        return promise.futureResult
    }

    /// Ends every open EndpointSlice watch with a 410 Expired ERROR event, as a real API server does when the
    /// version a watch resumes from was compacted; the daemon then lists again.
    func expire() -> String {
        loop.preconditionInEventLoop()
        let streams = sliceWatches
        sliceWatches = []
        for stream in streams {
            stream.send(cluster.expiredEvent(asked: stream.watchedFrom))
            stream.endStream()
        }
        return "ended \(streams.count) EndpointSlice watches with 410 Expired at \(cluster.resourceVersion)\n"
    }

    private func whenSliceWatchOpen(deadline: NIODeadline, _ body: @escaping () -> Void) {
        if !sliceWatches.isEmpty || NIODeadline.now() >= deadline { return body() }
        loop.assumeIsolated().scheduleTask(in: .milliseconds(10)) { [self] in
            whenSliceWatchOpen(deadline: deadline, body)
        }
    }

    /// Sends the events that are due now and schedules the rest; `done` gets how many found no watch open. Events
    /// already due (the server fell behind a burst's schedule) go out one after the other without waiting for the
    /// event loop's next turn.
    private func send(
        _ events: ArraySlice<Cluster.Event>, spacing: Spacing, start: NIODeadline, total: Int, unwatched: Int = 0,
        done: @escaping (Int) -> Void
    ) {
        var rest = events
        var unwatched = unwatched
        while let event = rest.popFirst() {
            if !deliver(event) { unwatched += 1 }
            guard !rest.isEmpty else { break }
            let next: NIODeadline
            switch spacing {
            case .atLeast(let gap):
                next = .now() + gap
            case .spread(let within):
                next = start + .nanoseconds(within.nanoseconds * Int64(total - rest.count) / Int64(total))
            }
            if next > .now() {
                loop.assumeIsolated().scheduleTask(deadline: next) { [self, rest, unwatched] in
                    send(rest, spacing: spacing, start: start, total: total, unwatched: unwatched, done: done)
                }
                return
            }
        }
        done(unwatched)
    }

    /// Writes one event to every open EndpointSlice watch and keeps the wall-clock time taken just before the
    /// first write (the same clock, CLOCK_REALTIME, as the daemon's log), so the latency measured from it includes
    /// this server's TLS encryption and socket write. With no watch open there is no time: the change is made all
    /// the same (a relist will bring it).
    private func deliver(_ event: Cluster.Event) -> Bool {
        let time = Date().timeIntervalSince1970
        for stream in sliceWatches { stream.send(event.line) }
        sent.append((event, sliceWatches.isEmpty ? nil : time))
        return !sliceWatches.isEmpty
    }

    /// One line per event sent: its resource version, the time (seconds since 1970, to the microsecond; `-` when
    /// no watch was open), the slice, the address replaced and the new one.
    private func writeEventLog() {
        var text = ""
        for (event, time) in sent {
            var when = "-"
            if let time {
                let micros = Int64((time * 1e6).rounded())
                let fraction = String(micros % 1_000_000)
                when = "\(micros / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
            }
            text += "\(event.resourceVersion) \(when) \(event.change)\n"
        }
        sent = []
        eventLog.write(Data(text.utf8))
    }
}
