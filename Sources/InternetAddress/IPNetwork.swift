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

extension IPNetwork {
    /// Why a text is not a network in the one form Kubernetes accepts in its newer CIDR fields.
    public enum CanonicalFormProblem: Error, Sendable, Hashable, CustomStringConvertible {
        /// Not `ADDRESS/LENGTH` with an address and a length of its family.
        case notCIDR
        /// An IPv4-mapped IPv6 address (`::ffff:10.96.0.0/108`): one range with two readings.
        case ipv4MappedIPv6
        /// Bits set past the prefix length (`10.96.0.1/12`): an interface's address, not a network. The value is the
        /// network it lies in.
        case hostBitsSet(IPNetwork)
        /// The network, written otherwise than canonically (`FD00::/108`, `10.96.0.0/012`): the value is the network,
        /// whose ``IPNetwork/canonicalDescription`` is the form asked for.
        case notCanonical(IPNetwork)

        public var description: String {
            switch self {
            case .notCIDR: "is not a network in CIDR notation"
            case .ipv4MappedIPv6: "is an IPv4-mapped IPv6 address; write the IPv4 network instead"
            case .hostBitsSet(let network): "has bits set beyond the prefix length (the network is \(network))"
            case .notCanonical(let network): "is not in canonical form (\(network.canonicalDescription))"
            }
        }
    }

    /// Parses `ADDRESS/LENGTH` as Kubernetes' strict CIDR validation does (apimachinery's `IsValidCIDR`, which
    /// ServiceCIDRs' `spec.cidrs` go through): the text must be exactly the network's
    /// ``canonicalDescription``, so that Go, the kernel and this proxy read the same range from it.
    /// - Throws: What is wrong, in the order Kubernetes checks: not a CIDR, IPv4-mapped, host bits, form.
    public init(canonical text: String) throws(CanonicalFormProblem) {
        guard let slash = text.firstIndex(of: "/"), let address = IPAddress(String(text[..<slash])) else {
            throw .notCIDR
        }
        // Digits only: `Int` would take a sign, which Go's parser does not.
        let lengthText = text[text.index(after: slash)...]
        guard !lengthText.isEmpty, lengthText.count <= 3, lengthText.allSatisfy({ $0.isASCII && $0.isNumber }),
            let length = Int(lengthText), let network = IPNetwork(address: address, prefixLength: length)
        else { throw .notCIDR }
        if address.isIPv4MappedIPv6 { throw .ipv4MappedIPv6 }
        if network.address != address { throw .hostBitsSet(network) }
        if network.canonicalDescription != text { throw .notCanonical(network) }
        self = network
    }

    /// The network as Go's `net.IPNet.String()` writes it, which is what Kubernetes compares a CIDR field with: IPv6
    /// in RFC 5952's form, with every group in hex. Unlike ``description``, whose IPv6 comes from `inet_ntop`, an
    /// IPv4-compatible address (`::10.0.0.0`) is not written with a dotted tail.
    public var canonicalDescription: String {
        guard family == .ipv6 else { return description }
        return "\(address.rfc5952Description)/\(prefixLength)"
    }
}

extension IPAddress {
    /// Whether this is an IPv4 address in IPv6's clothes (`::ffff:0:0/96`).
    var isIPv4MappedIPv6: Bool {
        guard family == .ipv6 else { return false }
        let bytes = bytes
        return bytes[..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xFF && bytes[11] == 0xFF
    }

    /// An IPv6 address in RFC 5952's form: groups in lowercase hex without leading zeros, the longest run of two
    /// or more zero groups (the first of equal runs) as `::`.
    var rfc5952Description: String {
        let bytes = bytes
        let groups = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
        var best: Range<Int>?
        var start = 0
        while start < 8 {
            guard groups[start] == 0 else {
                start += 1
                continue
            }
            var end = start
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - start >= 2, end - start > (best?.count ?? 0) { best = start..<end }
            start = end
        }
        let hex = { (range: Range<Int>) in groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
        guard let best else { return hex(0..<8) }
        return hex(0..<best.lowerBound) + "::" + hex(best.upperBound..<8)
    }
}
