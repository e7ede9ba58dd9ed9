import IPVSModel

/// A small streaming JSON writer for command output: fields come out in the order they are written,
/// which keeps output stable for people and scripts, and large tables are written straight into bytes.
struct JSONWriter {
    private(set) var bytes: [UInt8] = []
    private var needsComma: [Bool] = [false]
    private let pretty: Bool
    private var depth = 0

    init(pretty: Bool = true) {
        self.pretty = pretty
        bytes.reserveCapacity(1 << 16)
    }

    var output: String { String(decoding: bytes, as: UTF8.self) }

    mutating func beginObject(key: String? = nil) { open(UInt8(ascii: "{"), key: key) }
    mutating func endObject() { close(UInt8(ascii: "}")) }
    mutating func beginArray(key: String? = nil) { open(UInt8(ascii: "["), key: key) }
    mutating func endArray() { close(UInt8(ascii: "]")) }

    mutating func field(_ key: String, _ value: String?) {
        writeKey(key)
        if let value { writeString(value) } else { bytes.append(contentsOf: "null".utf8) }
    }

    mutating func field(_ key: String, _ value: some BinaryInteger) {
        writeKey(key)
        writeDecimal(value)
    }

    mutating func field(_ key: String, _ value: Bool) {
        writeKey(key)
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    /// An address as a JSON string, written without building a String first.
    mutating func field(_ key: String, address: IPAddress) {
        writeKey(key)
        bytes.append(UInt8(ascii: "\""))
        address.write(to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func field(_ key: String, strings: [String]) {
        writeKey(key)
        bytes.append(UInt8(ascii: "["))
        for (index, value) in strings.enumerated() {
            if index > 0 { bytes.append(contentsOf: ", ".utf8) }
            writeString(value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    mutating func nullField(_ key: String) {
        writeKey(key)
        bytes.append(contentsOf: "null".utf8)
    }

    private mutating func open(_ bracket: UInt8, key: String?) {
        if let key { writeKey(key) } else { separate() }
        bytes.append(bracket)
        depth += 1
        needsComma.append(false)
    }

    private mutating func close(_ bracket: UInt8) {
        let hadMembers = needsComma.removeLast()
        depth -= 1
        if hadMembers { newline() }
        bytes.append(bracket)
    }

    private mutating func separate() {
        if needsComma[needsComma.count - 1] { bytes.append(UInt8(ascii: ",")) }
        needsComma[needsComma.count - 1] = true
        if depth > 0 { newline() }
    }

    private mutating func newline() {
        guard pretty else { return }
        bytes.append(UInt8(ascii: "\n"))
        for _ in 0..<depth { bytes.append(contentsOf: [UInt8(ascii: " "), UInt8(ascii: " ")]) }
    }

    private mutating func writeKey(_ key: String) {
        separate()
        writeString(key)
        bytes.append(UInt8(ascii: ":"))
        if pretty { bytes.append(UInt8(ascii: " ")) }
    }

    mutating func writeDecimal(_ value: some BinaryInteger) {
        appendDecimal(value, to: &bytes)
    }

    private mutating func writeString(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// Appends an integer in decimal, without building a String.
func appendDecimal(_ value: some BinaryInteger, to bytes: inout [UInt8]) {
    guard value >= 0 else {
        bytes.append(contentsOf: String(value).utf8)
        return
    }
    var remaining = UInt64(value)
    var divisor: UInt64 = 1
    while remaining / divisor >= 10 { divisor *= 10 }
    while divisor > 0 {
        bytes.append(UInt8(ascii: "0") + UInt8(remaining / divisor))
        remaining %= divisor
        divisor /= 10
    }
}
