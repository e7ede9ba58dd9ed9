#if canImport(Glibc)
    import Glibc
#endif

/// The transport protocol of a virtual server.
///
/// Not named `Protocol`: `IPVS.Protocol` would be read as a metatype.
public struct TransportProtocol: RawRepresentable, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// The IP protocol number.
    public let rawValue: UInt16

    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The corresponding C constant is `IPPROTO_TCP`.
    public static let tcp = TransportProtocol(rawValue: UInt16(IPPROTO_TCP))
    /// The corresponding C constant is `IPPROTO_UDP`.
    public static let udp = TransportProtocol(rawValue: UInt16(IPPROTO_UDP))
    /// The corresponding C constant is `IPPROTO_SCTP`.
    public static let sctp = TransportProtocol(rawValue: 132)

    public static let allCases: [TransportProtocol] = [.tcp, .udp, .sctp]

    /// Parses a protocol name as Kubernetes and ipvsadm write it, in any case (`TCP`, `udp`, `Sctp`).
    public init?(name: String) {
        guard let match = Self.allCases.first(where: { $0.name.caseInsensitiveCompare(name) }) else { return nil }
        self = match
    }

    /// The protocol's name in capitals: `TCP`, `UDP`, `SCTP`, or its number for others.
    public var name: String {
        switch self {
        case .tcp: "TCP"
        case .udp: "UDP"
        case .sctp: "SCTP"
        default: "\(rawValue)"
        }
    }

    public var description: String { name }
}

extension String {
    /// ASCII case-insensitive equality, without Foundation.
    func caseInsensitiveCompare(_ other: String) -> Bool {
        guard utf8.count == other.utf8.count else { return false }
        return zip(utf8, other.utf8).allSatisfy { a, b in
            a == b || (a | 0x20 == b | 0x20 && (a | 0x20) >= UInt8(ascii: "a") && (a | 0x20) <= UInt8(ascii: "z"))
        }
    }
}
