import Synchronization

/// The fast decoder gave up: the full decoder decides (and, for bad input, words the problem).
struct ScanMismatch: Error {}

/// A key of a mapping, compared with the field names the decoder knows.
protocol ScannedKey {
    static func == (key: Self, word: StaticString) -> Bool
    var string: String { get }
}

/// A key as the bytes of its text (between a JSON key's quotes; a YAML key's unescaped value).
struct ByteKey: ScannedKey {
    let bytes: UnsafeBufferPointer<UInt8>

    static func == (key: ByteKey, word: StaticString) -> Bool {
        guard key.bytes.count == word.utf8CodeUnitCount else { return false }
        for offset in 0..<key.bytes.count where key.bytes[offset] != word.utf8Start[offset] { return false }
        return true
    }

    var string: String { String(decoding: bytes, as: UTF8.self) }
}

/// The keys of one mapping so far, to find a duplicate: which of two equal keys wins differs between decoders.
/// Small mappings are checked by comparison, large ones (a big labels map) through a set, never quadratically.
struct SeenKeys {
    private var keys: [ByteKey] = []
    private var manyKeys: Set<String> = []

    /// Adds a key; a mismatch when it was seen already.
    mutating func insert(_ key: ByteKey) throws(ScanMismatch) {
        if keys.count < 16 {
            if keys.contains(where: { $0.bytes.elementsEqual(key.bytes) }) { throw ScanMismatch() }
            keys.append(key)
            if keys.count == 16 { manyKeys = Set(keys.map(\.string)) }
        } else if !manyKeys.insert(key.string).inserted {
            throw ScanMismatch()
        }
    }
}

/// A pull parser the fast decoder reads manifests from: JSON bytes (``JSONScanner``) or YAML events
/// (``YAMLScanner``). Each read takes one value and throws ``ScanMismatch`` on anything its full decoder might
/// read differently.
///
/// `SendableMetatype` (SE-0470): the fast decoder passes its generic readers around as function values
/// (`list(&scanner, endpoint)`), each capturing the scanner's type, which Swift 6.2 accepts without a warning only
/// for a sendable metatype. The scanners are plain values, used from whatever isolation decodes.
protocol ManifestScanner: ~Copyable, SendableMetatype {
    associatedtype Key: ScannedKey

    /// Calls `body` with each member's key; `body` must read the member's value. Duplicate keys, where keys
    /// are read, are a mismatch.
    mutating func object(readingKeys: Bool, _ body: (inout Self, Key) throws(ScanMismatch) -> Void)
        throws(ScanMismatch)
    /// Calls `body` once per element; `body` must read the element.
    mutating func array(_ body: (inout Self) throws(ScanMismatch) -> Void) throws(ScanMismatch)
    /// Takes a null, if that is what comes next.
    mutating func takeNull() throws(ScanMismatch) -> Bool
    mutating func string() throws(ScanMismatch) -> String
    mutating func int() throws(ScanMismatch) -> Int
    mutating func bool() throws(ScanMismatch) -> Bool
    /// A number or a string (`targetPort`), or nil for a null.
    mutating func intOrString() throws(ScanMismatch) -> IntOrString?
    /// Skips any value.
    mutating func skip() throws(ScanMismatch)
}

extension ManifestScanner where Self: ~Copyable {
    mutating func object(_ body: (inout Self, Key) throws(ScanMismatch) -> Void) throws(ScanMismatch) {
        try object(readingKeys: true, body)
    }

    mutating func optionalString() throws(ScanMismatch) -> String? {
        try takeNull() ? nil : try string()
    }

    mutating func optionalInt() throws(ScanMismatch) -> Int? {
        try takeNull() ? nil : try int()
    }

    mutating func optionalBool() throws(ScanMismatch) -> Bool? {
        try takeNull() ? nil : try bool()
    }

    mutating func strings() throws(ScanMismatch) -> [String]? {
        if try takeNull() { return nil }
        var result: [String] = []
        try array { scanner throws(ScanMismatch) in result.append(try scanner.string()) }
        return result
    }

    mutating func stringMap() throws(ScanMismatch) -> [String: String]? {
        if try takeNull() { return nil }
        var result: [String: String] = [:]
        try object { scanner, key throws(ScanMismatch) in result[key.string] = try scanner.string() }
        return result
    }
}

/// How many files the fast decoder left to the full one (`sync --timings` shows it).
public enum FastDecodingFallbacks {
    private static let counter = Atomic<Int>(0)

    static func count() { counter.add(1, ordering: .relaxed) }

    /// Files decoded by the full decoder since the process started.
    public static var total: Int { counter.load(ordering: .relaxed) }
}
