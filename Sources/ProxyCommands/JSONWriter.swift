/// A small streaming JSON writer for command output: fields come out in the order they are written,
/// which keeps output stable for people and scripts, and large tables are written without building a tree.
struct JSONWriter {
    private(set) var output = ""
    private var needsComma: [Bool] = [false]
    private let indentUnit: String
    private var depth = 0

    init(pretty: Bool = true) {
        indentUnit = pretty ? "  " : ""
    }

    mutating func beginObject(key: String? = nil) { open("{", key: key) }
    mutating func endObject() { close("}") }
    mutating func beginArray(key: String? = nil) { open("[", key: key) }
    mutating func endArray() { close("]") }

    mutating func field(_ key: String, _ value: String?) {
        writeKey(key)
        if let value { writeString(value) } else { output += "null" }
    }

    mutating func field(_ key: String, _ value: some BinaryInteger) {
        writeKey(key)
        output += String(value)
    }

    mutating func field(_ key: String, _ value: Double) {
        writeKey(key)
        output += value.isFinite ? "\(value)" : "null"
    }

    mutating func field(_ key: String, _ value: Bool) {
        writeKey(key)
        output += value ? "true" : "false"
    }

    mutating func field(_ key: String, strings: [String]) {
        writeKey(key)
        output += "["
        for (index, value) in strings.enumerated() {
            if index > 0 { output += ", " }
            writeString(value)
        }
        output += "]"
    }

    mutating func nullField(_ key: String) {
        writeKey(key)
        output += "null"
    }

    private mutating func open(_ bracket: String, key: String?) {
        if let key { writeKey(key) } else { separate() }
        output += bracket
        depth += 1
        needsComma.append(false)
    }

    private mutating func close(_ bracket: String) {
        let hadMembers = needsComma.removeLast()
        depth -= 1
        if hadMembers { newline() }
        output += bracket
    }

    private mutating func separate() {
        if needsComma[needsComma.count - 1] { output += "," }
        needsComma[needsComma.count - 1] = true
        if depth > 0 { newline() }
    }

    private mutating func newline() {
        guard !indentUnit.isEmpty else { return }
        output += "\n"
        for _ in 0..<depth { output += indentUnit }
    }

    private mutating func writeKey(_ key: String) {
        separate()
        writeString(key)
        output += indentUnit.isEmpty ? ":" : ": "
    }

    private mutating func writeString(_ value: String) {
        output += "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: output.unicodeScalars.append(scalar)
            }
        }
        output += "\""
    }
}
