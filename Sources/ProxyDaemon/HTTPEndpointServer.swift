import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// A response of the small HTTP endpoints (health, metrics, health-check node ports).
package struct EndpointResponse: Sendable {
    package var status: HTTPResponseStatus
    package var contentType: String
    package var body: String
    /// Headers beyond the content's type and length.
    package var headers: [(name: String, value: String)]

    package init(
        status: HTTPResponseStatus = .ok, contentType: String, body: String,
        headers: [(name: String, value: String)] = []
    ) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }
}

/// A minimal HTTP/1.1 server for GET endpoints, run as a service until graceful shutdown.
package struct HTTPEndpointServer: Service {
    package let host: String
    package let port: Int
    package let endpoint: HTTPEndpointKind
    package let logger: Logger
    /// Whether a failure to listen ends the daemon (kube-proxy's `bindAddressHardFail`), or is logged and the
    /// daemon goes on without this endpoint.
    package let hardFail: Bool
    /// The limits its connections are held to, with every other server's.
    package let connections: HTTPConnectionLimiter
    let route: @Sendable (String) -> EndpointResponse?

    package init(
        host: String, port: Int, endpoint: HTTPEndpointKind, logger: Logger, hardFail: Bool = true,
        connections: HTTPConnectionLimiter, route: @escaping @Sendable (String) -> EndpointResponse?
    ) {
        self.hardFail = hardFail
        self.host = host
        self.port = port
        self.endpoint = endpoint
        self.logger = logger
        self.connections = connections
        self.route = route
    }

    package func run() async throws {
        let route = route
        let channel: any Channel
        do {
            channel = try await Self.bootstrap(endpoint: endpoint, connections: connections) { head in
                guard head.method == .GET else {
                    return EndpointResponse(status: .methodNotAllowed, contentType: "text/plain", body: "only GET\n")
                }
                let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
                return route(path)
                    ?? EndpointResponse(status: .notFound, contentType: "text/plain", body: "not found\n")
            }.bind(host: host, port: port).get()
        } catch  where !hardFail {
            logger.error(
                "cannot listen; going on without this endpoint",
                metadata: ["endpoint": "\(endpoint.rawValue)", "address": "\(host):\(port)", "error": "\(error)"])
            try? await gracefulShutdown()
            return
        }
        logger.info("serving", metadata: ["endpoint": "\(endpoint.rawValue)", "address": "\(host):\(port)"])
        // Serve until the daemon shuts down gracefully (or is cancelled), then stop listening.
        try? await gracefulShutdown()
        try await channel.close()
    }
}

extension HTTPEndpointServer {
    /// A server bootstrap whose connections each get one answer from `respond`, then close, held to the limits
    /// of `connections`.
    static func bootstrap(
        endpoint: HTTPEndpointKind, connections: HTTPConnectionLimiter,
        respond: @escaping @Sendable (HTTPRequestHead) -> EndpointResponse
    ) -> ServerBootstrap {
        ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try connections.configureServer(channel, endpoint: endpoint) }
            }
            .childChannelInitializer { channel in
                // The initializer runs on the channel's event loop: the handler never leaves it.
                channel.eventLoop.makeCompletedFuture {
                    try connections.configureConnection(channel, endpoint: endpoint)
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EndpointHandler(respond: respond))
                }
            }
    }
}

private final class EndpointHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let respond: @Sendable (HTTPRequestHead) -> EndpointResponse
    private var request: HTTPRequestHead?

    init(respond: @escaping @Sendable (HTTPRequestHead) -> EndpointResponse) {
        self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let head = request else { return }
            let response = respond(head)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: response.contentType)
            headers.add(name: "Content-Length", value: "\(response.body.utf8.count)")
            headers.add(name: "Connection", value: "close")
            for (name, value) in response.headers { headers.add(name: name, value: value) }
            context.write(
                wrapOutboundOut(
                    .head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))),
                promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: response.body)))), promise: nil)
            let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                boundContext.value.close(promise: nil)
            }
            request = nil
        }
    }

    /// A request that cannot be read (the decoder's error) gets nothing more: the connection closes.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
