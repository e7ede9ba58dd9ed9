import InternetAddress

/// The data type of one field of an nftables set's key, as nft names it.
public enum NFTDataType: String, Sendable, Hashable {
    case ipv4Address = "ipv4_addr"
    case ipv6Address = "ipv6_addr"
    case transportProtocol = "inet_proto"
    case port = "inet_service"
}

/// One element of an nftables set, held as nft writes it (`10.96.0.1 . tcp . 80`).
///
/// The text is the element's identity: ipvs-proxy renders the elements it wants, and reads a listing back into
/// the same rendering, so that comparing the two is comparing text.
public struct SetElement: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let text: String

    /// One field of an element.
    public enum Field: Sendable, Hashable {
        case address(IPAddress)
        /// A network, in a set with `flags interval`; a single address is written without its prefix, as nft
        /// lists it.
        case network(IPNetwork)
        /// An IP protocol number.
        case transportProtocol(UInt8)
        case port(UInt16)
    }

    public init(_ fields: Field...) {
        self.init(fields)
    }

    public init(_ fields: [Field]) {
        text = fields.map(Self.render).joined(separator: " . ")
    }

    /// An element as nft writes it, taken as is (from ipvs-proxy's own records).
    public init(text: String) {
        self.text = text
    }

    /// The text nft uses for a field.
    static func render(_ field: Field) -> String {
        switch field {
        case .address(let address): address.description
        case .network(let network): network.isHost ? network.address.description : network.description
        case .transportProtocol(let number): protocolNames[number] ?? "\(number)"
        case .port(let port): "\(port)"
        }
    }

    /// nft's names for the IP protocols a Service can use.
    static let protocolNames: [UInt8: String] = [6: "tcp", 17: "udp", 132: "sctp"]

    public var description: String { text }

    public static func < (lhs: SetElement, rhs: SetElement) -> Bool { lhs.text < rhs.text }
}

extension SetElement {
    /// Reads an element of a JSON listing (`"10.0.0.1"`, `80`, `{"concat": [...]}`, `{"prefix": {...}}`), whose
    /// set's key has the types `fields`; `nil` for anything else (ranges nft made of adjacent networks, say).
    init?(json value: Any, fields: [NFTDataType]) {
        var value = value
        // An element with options (a comment, a timeout) comes wrapped: {"elem": {"val": ...}}.
        if let wrapped = (value as? [String: Any])?["elem"] as? [String: Any], let inner = wrapped["val"] {
            value = inner
        }
        let parts: [Any]
        if fields.count > 1 {
            guard let concat = (value as? [String: Any])?["concat"] as? [Any], concat.count == fields.count else {
                return nil
            }
            parts = concat
        } else {
            parts = [value]
        }
        var rendered: [String] = []
        for (part, type) in zip(parts, fields) {
            guard let text = Self.readField(part, as: type) else { return nil }
            rendered.append(text)
        }
        self.init(text: rendered.joined(separator: " . "))
    }

    private static func readField(_ part: Any, as type: NFTDataType) -> String? {
        switch type {
        case .ipv4Address, .ipv6Address:
            if let text = part as? String, let address = IPAddress(text) { return render(.address(address)) }
            if let prefix = (part as? [String: Any])?["prefix"] as? [String: Any], let text = prefix["addr"] as? String,
                let address = IPAddress(text), let length = prefix["len"] as? Int,
                let network = IPNetwork(address: address, prefixLength: length)
            {
                return render(.network(network))
            }
            return nil
        case .transportProtocol:
            if let name = part as? String, protocolNames.values.contains(name) { return name }
            if let number = part as? Int, let byte = UInt8(exactly: number) { return render(.transportProtocol(byte)) }
            return nil
        case .port:
            if let number = part as? Int, let port = UInt16(exactly: number) { return render(.port(port)) }
            return nil
        }
    }
}

/// A set's elements in brief: how many, and the sum of their texts' 64-bit FNV-1a hashes, which does not depend
/// on their order. Two sets with the same digest are taken to hold the same elements, so a set can be found
/// unchanged without comparing (or even reading) its elements.
public struct ElementsDigest: Sendable, Hashable, CustomStringConvertible {
    public var count: Int
    public var sum: UInt64

    public init(count: Int, sum: UInt64) {
        self.count = count
        self.sum = sum
    }

    public init(_ elements: some Collection<SetElement>) {
        count = elements.count
        sum = elements.reduce(0) { $0 &+ Self.hash($1.text) }
    }

    /// No elements.
    public static let empty = ElementsDigest(count: 0, sum: 0)

    /// One element's share of the sum: the 64-bit FNV-1a hash of its text's UTF-8 bytes.
    public static func hash(_ text: some StringProtocol) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }

    public var description: String { "\(count) \(sum)" }
}
