import Foundation
import NIOCore

/// The objects the fake API server serves, each kept as the real server's list item: compact JSON without `kind`
/// and `apiVersion`, with its `metadata.resourceVersion`. They are kept as bytes, not trees, because the server
/// runs in the VM that measures the daemon's memory: about 10 MB at 10,000 Services.
struct Cluster {
    /// A kind of list: its path on the server and how its list and watch objects are named.
    enum Kind: String {
        case services = "/api/v1/services"
        case endpointSlices = "/apis/discovery.k8s.io/v1/endpointslices"
        case nodes = "/api/v1/nodes"

        var kind: String {
            switch self {
            case .services: "Service"
            case .endpointSlices: "EndpointSlice"
            case .nodes: "Node"
            }
        }
        var apiVersion: String { self == .endpointSlices ? "discovery.k8s.io/v1" : "v1" }
    }

    /// One scripted change of one EndpointSlice, made before it is sent.
    struct Event {
        var resourceVersion: Int
        /// The watch stream's line, newline included, ready to write.
        var line: ByteBuffer
        /// `namespace/name old-address new-address`, for the event log.
        var change: String
    }

    private(set) var services: [[UInt8]] = []
    private(set) var slices: [[UInt8]] = []
    /// The newest resource version: of the last change, and of every list.
    private(set) var resourceVersion = 0
    /// How many events were made: event k changes slice k mod (number of slices), so that a run of events no
    /// longer than the number of slices changes each slice at most once.
    private var eventsMade = 0
    /// The own Node's fields (the input has no Node).
    let nodeIP: String
    let podCIDR: String

    /// Reads the bench's input (a `List` of Services and EndpointSlices); each object gets a resource version of
    /// its own, in the file's order.
    init(reading path: String, nodeIP: String, podCIDR: String) throws {
        self.nodeIP = nodeIP
        self.podCIDR = podCIDR
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Problem("cannot read \(path)")
        }
        var services: [[UInt8]] = []
        var slices: [[UInt8]] = []
        var version = 0
        var reader = JSONReader(Array(data))
        try reader.forEachItem { item in
            version += 1
            var object = item.removing(["kind", "apiVersion"])
            object["metadata"]["resourceVersion"] = .string(String(version))
            switch item["kind"].string {
            case "Service": services.append(object.bytes)
            case "EndpointSlice": slices.append(object.bytes)
            case let other:
                throw Problem("\(path): an item of kind \(other ?? "none"); only Services and EndpointSlices")
            }
        }
        guard !slices.isEmpty else { throw Problem("\(path): no EndpointSlices") }
        self.services = services
        self.slices = slices
        resourceVersion = version
    }

    /// A page of a list, as the API server writes it: `limit` items from `offset` on (0: all), and a continue
    /// token (the next offset) with the count of the items left, until the last page. Every page says the
    /// current resource version: no events are sent while the daemon lists, so it is a consistent snapshot.
    func page(_ kind: Kind, limit: Int, offset: Int, nodeName: String) -> [UInt8] {
        let items: [[UInt8]]
        switch kind {
        case .services: items = services
        case .endpointSlices: items = slices
        case .nodes: items = [node(named: nodeName)]
        }
        let start = min(offset, items.count)
        let end = limit > 0 ? min(start + limit, items.count) : items.count
        var metadata: [(key: String, value: JSON)] = [("resourceVersion", .string(String(resourceVersion)))]
        if end < items.count {
            metadata.append(("continue", .string(String(end))))
            metadata.append(("remainingItemCount", .number(String(items.count - end))))
        }
        var out = JSON.object([
            ("kind", .string(kind.kind + "List")), ("apiVersion", .string(kind.apiVersion)),
            ("metadata", .object(metadata)),
        ]).bytes
        out.removeLast()  // the closing brace: the items follow
        out += Array(#","items":["#.utf8)
        for index in start..<end {
            if index > start { out.append(UInt8(ascii: ",")) }
            out += items[index]
        }
        out += Array("]}".utf8)
        return out
    }

    /// The own Node, ready, with one InternalIP and a pod CIDR (the shape of Tests/Fixtures/hand-written).
    private func node(named name: String) -> [UInt8] {
        JSON.object([
            (
                "metadata",
                .object([
                    ("name", .string(name)), ("resourceVersion", .string("1")),
                    ("labels", .object([("kubernetes.io/hostname", .string(name))])),
                ])
            ),
            ("spec", .object([("podCIDR", .string(podCIDR)), ("podCIDRs", .array([.string(podCIDR)]))])),
            (
                "status",
                .object([
                    (
                        "addresses",
                        .array([
                            .object([("type", .string("InternalIP")), ("address", .string(nodeIP))]),
                            .object([("type", .string("Hostname")), ("address", .string(name))]),
                        ])
                    )
                ])
            ),
        ]).bytes
    }

    /// The next event, applied to the stored slice at once (so that later events and lists build on it): the
    /// whole slice with one endpoint's address replaced by a fresh one, and the next resource version.
    ///
    /// The fresh addresses count up from 10.192.0.1: inside the bench's cluster CIDR (10.128.0.0/9) but above
    /// every input endpoint (scripts/bench-inputs hands out 10.128.0.0 + 16 per Service, 10.143.x.x at most).
    mutating func makeEvent() throws -> Event {
        let index = eventsMade % slices.count
        var slice = try JSONReader.parse(slices[index])
        let endpoints = slice["endpoints"].count
        guard endpoints > 0 else { throw Problem("slice \(index) has no endpoints") }
        let endpoint = (eventsMade / slices.count) % endpoints
        let old = slice["endpoints"][endpoint]["addresses"][0].string ?? "-"
        let fresh = 0x0AC0_0000 + eventsMade + 1
        let new = [24, 16, 8, 0].map { String(fresh >> $0 & 255) }.joined(separator: ".")
        eventsMade += 1
        resourceVersion += 1
        slice["endpoints"][endpoint]["addresses"][0] = .string(new)
        slice["metadata"]["resourceVersion"] = .string(String(resourceVersion))
        slices[index] = slice.bytes

        // A watch event's object, unlike a list item, names its kind.
        var line = Array(
            #"{"type":"MODIFIED","object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","#.utf8)
        line += slices[index].dropFirst()
        line += Array("}\n".utf8)
        let name = "\(slice["metadata"]["namespace"].string ?? "")/\(slice["metadata"]["name"].string ?? "")"
        return Event(resourceVersion: resourceVersion, line: ByteBuffer(bytes: line), change: "\(name) \(old) \(new)")
    }

    /// The ERROR event a real API server ends a watch with when the version it asked for was compacted.
    func expiredEvent(asked: String) -> ByteBuffer {
        let status = JSON.object([
            ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object([])),
            ("status", .string("Failure")),
            ("message", .string("too old resource version: \(asked) (\(resourceVersion))")),
            ("reason", .string("Expired")), ("code", .number("410")),
        ])
        return ByteBuffer(bytes: JSON.object([("type", .string("ERROR")), ("object", status)]).bytes + [0x0A])
    }
}

/// A failure with its message, for the command line.
struct Problem: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
