#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An IP address family.
public enum AddressFamily: Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case ipv4
    case ipv6

    /// The C address family constant (`AF_INET` or `AF_INET6`).
    public var rawValue: UInt16 {
        switch self {
        case .ipv4: UInt16(AF_INET)
        case .ipv6: UInt16(AF_INET6)
        }
    }

    /// Creates a family from its C constant; `nil` for anything but `AF_INET` and `AF_INET6`.
    public init?(rawValue: UInt16) {
        switch Int32(rawValue) {
        case AF_INET: self = .ipv4
        case AF_INET6: self = .ipv6
        default: return nil
        }
    }

    /// The length of a host prefix: 32 or 128 bits.
    public var hostPrefixLength: UInt8 { self == .ipv4 ? 32 : 128 }

    public var description: String { self == .ipv4 ? "IPv4" : "IPv6" }
}

/// An IPv4 or IPv6 address, stored by value as a 128-bit number.
public struct IPAddress: Sendable, Hashable, Comparable, CustomStringConvertible, LosslessStringConvertible {
    /// The address family.
    public let family: AddressFamily
    // The address as a big-endian number: IPv4 uses only the low 32 bits of `low`.
    private let high: UInt64
    private let low: UInt64

    /// Creates an IPv4 address from its numeric value (`0x0A000001` is `10.0.0.1`).
    public init(ipv4 value: UInt32) {
        family = .ipv4
        high = 0
        low = UInt64(value)
    }

    /// Creates an IPv6 address from its numeric value as two 64-bit halves.
    public init(ipv6High high: UInt64, low: UInt64) {
        family = .ipv6
        self.high = high
        self.low = low
    }

    /// Parses dotted-quad IPv4 or textual IPv6 (RFC 4291) notation; `nil` when `text` is neither.
    public init?(_ text: String) {
        var text = text
        let parsed: IPAddress? = text.withUTF8 { utf8 in
            if let value = Self.parseIPv4(utf8) {
                return IPAddress(ipv4: value)
            }
            guard utf8.contains(UInt8(ascii: ":")), utf8.count < 64 else { return nil }
            var bytes = [UInt8](repeating: 0, count: 16)
            var cString = [CChar](repeating: 0, count: utf8.count + 1)
            for (index, byte) in utf8.enumerated() { cString[index] = CChar(bitPattern: byte) }
            guard inet_pton(AF_INET6, cString, &bytes) == 1 else { return nil }
            return IPAddress(family: .ipv6, bytes: bytes[...])
        }
        guard let parsed else { return nil }
        self = parsed
    }

    /// Creates an address from network-order bytes: 4 for IPv4 (more are ignored), 16 for IPv6.
    public init(family: AddressFamily, bytes: some Collection<UInt8>) {
        var iterator = bytes.makeIterator()
        func next64(_ count: Int) -> UInt64 {
            var value: UInt64 = 0
            for _ in 0..<count { value = value << 8 | UInt64(iterator.next() ?? 0) }
            return value
        }
        switch family {
        case .ipv4: self.init(ipv4: UInt32(next64(4)))
        case .ipv6:
            let high = next64(8)
            self.init(ipv6High: high, low: next64(8))
        }
    }

    /// The address in network byte order: 4 bytes for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        var result = [UInt8]()
        result.reserveCapacity(16)
        withBytes { result.append(contentsOf: $0) }
        return result
    }

    /// Calls `body` with the network-order bytes, without allocating.
    public func withBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        var value = (high.bigEndian, low.bigEndian)
        return try withUnsafeBytes(of: &value) { raw in
            try body(family == .ipv4 ? UnsafeRawBufferPointer(rebasing: raw[12..<16]) : raw)
        }
    }

    /// Whether this is the unspecified address (`0.0.0.0` or `::`).
    public var isUnspecified: Bool { high == 0 && low == 0 }

    /// The family's unspecified address (`0.0.0.0`, `::`): a socket bound to it takes every address.
    public static func unspecified(_ family: AddressFamily) -> IPAddress {
        family == .ipv4 ? IPAddress(ipv4: 0) : IPAddress(ipv6High: 0, low: 0)
    }

    /// Whether this is a loopback address (`127.0.0.0/8` or `::1`).
    public var isLoopback: Bool {
        family == .ipv4 ? low >> 24 == 127 : (high == 0 && low == 1)
    }

    /// Whether this is a multicast address (`224.0.0.0/4` or `ff00::/8`).
    public var isMulticast: Bool {
        family == .ipv4 ? low >> 28 == 0xE : high >> 56 == 0xFF
    }

    /// Whether this is an IPv6 link-local address (`fe80::/10`).
    public var isLinkLocal: Bool {
        family == .ipv4 ? low >> 16 == 0xA9FE : high >> 54 == 0x3FA
    }

    public var description: String {
        switch family {
        case .ipv4:
            let value = UInt32(truncatingIfNeeded: low)
            return "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
        case .ipv6:
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            withBytes { _ = inet_ntop(AF_INET6, $0.baseAddress, &text, socklen_t(text.count)) }
            return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// The address as it appears before a port: IPv6 in brackets.
    public var bracketedDescription: String { family == .ipv6 ? "[\(description)]" : description }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        (lhs.family == .ipv4 ? 0 : 1, lhs.high, lhs.low) < (rhs.family == .ipv4 ? 0 : 1, rhs.high, rhs.low)
    }

    /// Parses strict dotted-quad notation: four decimal parts 0-255, no leading zeros.
    private static func parseIPv4(_ utf8: UnsafeBufferPointer<UInt8>) -> UInt32? {
        var value: UInt32 = 0
        var part: UInt32 = 0
        var digits = 0
        var parts = 0
        for byte in utf8 {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, parts < 3 else { return nil }
                value = value << 8 | part
                parts += 1
                part = 0
                digits = 0
            } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                // A leading zero would be octal to inet_aton and decimal to others: refuse the ambiguity.
                guard digits == 0 || part != 0 else { return nil }
                part = part * 10 + UInt32(byte - UInt8(ascii: "0"))
                digits += 1
                guard part <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, parts == 3 else { return nil }
        return value << 8 | part
    }
}

extension IPAddress {
    /// Appends the textual form to `bytes`, without building a String for IPv4 (output of large tables).
    public func write(to bytes: inout [UInt8]) {
        guard family == .ipv4 else {
            bytes.append(contentsOf: description.utf8)
            return
        }
        let value = UInt32(truncatingIfNeeded: low)
        for shift in stride(from: 24, through: 0, by: -8) {
            let octet = UInt8(truncatingIfNeeded: value >> UInt32(shift))
            if octet >= 100 { bytes.append(UInt8(ascii: "0") + octet / 100) }
            if octet >= 10 { bytes.append(UInt8(ascii: "0") + octet / 10 % 10) }
            bytes.append(UInt8(ascii: "0") + octet % 10)
            if shift > 0 { bytes.append(UInt8(ascii: ".")) }
        }
    }
}
