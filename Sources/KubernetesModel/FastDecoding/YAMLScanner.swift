import CYAMLEvents

/// The events of a YAML stream (libyaml's, through the shim) and its scalars' values, freed on deinit.
final class YAMLEvents {
    private var storage = cyaml_events()

    /// Parses `text`; `nil` when it is not YAML (the full decoder words why).
    init?(_ text: String) {
        var text = text
        let result = text.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { cyaml_parse($0.baseAddress, $0.count, &storage) }
        }
        guard result == 0 else { return nil }
    }

    deinit { cyaml_events_free(&storage) }

    var events: UnsafeBufferPointer<cyaml_event> {
        UnsafeBufferPointer(start: storage.events, count: storage.count)
    }

    var values: UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: storage.values, count: storage.values_length)
    }
}

/// Reads manifests from YAML events as ``JSONScanner`` reads them from JSON, vouching only for what Yams'
/// decoder (the full decoder of YAML files) reads the same way.
///
/// Anything else is a mismatch, and the file goes to the full decoder: an alias anywhere, an explicit tag on
/// what is read, a merge key (`<<`), a duplicate key in any mapping, a plain scalar read as a number or a boolean that is not
/// plainly one (`0x1F`, `1_000`, `yes`), a quoted one read as a number (Yams reads `"80"` as 80, JSON as text),
/// and null-like words read as text.
struct YAMLScanner: ManifestScanner, ~Copyable {
    private let events: UnsafeBufferPointer<cyaml_event>
    private let values: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var depth = 0

    init(events: UnsafeBufferPointer<cyaml_event>, values: UnsafeBufferPointer<UInt8>) {
        self.events = events
        self.values = values
    }

    typealias Key = ByteKey

    // MARK: Documents

    /// Moves to the next document's root; `false` at the end of the stream.
    mutating func nextDocument() throws(ScanMismatch) -> Bool {
        guard index < events.count else { return false }
        guard events[index].type == UInt8(CYAML_DOCUMENT_START) else { throw ScanMismatch() }
        index += 1
        return true
    }

    /// Takes a document's root when it is empty (only comments, or `---` twice): what Yams' loader skips, a
    /// plain empty, `~` or `null` scalar.
    mutating func takeEmptyRoot() throws(ScanMismatch) -> Bool {
        let event = try current()
        guard event.type == UInt8(CYAML_SCALAR), event.flags == 0, event.style == UInt8(CYAML_PLAIN)
        else { return false }
        let bytes = value(of: event)
        guard bytes.isEmpty || Self.equals(bytes, "~") || Self.equals(bytes, "null") else { return false }
        index += 1
        return true
    }

    /// Leaves the document whose root was read.
    mutating func endDocument() throws(ScanMismatch) {
        guard index < events.count, events[index].type == UInt8(CYAML_DOCUMENT_END) else {
            throw ScanMismatch()
        }
        index += 1
    }

    // MARK: Values

    private func current() throws(ScanMismatch) -> cyaml_event {
        guard index < events.count else { throw ScanMismatch() }
        return events[index]
    }

