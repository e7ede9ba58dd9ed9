import AsyncHTTPClient
import Foundation
import KubernetesModel
import NIOCore
import NIOHTTP1
import NIOSSL

/// An error answer of the API server (a `Status` object), or a failure to reach it.
package struct APIError: Error, Sendable, CustomStringConvertible {
    /// The HTTP status, or the `code` of a Status carried by a watch ERROR event.
    package var status: Int
    package var reason: String?
    package var message: String

    /// The resource version asked for is gone (compacted): list again.
    package var isExpired: Bool { status == 410 || reason == "Expired" || reason == "Gone" }

    package var description: String {
        var text = "API server answered \(status)"
        if let reason { text += " \(reason)" }
        return text + ": \(message)"
    }
}

/// A 200 answer that is not what was asked for: a list of another kind, or not a list at all. Taken for an empty
/// list, it would delete every Service.
package struct UnexpectedAnswer: Error, Sendable, CustomStringConvertible {
    package var path: String
    package var expected: String
    package var found: String

    package var description: String { "\(path): the API server answered \(found) where a \(expected) was asked for" }
}

/// A Kubernetes `Status` object.
struct APIStatus: Decodable {
    var code: Int?
    var reason: String?
    var message: String?
}

/// An object of a watch event, or what went wrong decoding it.
enum Item<Object: Decodable & Sendable>: Decodable, Sendable {
    case object(Object, name: String?)
    case invalid(name: String?, field: String?, message: String)

    init(from decoder: any Decoder) {
        let name = (try? NameOnly(from: decoder)).flatMap(\.description)
        do {
            self = .object(try Object(from: decoder), name: name)
        } catch let error as DecodingError {
            let (field, message) = error.located(droppingFirst: decoder.codingPath.count)
            self = .invalid(name: name, field: field, message: message)
        } catch {
            self = .invalid(name: name, field: nil, message: "\(error)")
        }
    }

    /// The object the fast decoder read, when it is of this kind.
    init?(_ decoded: DecodedItem) {
        let object: Object
        switch decoded {
        case .service(let service as Object): object = service
        case .endpointSlice(let slice as Object): object = slice
        case .node(let node as Object): object = node
        case .serviceCIDR(let serviceCIDR as Object): object = serviceCIDR
        default: return nil
        }
        let metadata = (object as? any KubernetesObject)?.metadata
        self = .object(object, name: metadata?.name.map { name in metadata?.namespace.map { "\($0)/\(name)" } ?? name })
    }

    private struct NameOnly: Decodable {
        struct Meta: Decodable {
            var name: String?
            var namespace: String?
        }
        var metadata: Meta?
        var description: String? {
            metadata?.name.map { name in metadata?.namespace.map { "\($0)/\(name)" } ?? name }
        }
    }
}

/// One event of a watch stream.
enum WatchEvent<Object: Decodable & Sendable>: Sendable {
    case added(Item<Object>)
    case modified(Item<Object>)
    case deleted(Item<Object>)
    /// Only the resource version is news.
    case bookmark(resourceVersion: String)
    case error(APIError)

    /// Decodes one line: with the fast decoder where it can vouch for it, else with `JSONDecoder`.
    static func decode(_ line: ArraySlice<UInt8>) throws -> WatchEvent {
        if let fast = WatchEventLine.decodeFast(line), let item = Item<Object>(fast.item) {
            switch fast.type {
            case .added: return .added(item)
            case .modified: return .modified(item)
            case .deleted: return .deleted(item)
            }
        }
        let envelope = try JSONDecoder().decode(Envelope.self, from: Data(line))
        return envelope.event
    }

    private struct Envelope: Decodable {
        var event: WatchEvent

        enum CodingKeys: String, CodingKey { case type, object }
        struct Version: Decodable {
            struct Meta: Decodable { var resourceVersion: String? }
            var metadata: Meta?
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            switch try container.decode(String.self, forKey: .type) {
            case "ADDED": event = .added(try container.decode(Item<Object>.self, forKey: .object))
            case "MODIFIED": event = .modified(try container.decode(Item<Object>.self, forKey: .object))
            case "DELETED": event = .deleted(try container.decode(Item<Object>.self, forKey: .object))
            case "BOOKMARK":
                let version = try container.decode(Version.self, forKey: .object)
                event = .bookmark(resourceVersion: version.metadata?.resourceVersion ?? "")
            case "ERROR":
                let status = try container.decode(APIStatus.self, forKey: .object)
                event = .error(
                    APIError(status: status.code ?? 500, reason: status.reason, message: status.message ?? ""))
            case let other:
                throw DecodingError.dataCorruptedError(
                    forKey: .type, in: container, debugDescription: "unknown watch event type \(other)")
            }
        }
    }
}

