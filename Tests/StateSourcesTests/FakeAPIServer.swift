import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// What the fake API server answers to one request.
enum FakeResponse: Sendable {
    /// A whole response.
    case full(status: HTTPResponseStatus, body: String)
    /// A watch stream: these lines, then the stream ends cleanly.
    case stream(lines: [String])
    /// A watch stream that sends these lines and then drops the connection without ending the response.
    case dropAfter(lines: [String])
    /// A watch stream that sends these lines and then stays open until the server stops.
    case hold(lines: [String])
}

/// An HTTPS server that answers like a kube-apiserver from recorded responses, and records what it was asked.
final class FakeAPIServer: @unchecked Sendable {
    private var channel: (any Channel)?
    private let requestsBox = NSLock()
    private var recorded: [String] = []
    private var connections: [any Channel] = []
    let respond: @Sendable (_ uri: String, _ count: Int) -> FakeResponse

    /// - Parameter respond: The answer to a request URI; `count` is how many requests for the same path and
    ///   kind (list or watch) came before it.
    init(respond: @escaping @Sendable (_ uri: String, _ count: Int) -> FakeResponse) {
        self.respond = respond
    }

    var port: Int { channel?.localAddress?.port ?? 0 }
    var url: String { "https://127.0.0.1:\(port)" }

    var requests: [String] { requestsBox.withLock { recorded } }

    fileprivate func record(_ uri: String) -> Int {
        requestsBox.withLock {
            let kind = Self.kind(of: uri)
            let count = recorded.filter { Self.kind(of: $0) == kind }.count
            recorded.append(uri)
            return count
        }
    }

    /// The path plus whether it is a watch: requests are counted per kind.
    static func kind(of uri: String) -> String {
        let path = uri.split(separator: "?").first.map(String.init) ?? uri
        return uri.contains("watch=1") ? path + " watch" : path
    }

    func start() throws {
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
    func stop() {
        try? channel?.close().wait()
        for connection in requestsBox.withLock({ connections }) { try? connection.close().wait() }
    }
}

/// The path of a file under Tests/Fixtures.
func fixture(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/\(name)").path
}

/// A recorded API response, unedited.
func recorded(_ name: String) -> String {
    try! String(contentsOfFile: fixture("recorded-api/\(name)"), encoding: .utf8)
}

/// A hand-written API response (Tests/Fixtures/hand-written: the recordings hold no Node).
func handWritten(_ name: String) -> String {
    try! String(contentsOfFile: fixture("hand-written/\(name)"), encoding: .utf8)
}

/// The lines of a hand-written watch stream.
func handWrittenLines(_ name: String) -> [String] {
    handWritten(name).split(separator: "\n").map(String.init)
}

/// The lines of a recorded watch stream.
func recordedLines(_ name: String) -> [String] {
    recorded(name).split(separator: "\n").map(String.init)
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
        case .stream(let lines), .dropAfter(let lines), .hold(let lines):
            let headers = HTTPHeaders([("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil
            )
            for line in lines {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: line + "\n")))), promise: nil)
            }
            context.flush()
            switch response {
            case .stream: context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            case .dropAfter: context.close(promise: nil)
            default: break
            }
        }
    }
}
