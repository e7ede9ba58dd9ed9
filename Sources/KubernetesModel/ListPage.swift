import Foundation

/// One page of a list that the Kubernetes API server sent (`GET /api/v1/services?limit=500`): its items, each
/// decoded on its own as a manifest's items are (one bad item spoils nothing else), the list's resource
/// version, and the token for the next page.
package struct ListPage: Sendable {
    /// The answer's `kind`, such as `ServiceList` (a `Status` when the server answered with one).
    package var kind: String?
    /// Whether the answer has an `items` member at all (an API server's list always has, `null` when empty): an
    /// answer without one is not a list, whatever its status said, and must not pass for an empty one.
    package var hasItems: Bool
    package var items: [DecodedItem]
    package var resourceVersion: String
    /// `nil` on the last page.
    package var continueToken: String?

    package init(
        kind: String? = nil, hasItems: Bool = true, items: [DecodedItem], resourceVersion: String,
        continueToken: String?
    ) {
        self.kind = kind
        self.hasItems = hasItems
        self.items = items
        self.resourceVersion = resourceVersion
        self.continueToken = continueToken.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Whether this is a page of a list of `itemKind` objects (a `ServiceList` for `Service`).
    package func isList(of itemKind: String) -> Bool {
        hasItems && kind == itemKind + "List"
    }

    /// Decodes a page with ``FastManifestDecoder``, or with `JSONDecoder` where the fast decoder cannot vouch
    /// for it: the same two decoders, agreeing on the same inputs, as for manifest files.
    /// - Throws: When the page is not a JSON object at all.
    package static func decode(_ text: String) throws -> ListPage {
        if let page = FastManifestDecoder.decodeListPage(text) { return page }
        return try JSONDecoder().decode(Document.self, from: Data(text.utf8)).page
    }

    private struct Document: Decodable {
        var page: ListPage

        private enum Keys: String, CodingKey { case kind, metadata, items }
        private enum MetadataKeys: String, CodingKey {
            case resourceVersion
            case continueToken = "continue"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Keys.self)
            let kind = try? container.decodeIfPresent(String.self, forKey: .kind)
            // Items of a typed list (ServiceList) carry no kind of their own.
            let itemKind = kind.flatMap { $0.hasSuffix("List") && $0 != "List" ? String($0.dropLast(4)) : nil }
            var items: [DecodedItem] = []
            let hasItems = container.contains(.items)
            if hasItems, try !container.decodeNil(forKey: .items) {
                var elements = try container.nestedUnkeyedContainer(forKey: .items)
                while !elements.isAtEnd {
                    items.append(DecodedItem(from: try elements.superDecoder(), defaultKind: itemKind, listDepth: 1))
                }
            }
            var resourceVersion: String?
            var continueToken: String?
            if container.contains(.metadata), try !container.decodeNil(forKey: .metadata) {
                let metadata = try container.nestedContainer(keyedBy: MetadataKeys.self, forKey: .metadata)
                resourceVersion = try metadata.decodeIfPresent(String.self, forKey: .resourceVersion)
                continueToken = try metadata.decodeIfPresent(String.self, forKey: .continueToken)
            }
            page = ListPage(
                kind: kind, hasItems: hasItems, items: items, resourceVersion: resourceVersion ?? "",
                continueToken: continueToken)
        }
    }
}
