/// An IP network in CIDR notation: `10.244.0.0/16`, `fd00:10:244::/64`.
public struct IPNetwork: Sendable, Hashable, Comparable, CustomStringConvertible, LosslessStringConvertible {
    /// The network's first address (host bits zero).
    public let address: IPAddress
    /// How many leading bits name the network: 0...32 for IPv4, 0...128 for IPv6.
    public let prefixLength: UInt8

    /// The network of `address` with `prefixLength` leading bits; host bits are cleared, as Go's
    /// `net.ParseCIDR` (and so Kubernetes) does.
    public init?(address: IPAddress, prefixLength: Int) {
        guard prefixLength >= 0, prefixLength <= Int(address.family.hostPrefixLength) else { return nil }
        var bytes = address.bytes
        for index in bytes.indices {
            let bitsBefore = index * 8
            if bitsBefore >= prefixLength {
                bytes[index] = 0
            } else if bitsBefore + 8 > prefixLength {
                bytes[index] &= UInt8(truncatingIfNeeded: 0xFF << (8 - (prefixLength - bitsBefore)))
            }
        }
        self.address = IPAddress(family: address.family, bytes: bytes)
        self.prefixLength = UInt8(prefixLength)
    }

    /// The network of a single address (`/32` or `/128`).
    public init(host address: IPAddress) {
        self.address = address
        prefixLength = address.family.hostPrefixLength
    }

    /// Parses `ADDRESS/LENGTH`; `nil` without a `/`, with a bad address, or with a length out of range.
    public init?(_ text: String) {
        guard let slash = text.firstIndex(of: "/"), let address = IPAddress(String(text[..<slash])) else { return nil }
        let lengthText = text[text.index(after: slash)...]
        guard !lengthText.isEmpty, lengthText.count <= 3, lengthText.allSatisfy(\.isASCII),
            let length = Int(lengthText)
        else { return nil }
        self.init(address: address, prefixLength: length)
    }

    public var family: AddressFamily { address.family }

    /// Whether the network is a single address.
    public var isHost: Bool { prefixLength == family.hostPrefixLength }

    /// Whether `other` lies in this network.
    public func contains(_ other: IPAddress) -> Bool {
        guard other.family == family else { return false }
        return IPNetwork(address: other, prefixLength: Int(prefixLength))?.address == address
    }

    /// Whether every address of `other` lies in this network.
    public func contains(_ other: IPNetwork) -> Bool {
        other.prefixLength >= prefixLength && contains(other.address)
    }

    public var description: String { "\(address)/\(prefixLength)" }

    public static func < (lhs: IPNetwork, rhs: IPNetwork) -> Bool {
        (lhs.address, lhs.prefixLength) < (rhs.address, rhs.prefixLength)
    }
}
