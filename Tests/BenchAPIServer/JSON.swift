/// A JSON value that keeps its objects' key order and its numbers' text, so that an object read and written
/// again comes out as it went in, only compact.
enum JSON {
    case null
    case bool(Bool)
    /// The number as written: nothing here computes with numbers.
    case number(String)
    case string(String)
    case array([JSON])
    case object([(key: String, value: JSON)])

    /// An object's field (`.null` when absent or not an object); setting it replaces the field or appends it.
    subscript(key: String) -> JSON {
        get {
            guard case .object(let fields) = self else { return .null }
            return fields.first { $0.key == key }?.value ?? .null
        }
        set {
            guard case .object(var fields) = self else { return }
            if let index = fields.firstIndex(where: { $0.key == key }) {
                fields[index].value = newValue
            } else {
                fields.append((key, newValue))
            }
            self = .object(fields)
        }
    }

    /// An array's element (`.null` when out of range or not an array); setting it replaces the element.
    subscript(index: Int) -> JSON {
        get {
            guard case .array(let elements) = self, elements.indices.contains(index) else { return .null }
            return elements[index]
        }
        set {
            guard case .array(var elements) = self, elements.indices.contains(index) else { return }
            elements[index] = newValue
            self = .array(elements)
        }
    }

    var string: String? {
        if case .string(let text) = self { text } else { nil }
    }

    var count: Int {
        switch self {
        case .array(let elements): elements.count
        case .object(let fields): fields.count
        default: 0
        }
    }

    /// The object without these fields.
    func removing(_ keys: Set<String>) -> JSON {
        guard case .object(let fields) = self else { return self }
        return .object(fields.filter { !keys.contains($0.key) })
    }

    /// Compact JSON (no spaces), as the API server writes it.
    func write(to out: inout [UInt8]) {
        switch self {
        case .null: out += Array("null".utf8)
        case .bool(let value): out += Array((value ? "true" : "false").utf8)
        case .number(let text): out += Array(text.utf8)
        case .string(let text): JSON.writeString(text, to: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                element.write(to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let fields):
            out.append(UInt8(ascii: "{"))
            for (index, field) in fields.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                JSON.writeString(field.key, to: &out)
                out.append(UInt8(ascii: ":"))
                field.value.write(to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    var bytes: [UInt8] {
        var out: [UInt8] = []
        write(to: &out)
        return out
    }

    private static func writeString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                out += [UInt8(ascii: "\\"), byte]
            case ..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// A JSON reader over bytes; it can hand out the elements of a document's `items` one at a time, so that a big
/// list never exists as one tree.
struct JSONReader {
    struct Failure: Error, CustomStringConvertible {
        var offset: Int
        var problem: String
        var description: String { "invalid JSON at byte \(offset): \(problem)" }
    }

    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func parse(_ bytes: [UInt8]) throws -> JSON {
        var reader = JSONReader(bytes)
        let value = try reader.value()
        reader.skipSpace()
        guard reader.position == bytes.count else { throw reader.failure("text after the value") }
        return value
    }

    /// Reads a top-level object, calling `body` with each element of its `items` array; other fields are read and
    /// dropped.
    mutating func forEachItem(_ body: (JSON) throws -> Void) throws {
        try expect("{")
        if try peek() == UInt8(ascii: "}") { return }
        repeat {
            let key = try string()
            try expect(":")
            if key == "items", try peek() == UInt8(ascii: "[") {
                try expect("[")
                if try peek() != UInt8(ascii: "]") {
                    repeat { try body(try value()) } while try comma(before: "]")
                } else {
                    try expect("]")
                }
            } else {
                _ = try value()
            }
        } while try comma(before: "}")
    }

    private mutating func value() throws -> JSON {
        switch try peek() {
        case UInt8(ascii: "{"):
            try expect("{")
            var fields: [(key: String, value: JSON)] = []
            if try peek() == UInt8(ascii: "}") {
                try expect("}")
                return .object(fields)
            }
            repeat {
                let key = try string()
                try expect(":")
                fields.append((key, try value()))
            } while try comma(before: "}")
            return .object(fields)
        case UInt8(ascii: "["):
            try expect("[")
            var elements: [JSON] = []
            if try peek() == UInt8(ascii: "]") {
                try expect("]")
                return .array(elements)
            }
            repeat { elements.append(try value()) } while try comma(before: "]")
            return .array(elements)
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"):
            try word("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try word("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try word("null")
            return .null
        default:
            let start = position
            while position < bytes.count, "+-.0123456789eE".utf8.contains(bytes[position]) { position += 1 }
            guard position > start else { throw failure("unexpected character") }
            return .number(String(decoding: bytes[start..<position], as: UTF8.self))
        }
    }

    private mutating func string() throws -> String {
        try expect("\"")
        var out: [UInt8] = []
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard position < bytes.count else { break }
                let escaped = bytes[position]
                position += 1
                switch escaped {
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar), bytes[position...].starts(with: Array("\\u".utf8)) {
                        position += 2
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (try hex4() - 0xDC00)
                    }
                    out += Array(String(Unicode.Scalar(scalar).map(Character.init) ?? "\u{FFFD}").utf8)
                default: out.append(escaped)  // \" \\ \/
                }
            default:
                out.append(byte)
            }
        }
        throw failure("unterminated string")
    }

    private mutating func hex4() throws -> UInt32 {
        guard position + 4 <= bytes.count,
            let value = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16)
        else { throw failure("bad \\u escape") }
        position += 4
        return value
    }

    /// After an element: `true` at a comma (another follows), `false` at the closing character.
    private mutating func comma(before close: Unicode.Scalar) throws -> Bool {
        if try peek() == UInt8(ascii: ",") {
            position += 1
            return true
        }
        try expect(close)
        return false
    }

    private mutating func word(_ text: String) throws {
        guard bytes[position...].starts(with: Array(text.utf8)) else { throw failure("expected \(text)") }
        position += text.utf8.count
    }

    private mutating func expect(_ character: Unicode.Scalar) throws {
        guard try peek() == UInt8(ascii: character) else { throw failure("expected '\(character)'") }
        position += 1
    }

    /// The next byte that is not white space.
    private mutating func peek() throws -> UInt8 {
        skipSpace()
        guard position < bytes.count else { throw failure("unexpected end") }
        return bytes[position]
    }

    private mutating func skipSpace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    private func failure(_ problem: String) -> Failure { Failure(offset: position, problem: problem) }
}