/// Lists and watches objects on a Kubernetes API server over HTTPS, verifying the server against the
/// cluster CA.
package final class KubernetesAPIClient: Sendable {
    let configuration: APIServerConfiguration
    let client: HTTPClient
    /// The token's file, read again when it is replaced.
    let tokenFile: TokenFile?

    package init(configuration: APIServerConfiguration) throws {
        self.configuration = configuration
        tokenFile = try configuration.bearerTokenFile.map(TokenFile.init(path:))
        var tls = TLSConfiguration.makeClientConfiguration()
        if let ca = configuration.certificateAuthorityPEM {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
        }
        if let certificate = configuration.clientCertificatePEM, let key = configuration.clientKeyPEM {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
        }
        if configuration.insecureSkipTLSVerify { tls.certificateVerification = .none }
        var clientConfiguration = HTTPClient.Configuration(tlsConfiguration: tls)
        clientConfiguration.timeout = .init(connect: .seconds(10), read: nil)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
    }

    package func shutdown() async throws {
        try await client.shutdown()
    }

    func request(_ pathAndQuery: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: configuration.server + pathAndQuery)
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "ipvs-proxy")
        if let token = tokenFile?.token ?? configuration.bearerToken {
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        return request
    }

    /// Fetches one page of a list of `itemKind` objects; `selector` is an escaped `labelSelector=` or
    /// `fieldSelector=` query, or empty for every object.
    /// - Throws: ``APIError`` for an error status, or a `Status` in a 200 answer; ``UnexpectedAnswer`` for a 200
    ///   answer that is not a page of the list asked for (another kind, `{}`, no `items`): never an empty page.
    func listPage(
        _ path: String, selector: String, limit: Int, continueToken: String?, itemKind: String
    ) async throws -> ListPage {
        var query = "\(path)?" + Self.joined(selector, "limit=\(limit)")
        if let continueToken { query += "&continue=\(Self.escape(continueToken))" }
        let response = try await client.execute(request(query), timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 512 * 1024 * 1024)
        try Self.check(response.status, body)
        let page: ListPage
        do {
            page = try ListPage.decode(String(buffer: body))
        } catch {
            throw UnexpectedAnswer(path: path, expected: itemKind + "List", found: "no JSON object (\(error))")
        }
        guard page.isList(of: itemKind) else {
            // A Status in a 200 answer is still the server's error, with its own code (a 410 there means relist).
            if page.kind == "Status" { throw Self.error(in: body, status: nil) }
            let found =
                page.kind.map { page.hasItems ? "kind \($0)" : "kind \($0) without items" }
                ?? "an object without a kind"
            throw UnexpectedAnswer(path: path, expected: itemKind + "List", found: found)
        }
        return page
    }

    /// Streams watch events from `resourceVersion` on; ends when the server closes the stream. `onOpen` is told when
    /// the server has accepted the watch (a quiet cluster may send no event for minutes).
    func watch<Object>(
        _ path: String, selector: String, resourceVersion: String, timeoutSeconds: Int, of type: Object.Type,
        onOpen: () -> Void = {}, onEvents: ([WatchEvent<Object>]) async throws -> Void
    ) async throws {
        let watchQuery =
            "watch=1&allowWatchBookmarks=true&resourceVersion=\(Self.escape(resourceVersion))"
            + "&timeoutSeconds=\(timeoutSeconds)"
        let query = "\(path)?" + Self.joined(selector, watchQuery)
        let response = try await client.execute(request(query), timeout: .seconds(Int64(timeoutSeconds + 30)))
        guard response.status == .ok else {
            let body = try await response.body.collect(upTo: 1024 * 1024)
            try Self.check(response.status, body)
            return
        }
        onOpen()
        var pending: [UInt8] = []
        for try await chunk in response.body {
            pending += chunk.readableBytesView
            var events: [WatchEvent<Object>] = []
            var start = pending.startIndex
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending[start..<newline]
                if !line.isEmpty { events.append(try WatchEvent<Object>.decode(line)) }
                start = newline + 1
            }
            pending.removeSubrange(..<start)
            if !events.isEmpty { try await onEvents(events) }
        }
    }

    private static func check(_ status: HTTPResponseStatus, _ body: ByteBuffer) throws {
        guard status != .ok else { return }
        throw error(in: body, status: Int(status.code))
    }

    /// The error an answer's body says, by the HTTP status, or (`nil`) by the `Status` object's own code.
    private static func error(in body: ByteBuffer, status: Int?) -> APIError {
        let decoded = try? JSONDecoder().decode(APIStatus.self, from: Data(body.readableBytesView))
        return APIError(
            status: status ?? decoded?.code ?? 500, reason: decoded?.reason,
            message: decoded?.message ?? String(buffer: body).prefix(200).description)
    }

    /// A selector (empty for every object) and the rest of a query, as one query.
    private static func joined(_ selector: String, _ rest: String) -> String {
        selector.isEmpty ? rest : selector + "&" + rest
    }

    static func escape(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~")))
            ?? value
    }
}
