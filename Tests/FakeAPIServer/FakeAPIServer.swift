import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// What the fake API server answers to one request.
public indirect enum FakeResponse: Sendable {
    /// A whole response.
    case full(status: HTTPResponseStatus, body: String)
    /// A watch stream: these lines, then the stream ends cleanly.
    case stream(lines: [String])
    /// A watch stream that sends these lines and then drops the connection without ending the response.
    case dropAfter(lines: [String])
    /// A watch stream that sends these lines, then the first part of one more, and drops the connection mid-event.
    case dropMidEvent(lines: [String], partial: String)
    /// A watch stream that sends these lines and then stays open until the server stops.
    case hold(lines: [String])
    /// The answer, after a while (a server that is slow to answer, then times out).
    case delayed(Duration, FakeResponse)
}

/// An HTTPS server that answers like a kube-apiserver from recorded responses, and records what it was asked.
public final class FakeAPIServer: @unchecked Sendable {
    private var channel: (any Channel)?
    private let requestsBox = NSLock()
    private var recorded: [String] = []
    private var connections: [any Channel] = []
    let respond: @Sendable (_ uri: String, _ count: Int) -> FakeResponse

    /// - Parameter respond: The answer to a request URI; `count` is how many requests for the same path and
    ///   kind (list or watch) came before it.
    public init(respond: @escaping @Sendable (_ uri: String, _ count: Int) -> FakeResponse) {
        self.respond = respond
    }

    public var port: Int { channel?.localAddress?.port ?? 0 }
    public var url: String { "https://127.0.0.1:\(port)" }
    /// The CA that signed the server's certificate (for 127.0.0.1), as a PEM file.
    public static var certificateAuthorityFile: String { fixture("tls/ca.pem") }

    /// Every request URI, in order.
    public var requests: [String] { requestsBox.withLock { recorded } }

    fileprivate func record(_ uri: String) -> Int {
        requestsBox.withLock {
            let kind = Self.kind(of: uri)
            let count = recorded.filter { Self.kind(of: $0) == kind }.count
            recorded.append(uri)
            return count
        }
    }

    /// The path plus whether it is a watch: requests are counted per kind.
    public static func kind(of uri: String) -> String {
        let path = uri.split(separator: "?").first.map(String.init) ?? uri
        return uri.contains("watch=1") ? path + " watch" : path
    }

    public func start() throws {
        let tls = try TLSConfiguration.makeServerConfiguration(
            certificateChain: NIOSSLCertificate.fromPEMFile(fixture("tls/server.pem")).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: fixture("tls/server.key"), format: .pem)))
        let context = try NIOSSLContext(configuration: tls)
        channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    self.requestsBox.withLock { self.connections.append(channel) }
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(FakeAPIHandler(server: self))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
    }

    /// Stops listening and drops every open connection (held watch streams included).
    public func stop() {
        try? channel?.close().wait()
        closeConnections()
    }

    /// Drops every open connection (held watch streams included): the client asks again.
    public func closeConnections() {
        let open = requestsBox.withLock {
            defer { connections = [] }
            return connections
        }
        for connection in open { try? connection.close().wait() }
    }
}

/// The path of a file under Tests/Fixtures.
private func fixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/\(name)").path
}

private final class FakeAPIHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let server: FakeAPIServer
    private var uri = ""

    init(server: FakeAPIServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): uri = head.uri
        case .body: break
        case .end:
            let count = server.record(uri)
            answer(server.respond(uri, count), context: context)
        }
    }

    private func answer(_ response: FakeResponse, context: ChannelHandlerContext) {
        switch response {
        case .full(let status, let body):
            var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", "\(body.utf8.count)")])
            headers.add(name: "Connection", value: "close")
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
                promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        case .stream(let lines), .dropAfter(let lines), .dropMidEvent(let lines, _), .hold(let lines):
            let headers = HTTPHeaders([("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil
            )
            for line in lines {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: line + "\n")))), promise: nil)
            }
            if case .dropMidEvent(_, let partial) = response {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: partial)))), promise: nil)
            }
            context.flush()
            switch response {
            case .stream: context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            case .dropAfter, .dropMidEvent: context.close(promise: nil)
            default: break
            }
        case .delayed(let delay, let then):
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .nanoseconds(Int64(delay / .nanoseconds(1)))) {
                let (handler, context) = bound.value
                handler.answer(then, context: context)
            }
        }
    }
}
