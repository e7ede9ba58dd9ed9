/// One line of a watch stream that carries an object, decoded by the fast decoder.
package struct WatchEventLine: Sendable, Hashable {
    /// The kinds of watch events that carry an object.
    package enum EventType: String, Sendable, Hashable {
        case added = "ADDED"
        case modified = "MODIFIED"
        case deleted = "DELETED"
    }

    package var type: EventType
    package var item: DecodedItem

    /// Decodes a line with ``FastManifestDecoder``, or gives `nil` where it cannot vouch for it (another event
    /// type, keys in another order, anything unusual): `JSONDecoder` then decides.
    package static func decodeFast(_ line: ArraySlice<UInt8>) -> WatchEventLine? {
        // Bytes that are not UTF-8 are JSONDecoder's to refuse: the fast scanner would repair them
        // (Docs/fuzzing.md, finding 8).
        guard String(validating: line, as: UTF8.self) != nil else { return nil }
        return line.withUnsafeBufferPointer { FastManifestDecoder.decodeWatchEvent($0) }
    }
}
