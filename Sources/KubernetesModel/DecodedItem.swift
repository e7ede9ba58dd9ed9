/// One decoded document or `List` item: an object the proxy reads, a list of items, an object of another
/// kind, or an object that failed to decode (with as much of its identity as could be read).
package enum DecodedItem: Sendable, Hashable {
    case service(Service)
    case endpointSlice(EndpointSlice)
    case endpoints(Endpoints)
    case node(Node)
    case serviceCIDR(ServiceCIDR)
    case list([DecodedItem])
    case ignored
    case failure(kind: String?, name: String?, field: String?, message: String)

    /// How deep `List`s may nest. Real inputs nest one or two; the bound keeps recursion (and the stack) small.
    static let maximumListDepth = 16

    /// Decodes an item; a typed list (`ServiceList`) passes its item kind, since the API omits `kind` on items.
    init(from decoder: any Decoder, defaultKind: String?, listDepth: Int = 0) {
        let base = decoder.codingPath.count
        guard let container = try? decoder.container(keyedBy: Keys.self) else {
            self = .failure(kind: nil, name: nil, field: nil, message: "expected a Kubernetes object (a mapping)")
            return
        }
        let kind = (try? container.decodeIfPresent(String.self, forKey: .kind)) ?? defaultKind
        let apiVersion = try? container.decodeIfPresent(String.self, forKey: .apiVersion)
        let metadata = try? container.decodeIfPresent(NameOnly.self, forKey: .metadata)
        let name: String? = metadata?.name.map { name in metadata?.namespace.map { "\($0)/\(name)" } ?? name }
        func unsupported(_ expected: String) -> DecodedItem {
            .failure(
                kind: kind, name: name, field: "apiVersion",
                message: "unsupported apiVersion '\(apiVersion ?? "")' for \(kind ?? "object"); expected \(expected)")
        }
        do {
            switch kind {
            case "Service":
                guard apiVersion == nil || apiVersion == "v1" else {
                    self = unsupported("v1")
                    return
                }
                self = .service(try Service(from: decoder))
            case "EndpointSlice":
                guard apiVersion == nil || apiVersion == "discovery.k8s.io/v1" else {
                    self = unsupported("discovery.k8s.io/v1")
                    return
                }
                self = .endpointSlice(try EndpointSlice(from: decoder))
            case "Endpoints":
                guard apiVersion == nil || apiVersion == "v1" else {
                    self = unsupported("v1")
                    return
                }
                self = .endpoints(try Endpoints(from: decoder))
            case "Node":
                guard apiVersion == nil || apiVersion == "v1" else {
                    self = unsupported("v1")
                    return
                }
                self = .node(try Node(from: decoder))
            case "ServiceCIDR":
                guard apiVersion == nil || apiVersion == "networking.k8s.io/v1" else {
                    self = unsupported("networking.k8s.io/v1")
                    return
                }
                self = .serviceCIDR(try ServiceCIDR(from: decoder))
            case let kind? where kind.hasSuffix("List"):
                let itemKind = kind == "List" ? nil : String(kind.dropLast(4))
                guard container.contains(.items), try !container.decodeNil(forKey: .items) else {
                    self = .list([])
                    return
                }
                guard listDepth < Self.maximumListDepth else {
                    self = .failure(
                        kind: kind, name: name, field: "items",
                        message: "Lists nested more than \(Self.maximumListDepth) deep")
                    return
                }
                var items = try container.nestedUnkeyedContainer(forKey: .items)
                var decoded: [DecodedItem] = []
                while !items.isAtEnd {
                    decoded.append(
                        DecodedItem(from: try items.superDecoder(), defaultKind: itemKind, listDepth: listDepth + 1))
                }
                self = .list(decoded)
            case nil:
                self = .failure(kind: nil, name: name, field: "kind", message: "missing: every object needs a kind")
            default:
                self = .ignored
            }
        } catch let error as DecodingError {
            let (path, message) = error.located(droppingFirst: base)
            self = .failure(kind: kind, name: name, field: path, message: message)
        } catch {
            self = .failure(kind: kind, name: name, field: nil, message: "\(error)")
        }
    }

    private enum Keys: String, CodingKey {
        case apiVersion, kind, metadata, items
    }

    private struct NameOnly: Decodable {
        var name: String?
        var namespace: String?
    }
}

/// A whole document: decodes its top-level item.
struct DecodedDocument: Decodable {
    var item: DecodedItem

    init(from decoder: any Decoder) throws {
        item = DecodedItem(from: decoder, defaultKind: nil)
    }
}

extension DecodingError {
    /// The failing field's path (`spec.ports[0].port`, relative to the object) and what was wrong.
    package func located(droppingFirst base: Int) -> (field: String?, message: String) {
        switch self {
        case .typeMismatch(let type, let context):
            return (
                Self.path(context.codingPath.dropFirst(base)),
                "expected \(Self.describe(type)), found \(Self.found(context))"
            )
        case .valueNotFound(let type, let context):
            return (Self.path(context.codingPath.dropFirst(base)), "expected \(Self.describe(type)), found null")
        case .keyNotFound(let key, let context):
            return (Self.path((context.codingPath + [key]).dropFirst(base)), "missing: this field is required")
        case .dataCorrupted(let context):
            let underlying = (context.underlyingError).map { ": \($0)" } ?? ""
            return (Self.path(context.codingPath.dropFirst(base)), context.debugDescription + underlying)
        @unknown default:
            return (nil, "\(self)")
        }
    }

    private static func path(_ keys: ArraySlice<any CodingKey>) -> String? {
        var text = ""
        for key in keys {
            if let index = key.intValue, key.stringValue.hasPrefix("Index") || Int(key.stringValue) == index {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text.isEmpty ? nil : text
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int32.Type, is Int64.Type, is UInt16.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is IntOrString.Type: return "a number or a name"
        default: return describe(name: "\(type)")
        }
    }

    /// Names a container type by how it prints: Foundation's `Array<...>`/`Dictionary<...>`, Yams' `Sequence`,
    /// `Mapping`, `Scalar`.
    private static func describe(name: String) -> String {
        if name.hasPrefix("Array") || name.contains("Sequence") { return "a list" }
        if name.hasPrefix("Dictionary") || name.contains("Mapping") { return "a mapping" }
        if name.contains("Scalar") { return "a single value" }
        return "an object"
    }

    private static func found(_ context: Context) -> String {
        // Foundation: "Expected to decode Int but found a string instead."; Yams: "... but found Mapping instead."
        let text = context.debugDescription
        guard let range = text.range(of: "but found ") else { return "another type" }
        let rest = text[range.upperBound...].replacingOccurrences(of: " instead.", with: "")
        if rest.hasPrefix("a ") || rest.hasPrefix("an ") { return rest }
        return describe(name: rest)
    }
}
