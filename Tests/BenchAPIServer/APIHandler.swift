import Foundation
import NIOCore
import NIOHTTP1

/// Answers one connection's requests: the API server's lists and watches, and the bench's control requests.
///
/// Lists: `GET /api/v1/services`, `/apis/discovery.k8s.io/v1/endpointslices` and `/api/v1/nodes` with `limit`
/// and `continue`; label selectors are not evaluated (no object carries the labels kube-proxy's selector leaves
/// out), the Node's `fieldSelector=metadata.name=NAME` names the Node served. With `watch=1`: a chunked stream of
/// one JSON event per line, held open until the server ends it (`timeoutSeconds` is not honoured, so that no
/// reconnection falls into a measurement). Control, answered once done: `/bench/status`,
/// `/bench/events?count=C&interval_ms=I` (each at least I ms after the one before),
/// `/bench/burst?count=C&within_ms=W` (event i at i·W/C ms), `/bench/expire`.
final class APIHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let api: BenchAPI
    /// `Bearer <token>`: what the `Authorization` header must say; nil on the control port.
    private let authorization: String?
    private var head: HTTPRequestHead?
    /// The connection's context while it streams a watch.
    private var streaming: ChannelHandlerContext?
    /// The resource version the watch started from.
    private(set) var watchedFrom = ""

    init(api: BenchAPI, token: String?) {
        self.api = api
        self.authorization = token.map { "Bearer \($0)" }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end: if let head { answer(head, context: context) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if streaming != nil {
            streaming = nil
            api.watchEnded(self)
        }
        context.fireChannelInactive()
    }

    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let parts = head.uri.split(separator: "?", maxSplits: 1)
        let path = parts.first.map(String.init) ?? head.uri
        let query = Self.query(parts.count > 1 ? String(parts[1]) : "")
        if path.hasPrefix("/bench/") {
            return control(path, query, keepAlive: head.isKeepAlive, context: context)
        }
        if let authorization, head.headers.first(name: "Authorization") != authorization {
            return respond(.unauthorized, Self.status(401, "Unauthorized"), keepAlive: false, context: context)
        }
        guard let kind = Cluster.Kind(rawValue: path) else {
            return respond(.notFound, Self.status(404, "NotFound"), keepAlive: head.isKeepAlive, context: context)
        }
        let nodeName = query["fieldSelector"].flatMap { $0.split(separator: "=").last.map(String.init) } ?? ""
        if query["watch"] == "1" || query["watch"] == "true" {
            streaming = context
            watchedFrom = query["resourceVersion"] ?? ""
            let headers = HTTPHeaders([("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])
            context.writeAndFlush(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                promise: nil)
            api.watch(kind, on: self)
            return
        }
        let body = api.page(
            kind, limit: Int(query["limit"] ?? "") ?? 0, offset: Int(query["continue"] ?? "") ?? 0,
            nodeName: nodeName)
        respond(.ok, body, keepAlive: head.isKeepAlive, context: context)
    }

    private func control(_ path: String, _ query: [String: String], keepAlive: Bool, context: ChannelHandlerContext) {
        let count = Int(query["count"] ?? "") ?? 1
        let sent: EventLoopFuture<String>
        switch path {
        case "/bench/status":
            return respond(.ok, Array(api.status.utf8), keepAlive: keepAlive, context: context)
        case "/bench/expire":
            return respond(.ok, Array(api.expire().utf8), keepAlive: keepAlive, context: context)
        case "/bench/events":
            let gap = Int64(query["interval_ms"] ?? "") ?? 100
            sent = api.sendEvents(count: count, spacing: .atLeast(.milliseconds(gap)))
        case "/bench/burst":
            let within = Int64(query["within_ms"] ?? "") ?? 1000
            sent = api.sendEvents(count: count, spacing: .spread(within: .milliseconds(within)))
        default:
            return respond(.notFound, Array("no such control request\n".utf8), keepAlive: keepAlive, context: context)
        }
        sent.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let summary):
                self.respond(.ok, Array(summary.utf8), keepAlive: keepAlive, context: context)
            case .failure(let error):
                self.respond(.serviceUnavailable, Array("\(error)\n".utf8), keepAlive: keepAlive, context: context)
            }
        }
    }

    /// Writes one line of a watch stream and flushes it.
    func send(_ line: ByteBuffer) {
        guard let context = streaming else { return }
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(line))), promise: nil)
    }

    /// Ends a watch stream as the API server does: the response ends, the connection stays.
    func endStream() {
        guard let context = streaming else { return }
        streaming = nil
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    private func respond(
        _ status: HTTPResponseStatus, _ body: [UInt8], keepAlive: Bool, context: ChannelHandlerContext
    ) {
        var headers = HTTPHeaders([("Content-Type", "application/json"), ("Content-Length", "\(body.count)")])
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }

    private static func status(_ code: Int, _ reason: String) -> [UInt8] {
        let text = #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","#
        return Array((text + #""reason":"\#(reason)","code":\#(code)}"#).utf8)
    }

    /// A query's parameters, percent-decoded.
    private static func query(_ text: String) -> [String: String] {
        var parameters: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let keyValue = pair.split(separator: "=", maxSplits: 1).map { $0.removingPercentEncoding ?? String($0) }
            parameters[keyValue[0]] = keyValue.count > 1 ? keyValue[1] : ""
        }
        return parameters
    }
}
