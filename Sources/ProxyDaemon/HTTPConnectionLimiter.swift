import Logging
import NIOCore
import NIOPosix

/// Keeps the daemon's HTTP servers from starving it of descriptors: each server holds at most
/// ``HTTPConnectionLimits/maximumPerServer`` connections, all of them together (and their listening sockets) at
/// most the process-wide `budget`, and a connection is closed once it has been open for the request timeout. A
/// connection past a limit is accepted and closed at once, so the listen backlog never fills with dead ones; a
/// failing `accept` (`EMFILE`) backs off for a second instead of spinning. Each is counted by endpoint and
/// logged without flooding (``ConnectionEventLog``).
package final class HTTPConnectionLimiter: Sendable {
    package let limits: HTTPConnectionLimits
    /// Shared by every server of the process.
    package let budget: ConnectionSlots
    let metrics: ProxyMetrics
    let events: ConnectionEventLog

    package init(
        limits: HTTPConnectionLimits = HTTPConnectionLimits(), budget: ConnectionSlots = .unlimited,
        metrics: ProxyMetrics, logger: Logger, summaryInterval: Duration = .seconds(10)
    ) {
        self.limits = limits
        self.budget = budget
        self.metrics = metrics
        self.events = ConnectionEventLog(logger: logger, interval: summaryInterval)
    }

    /// Adds the limits to a server channel (in its `serverChannelInitializer`): before the bootstrap's own
    /// accept handler, which is added after it.
    func configureServer(_ channel: any Channel, endpoint: HTTPEndpointKind) throws {
        let gate = ConnectionGate(
            endpoint: endpoint, server: ConnectionSlots(limit: limits.maximumPerServer), limiter: self)
        try channel.pipeline.syncOperations.addHandlers([
            gate, AcceptBackoffHandler(shouldForwardIOErrorCaught: false, backoffProvider: Self.backoff),
        ])
    }

    /// Adds the request timeout to a connection (first in its pipeline).
    func configureConnection(_ channel: any Channel, endpoint: HTTPEndpointKind) throws {
        try channel.pipeline.syncOperations.addHandler(
            ConnectionDeadline(timeout: TimeAmount(limits.requestTimeout)) { [self] address in
                record(.timedOut, endpoint: endpoint, address: address)
            })
    }

    /// Out of descriptors or memory: wait a second before accepting again, as NIO's default does. A client that
    /// gave up before its connection was accepted (`ECONNABORTED`) is no reason to wait.
    static func backoff(_ error: IOError) -> TimeAmount? {
        error.errnoCode == ECONNABORTED ? nil : .seconds(1)
    }

    func record(_ event: ConnectionEvent, endpoint: HTTPEndpointKind, address: String) {
        metrics.recordConnection(event, endpoint: endpoint)
        events.record(event, endpoint: endpoint, address: address, limits: description)
    }

    /// The limits, for the log.
    package var description: String {
        let all = budget.limit == .max ? "no limit" : "\(budget.limit)"
        let timeout = limits.requestTimeout
        return "at most \(limits.maximumPerServer) per server and \(all) in all, each closed after \(timeout)"
    }
}

extension ConnectionSlots {
    /// This process's budget now: its soft limit less the descriptors it holds and the sync's reserve. NIO's
    /// event loops are made first, so that their descriptors are among those counted.
    package static func processBudget(softLimit: UInt64) -> ConnectionSlots {
        _ = MultiThreadedEventLoopGroup.singleton.next()
        return processBudget(softLimit: softLimit, openNow: DescriptorLimit.openCount() ?? 0)
    }
}

/// On a server channel: admits an accepted connection while its server and the process have room, else closes
/// it at once; counts failed accepts. Its listening socket holds a slot of the process's budget while it is open.
private final class ConnectionGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    let endpoint: HTTPEndpointKind
    let server: ConnectionSlots
    let limiter: HTTPConnectionLimiter
    private var holdsListenerSlot = false

    init(endpoint: HTTPEndpointKind, server: ConnectionSlots, limiter: HTTPConnectionLimiter) {
        self.endpoint = endpoint
        self.server = server
        self.limiter = limiter
    }

    func handlerAdded(context: ChannelHandlerContext) {
        limiter.budget.takeAlways()
        holdsListenerSlot = true
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if holdsListenerSlot { limiter.budget.give() }
        holdsListenerSlot = false
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let connection = unwrapInboundIn(data)
        let refusal: ConnectionLimit?
        if !server.take() {
            refusal = .perServer
        } else if !limiter.budget.take() {
            server.give()
            refusal = .processBudget
        } else {
            refusal = nil
        }
        if let refusal {
            // Counted first: whoever sees the connection end sees it counted.
            limiter.record(.refused(refusal), endpoint: endpoint, address: address(context))
            connection.close(promise: nil)
            return
        }
        let (server, budget, metrics, endpoint) = (server, limiter.budget, limiter.metrics, endpoint)
        metrics.connectionOpened(endpoint: endpoint)
        // Whoever closes it (the answer, the deadline, the client, a failed registration), its slots come back.
        connection.closeFuture.whenComplete { _ in
            server.give()
            budget.give()
            metrics.connectionClosed(endpoint: endpoint)
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // What reaches a server channel from below is its accept failing.
        if error is IOError {
            limiter.record(.acceptFailed("\(error)"), endpoint: endpoint, address: address(context))
        }
        context.fireErrorCaught(error)
    }

    private func address(_ context: ChannelHandlerContext) -> String {
        context.channel.localAddress.map { "\($0)" } ?? "?"
    }
}

/// On a connection: closes it once it has been open for `timeout`, whatever it is doing (sending its request
/// slowly or not at all, or not reading the answer).
private final class ConnectionDeadline: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    let timeout: TimeAmount
    let expired: (String) -> Void
    private var deadline: Scheduled<Void>?

    init(timeout: TimeAmount, expired: @escaping (String) -> Void) {
        self.timeout = timeout
        self.expired = expired
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    private func start(_ context: ChannelHandlerContext) {
        guard deadline == nil else { return }
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            guard context.channel.isActive else { return }
            expired(context.channel.localAddress.map { "\($0)" } ?? "?")
            context.close(promise: nil)
        }
    }
}