    private func value(of event: cyaml_event) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: values[Int(event.value_offset)..<Int(event.value_offset + event.value_length)])
    }

    /// The next scalar, untagged (an anchor on it changes nothing).
    private mutating func scalar() throws(ScanMismatch) -> (bytes: UnsafeBufferPointer<UInt8>, plain: Bool) {
        let event = try current()
        guard event.type == UInt8(CYAML_SCALAR), event.flags & UInt8(CYAML_TAGGED) == 0 else {
            throw ScanMismatch()
        }
        index += 1
        return (value(of: event), event.style == UInt8(CYAML_PLAIN))
    }

    /// Yams' null words, for a plain scalar.
    private static func isNull(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        bytes.isEmpty || equals(bytes, "~") || equals(bytes, "null") || equals(bytes, "Null") || equals(bytes, "NULL")
    }

    private static func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ word: StaticString) -> Bool {
        Key(bytes: bytes) == word
    }

    mutating func object(readingKeys: Bool, _ body: (inout YAMLScanner, Key) throws(ScanMismatch) -> Void)
        throws(ScanMismatch)
    {
        let start = try current()
        guard start.type == UInt8(CYAML_MAPPING_START), start.flags & UInt8(CYAML_TAGGED) == 0 else {
            throw ScanMismatch()
        }
        index += 1
        depth += 1
        guard depth <= JSONScanner.maximumDepth else { throw ScanMismatch() }
        defer { depth -= 1 }
        var seen = SeenKeys()
        while try current().type != UInt8(CYAML_MAPPING_END) {
            let (bytes, plain) = try scalar()
            let key = Key(bytes: bytes)
            // A merge key pulls in another mapping's members: only the full decoder does that.
            if plain && key == "<<" { throw ScanMismatch() }
            // Yams refuses a duplicate key in any mapping, read or skipped: so is it checked in every one.
            try seen.insert(key)
            try body(&self, key)
        }
        index += 1
    }

    mutating func array(_ body: (inout YAMLScanner) throws(ScanMismatch) -> Void) throws(ScanMismatch) {
        let start = try current()
        guard start.type == UInt8(CYAML_SEQUENCE_START), start.flags & UInt8(CYAML_TAGGED) == 0
        else { throw ScanMismatch() }
        index += 1
        depth += 1
        guard depth <= JSONScanner.maximumDepth else { throw ScanMismatch() }
        defer { depth -= 1 }
        while try current().type != UInt8(CYAML_SEQUENCE_END) {
            try body(&self)
        }
        index += 1
    }

    mutating func takeNull() throws(ScanMismatch) -> Bool {
        let event = try current()
        guard event.type == UInt8(CYAML_SCALAR), event.flags == 0, event.style == UInt8(CYAML_PLAIN),
            Self.isNull(value(of: event))
        else { return false }
        index += 1
        return true
    }

    mutating func string() throws(ScanMismatch) -> String {
        let (bytes, plain) = try scalar()
        if plain && Self.isNull(bytes) { throw ScanMismatch() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A plain decimal whole number, as both decoders read it.
    private static func decimal(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var digits = bytes[...]
        let negative = digits.first == UInt8(ascii: "-")
        if negative { digits = digits.dropFirst() }
        guard let first = digits.first, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9"),
            first != UInt8(ascii: "0") || digits.count == 1, digits.count <= 18
        else { return nil }
        var value = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(digit - UInt8(ascii: "0"))
        }
        return negative ? -value : value
    }

    mutating func int() throws(ScanMismatch) -> Int {
        let (bytes, plain) = try scalar()
        guard plain, let value = Self.decimal(bytes) else { throw ScanMismatch() }
        return value
    }

    mutating func bool() throws(ScanMismatch) -> Bool {
        let (bytes, plain) = try scalar()
        guard plain else { throw ScanMismatch() }
        if Self.equals(bytes, "true") { return true }
        if Self.equals(bytes, "false") { return false }
        throw ScanMismatch()
    }

    mutating func intOrString() throws(ScanMismatch) -> IntOrString? {
        if try takeNull() { return nil }
        let (bytes, plain) = try scalar()
        if plain, let value = Self.decimal(bytes) { return .int(value) }
        // Text that Yams might read as a number (quoted digits, 0x10, 1_000, 1e3) goes to the full decoder.
        if let first = bytes.first,
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first)
                || first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: ".")
        {
            throw ScanMismatch()
        }
        return .string(String(decoding: bytes, as: UTF8.self))
    }

    /// Skips any value, checked as Yams checks what it does not decode: every mapping for duplicate keys,
    /// every alias (one naming no anchor is an error there) left to it.
    mutating func skip() throws(ScanMismatch) {
        switch Int(try current().type) {
        case CYAML_MAPPING_START:
            try object(readingKeys: false) { scanner, _ throws(ScanMismatch) in try scanner.skip() }
        case CYAML_SEQUENCE_START:
            try array { scanner throws(ScanMismatch) in try scanner.skip() }
        case CYAML_SCALAR:
            index += 1
        default:
            throw ScanMismatch()
        }
    }
}
