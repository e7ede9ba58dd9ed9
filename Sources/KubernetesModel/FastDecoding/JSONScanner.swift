/// A pull parser over JSON bytes: reads values in place, allocating only for the strings it returns.
///
/// It is strict on purpose: anything unexpected throws, and the caller falls back to Foundation's decoder,
/// which then reports the problem with its field path.
struct JSONScanner: ManifestScanner, ~Copyable {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0

    /// Foundation's JSONDecoder refuses deeper nesting; so does this scanner, which also keeps recursion
    /// (and so the stack) bounded.
    static let maximumDepth = 512

    typealias Mismatch = ScanMismatch

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    private mutating func peek() throws(Mismatch) -> UInt8 {
        skipWhitespace()
        guard index < bytes.count else { throw Mismatch() }
        return bytes[index]
    }

    private mutating func consume(_ byte: UInt8) throws(Mismatch) {
        guard try peek() == byte else { throw Mismatch() }
        index += 1
    }

    /// Whether only whitespace is left.
    mutating func isAtEnd() -> Bool {
        skipWhitespace()
        return index == bytes.count
    }

    /// Takes a `null`, if that is what comes next.
    mutating func takeNull() throws(Mismatch) -> Bool {
        guard try peek() == UInt8(ascii: "n") else { return false }
        try literal("null")
        return true
    }

    private mutating func literal(_ word: StaticString) throws(Mismatch) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw Mismatch() }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { throw Mismatch() }
        index += count
    }

    /// Calls `body` with each member's key; `body` must read the member's value.
    ///
    /// Which of two equal keys wins differs between decoders, and an escaped key (`"kin\u0064"`) names the
    /// same member as its plain spelling: in an object whose keys are read, both go to the full decoder.
    /// Keys of values being skipped need no such care, which keeps skipping fast.
    mutating func object(
        readingKeys: Bool, _ body: (inout JSONScanner, Key) throws(Mismatch) -> Void
    ) throws(Mismatch) {
        try consume(UInt8(ascii: "{"))
        depth += 1
        guard depth <= Self.maximumDepth else { throw Mismatch() }
        defer { depth -= 1 }
        if try peek() == UInt8(ascii: "}") {
            index += 1
            return
        }
        // Keys read are plain ASCII here, so equal bytes are equal strings.
        var seen = SeenKeys()
        while true {
            let key = try rawString()
            if readingKeys {
                if key.bytes.contains(where: { $0 == UInt8(ascii: "\\") || $0 >= 0x80 }) { throw Mismatch() }
                try seen.insert(key)
            }
            try consume(UInt8(ascii: ":"))
            try body(&self, key)
            switch try peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return
            default: throw Mismatch()
            }
        }
    }

    /// Calls `body` once per element; `body` must read the element.
    mutating func array(_ body: (inout JSONScanner) throws(Mismatch) -> Void) throws(Mismatch) {
        try consume(UInt8(ascii: "["))
        depth += 1
        guard depth <= Self.maximumDepth else { throw Mismatch() }
        defer { depth -= 1 }
        if try peek() == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            try body(&self)
            switch try peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                return
            default: throw Mismatch()
            }
        }
    }

    /// A key: the bytes between the quotes (where keys are read, plain ASCII without escapes).
    typealias Key = ByteKey

    private mutating func rawString() throws(Mismatch) -> Key {
        try consume(UInt8(ascii: "\""))
        let start = index
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\""):
                let key = Key(bytes: UnsafeBufferPointer(rebasing: bytes[start..<index]))
                index += 1
                return key
            case UInt8(ascii: "\\"):
                guard index + 1 < bytes.count else { throw Mismatch() }
                switch bytes[index + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                case UInt8(ascii: "u"):
                    guard index + 6 <= bytes.count,
                        bytes[(index + 2)..<(index + 6)].allSatisfy({ Self.isHexDigit($0) })
                    else { throw Mismatch() }
                    index += 6
                default: throw Mismatch()
                }
            case 0..<0x20: throw Mismatch()
            default: index += 1
            }
        }
        throw Mismatch()
    }

    mutating func string() throws(Mismatch) -> String {
        let raw = try rawString()
        guard raw.bytes.contains(UInt8(ascii: "\\")) else { return raw.string }
        return try Self.unescape(raw.bytes)
    }

    mutating func int() throws(Mismatch) -> Int {
        _ = try peek()
        let start = index
        try skipNumber()
        // Only a plain integer; a fraction or exponent is left to the full decoder.
        var negative = false
        var position = start
        if bytes[position] == UInt8(ascii: "-") {
            negative = true
            position += 1
        }
        var value = 0
        while position < index {
            let byte = bytes[position]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { throw Mismatch() }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { throw Mismatch() }
            value = sum
            position += 1
        }
        return negative ? -value : value
    }

    /// Skips a number, strictly as JSON writes one: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    private mutating func skipNumber() throws(Mismatch) {
        func digits() throws(Mismatch) -> Int {
            let start = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                index += 1
            }
            guard index > start else { throw Mismatch() }
            return index - start
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count else { throw Mismatch() }
        let first = bytes[index]
        let count = try digits()
        // JSON has no leading zeros.
        guard first != UInt8(ascii: "0") || count == 1 else { throw Mismatch() }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            _ = try digits()
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            _ = try digits()
        }
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
            || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(byte)
    }

    mutating func bool() throws(Mismatch) -> Bool {
        if try peek() == UInt8(ascii: "t") {
            try literal("true")
            return true
        }
        try literal("false")
        return false
    }

    /// A number or a string (`targetPort`).
    mutating func intOrString() throws(Mismatch) -> IntOrString? {
        if try takeNull() { return nil }
        return try peek() == UInt8(ascii: "\"") ? .string(try string()) : .int(try int())
    }

    /// Skips any value.
    mutating func skip() throws(Mismatch) {
        switch try peek() {
        case UInt8(ascii: "{"): try object(readingKeys: false) { scanner, _ throws(Mismatch) in try scanner.skip() }
        case UInt8(ascii: "["): try array { scanner throws(Mismatch) in try scanner.skip() }
        case UInt8(ascii: "\""): _ = try rawString()
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        default:
            try skipNumber()
        }
    }

    private static func unescape(_ raw: UnsafeBufferPointer<UInt8>) throws(Mismatch) -> String {
        var scalars = String.UnicodeScalarView()
        var utf8: [UInt8] = []
        var index = 0
        func flush() {
            scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars)
            utf8.removeAll(keepingCapacity: true)
        }
        func hex4(_ at: Int) throws(Mismatch) -> UInt32 {
            guard at + 4 <= raw.count else { throw Mismatch() }
            var value: UInt32 = 0
            for offset in 0..<4 {
                let byte = raw[at + offset]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw Mismatch()
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }
        while index < raw.count {
            let byte = raw[index]
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                index += 1
                continue
            }
            guard index + 1 < raw.count else { throw Mismatch() }
            let escaped = raw[index + 1]
            index += 2
            switch escaped {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escaped)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4(index)
                index += 4
                if (0xD800...0xDBFF).contains(code) {
                    guard index + 6 <= raw.count, raw[index] == UInt8(ascii: "\\"), raw[index + 1] == UInt8(ascii: "u")
                    else { throw Mismatch() }
                    let low = try hex4(index + 2)
                    guard (0xDC00...0xDFFF).contains(low) else { throw Mismatch() }
                    index += 6
                    code = 0x10000 + (code - 0xD800) << 10 + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw Mismatch() }
                flush()
                scalars.append(scalar)
            default: throw Mismatch()
            }
        }
        flush()
        return String(scalars)
    }
}
