// A netlink encoder and decoder written independently of the shim, so tests can check the shim's
// messages byte by byte and feed it replies shaped like the kernel's.

/// Builds a generic netlink message the way the kernel lays one out.
struct NetlinkMessageBuilder {
    private(set) var bytes: [UInt8] = []
    private var nestStarts: [Int] = []

    init(type: UInt16, flags: UInt16 = 0, sequence: UInt32 = 1, command: UInt8, version: UInt8 = 1) {
        self.init(type: type, flags: flags, sequence: sequence, header: [command, version, 0, 0])
    }

    /// A message of another netlink family, whose fixed header (rtnetlink's `ifaddrmsg`, nfnetlink's
    /// `nfgenmsg`, ...) is `header`, padded to 4 bytes.
    init(type: UInt16, flags: UInt16 = 0, sequence: UInt32 = 1, header: [UInt8]) {
        append32(0)  // length, patched in `message`
        append16(type)
        append16(flags)
        append32(sequence)
        append32(0)  // port id
        bytes += header
        pad()
    }

    mutating func attribute(_ type: UInt16, _ payload: [UInt8]) {
        append16(UInt16(4 + payload.count))
        append16(type)
        bytes += payload
        pad()
    }

    mutating func u16(_ type: UInt16, _ value: UInt16) {
        attribute(type, withUnsafeBytes(of: value.littleEndian, Array.init))
    }
    mutating func u32(_ type: UInt16, _ value: UInt32) {
        attribute(type, withUnsafeBytes(of: value.littleEndian, Array.init))
    }
    mutating func u64(_ type: UInt16, _ value: UInt64) {
        attribute(type, withUnsafeBytes(of: value.littleEndian, Array.init))
    }
    mutating func string(_ type: UInt16, _ value: String) { attribute(type, Array(value.utf8) + [0]) }

    mutating func beginNest(_ type: UInt16) {
        nestStarts.append(bytes.count)
        append16(0)
        append16(type | 0x8000)  // NLA_F_NESTED, as the kernel sets it
    }

    mutating func endNest() {
        let start = nestStarts.removeLast()
        let length = UInt16(bytes.count - start)
        bytes[start] = UInt8(length & 0xFF)
        bytes[start + 1] = UInt8(length >> 8)
    }

    var message: [UInt8] {
        var result = bytes
        let length = UInt32(result.count)
        withUnsafeBytes(of: length.littleEndian) { for (index, byte) in $0.enumerated() { result[index] = byte } }
        return result
    }

    private mutating func append16(_ value: UInt16) { bytes += withUnsafeBytes(of: value.littleEndian, Array.init) }
    private mutating func append32(_ value: UInt32) { bytes += withUnsafeBytes(of: value.littleEndian, Array.init) }
    private mutating func pad() { while bytes.count % 4 != 0 { bytes.append(0) } }
}

/// A decoded netlink attribute tree.
struct DecodedAttribute {
    var type: UInt16
    var payload: [UInt8]

    var u16: UInt16 { UInt16(payload[0]) | UInt16(payload[1]) << 8 }
    var u32: UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(payload[$1]) << (8 * $1) } }
    var string: String { String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self) }
    var nested: [UInt16: DecodedAttribute] { DecodedAttribute.parse(payload[...]) }

    static func parse(_ bytes: ArraySlice<UInt8>) -> [UInt16: DecodedAttribute] {
        var result: [UInt16: DecodedAttribute] = [:]
        var offset = bytes.startIndex
        while offset + 4 <= bytes.endIndex {
            let length = Int(UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8)
            let type = (UInt16(bytes[offset + 2]) | UInt16(bytes[offset + 3]) << 8) & 0x3FFF
            guard length >= 4, offset + length <= bytes.endIndex else { break }
            result[type] = DecodedAttribute(type: type, payload: Array(bytes[(offset + 4)..<(offset + length)]))
            offset += (length + 3) & ~3
        }
        return result
    }
}

/// A decoded generic netlink message.
struct DecodedMessage {
    var length: UInt32
    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    var command: UInt8
    var version: UInt8
    var attributes: [UInt16: DecodedAttribute]

    init(_ bytes: [UInt8]) {
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
        length = u32(0)
        type = u16(4)
        flags = u16(6)
        sequence = u32(8)
        command = bytes[16]
        version = bytes[17]
        attributes = DecodedAttribute.parse(bytes[20..<Int(length)])
    }
}
