import Yams

/// Reads one mapping of a configuration document field by field, and refuses what it was not asked for.
///
/// Each read marks its field as known; ``finish()`` then names the first field no read asked for, with its
/// full path. A null or absent field reads as `nil`, like a zero value, so kube-proxy's default applies.
struct FieldReader {
    let file: String
    /// The path of this mapping (`ipvs`), empty at the document's root.
    let path: String
    private let fields: [(name: String, value: Node)]
    private var read: Set<String> = []

    init(_ node: Node?, file: String, path: String) throws(ConfigurationFileError) {
        self.file = file
        self.path = path
        guard let node, node.null == nil else {
            fields = []
            return
        }
        guard case .mapping(let mapping) = node else {
            throw ConfigurationFileError(
                file: file, path: path, reason: "must be a mapping of fields, not \(node.kindName)")
        }
        var fields: [(String, Node)] = []
        for (key, value) in mapping {
            guard case .scalar = key, let name = key.string else {
                throw ConfigurationFileError(file: file, path: path, reason: "a field's name must be a string")
            }
            fields.append((name, value))
        }
        self.fields = fields
    }

    func fieldPath(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

    private func problem(_ name: String, _ reason: String) -> ConfigurationFileError {
        ConfigurationFileError(file: file, path: fieldPath(name), reason: reason)
    }

    /// The field's value node; `nil` when absent or null.
    private mutating func value(_ name: String) -> Node? {
        read.insert(name)
        guard let node = fields.first(where: { $0.name == name })?.value, node.null == nil else { return nil }
        return node
    }

    /// A scalar that Go would unmarshal into a string: a quoted or plain string, never a number or a bool.
    mutating func string(_ name: String) throws(ConfigurationFileError) -> String? {
        guard let node = value(name) else { return nil }
        guard case .scalar(let scalar) = node, node.tagName == .str || scalar.style != .plain else {
            throw problem(name, "must be a string, not \(node.kindName)")
        }
        return scalar.string
    }

    /// A string that is empty when zero.
    mutating func nonEmptyString(_ name: String) throws(ConfigurationFileError) -> String? {
        try string(name).flatMap { $0.isEmpty ? nil : $0 }
    }

    mutating func bool(_ name: String) throws(ConfigurationFileError) -> Bool? {
        guard let node = value(name) else { return nil }
        guard case .scalar = node, node.tagName == .bool, let value = node.bool else {
            throw problem(name, "must be true or false, not \(node.kindName)")
        }
        return value
    }

    /// A whole number within `Value`'s range.
    mutating func integer<Value: FixedWidthInteger>(_ name: String, as: Value.Type) throws(ConfigurationFileError)
        -> Value?
    {
        guard let node = value(name) else { return nil }
        guard case .scalar = node, node.tagName == .int, let whole = node.int else {
            throw problem(name, "must be a whole number, not \(node.kindName)")
        }
        guard let value = Value(exactly: whole) else {
            throw problem(name, "\(whole) is out of range (\(Value.min) to \(Value.max))")
        }
        return value
    }

    mutating func number(_ name: String) throws(ConfigurationFileError) -> Double? {
        guard let node = value(name) else { return nil }
        guard case .scalar = node, node.tagName == .int || node.tagName == .float, let value = node.float else {
            throw problem(name, "must be a number, not \(node.kindName)")
        }
        return value
    }

    /// A duration written as Go writes it (`30s`, `1m30s`); negative durations are refused.
    mutating func duration(_ name: String) throws(ConfigurationFileError) -> GoDuration? {
        guard let text = try string(name) else { return nil }
        if text.isEmpty { return nil }
        guard let duration = GoDuration(text) else {
            throw problem(name, "'\(text)' is not a duration (a number with a unit: 500ms, 30s, 1m30s, 2h)")
        }
        return duration
    }

    /// A duration, or a whole number of nanoseconds (component-base's `TimeOrMetaDuration`).
    mutating func durationOrNanoseconds(_ name: String) throws(ConfigurationFileError) -> GoDuration? {
        if let node = fields.first(where: { $0.name == name })?.value, node.tagName == .int, let nanoseconds = node.int
        {
            read.insert(name)
            guard nanoseconds >= 0 else { throw problem(name, "\(nanoseconds) is below 0") }
            return GoDuration(.nanoseconds(nanoseconds))
        }
        return try duration(name)
    }

    /// A resource quantity (`0`, `64Ki`), as written.
    mutating func quantity(_ name: String) throws(ConfigurationFileError) -> String? {
        guard let node = value(name) else { return nil }
        guard case .scalar(let scalar) = node, node.tagName != .bool,
            scalar.string.range(
                of: #"^[+]?[0-9.]+([eE][+-]?[0-9]+|[KMGTPE]i?|[mkMGTPE])?$"#, options: .regularExpression)
                != nil
        else {
            throw problem(name, "must be a quantity (0, 64Ki, 1M), not \(node.kindName)")
        }
        return scalar.string
    }

    /// A list of strings; an empty list reads as `nil`.
    mutating func strings(_ name: String) throws(ConfigurationFileError) -> [String]? {
        guard let items = try sequence(name) else { return nil }
        var strings: [String] = []
        for (index, item) in items.enumerated() {
            guard case .scalar(let scalar) = item, item.tagName == .str || scalar.style != .plain else {
                throw problem("\(name)[\(index)]", "must be a string, not \(item.kindName)")
            }
            strings.append(scalar.string)
        }
        return strings.isEmpty ? nil : strings
    }

    /// A list's items; an empty list reads as `nil`.
    mutating func sequence(_ name: String) throws(ConfigurationFileError) -> [Node]? {
        guard let node = value(name) else { return nil }
        guard case .sequence(let sequence) = node else { throw problem(name, "must be a list, not \(node.kindName)") }
        return sequence.isEmpty ? nil : Array(sequence)
    }

    /// A mapping of names to booleans (`featureGates`).
    mutating func booleanMap(_ name: String) throws(ConfigurationFileError) -> [String: Bool]? {
        var nested = try self.nested(name)
        var map: [String: Bool] = [:]
        for key in nested.names {
            map[key] = try nested.bool(key)
        }
        return map.isEmpty ? nil : map
    }

    /// The reader of a nested mapping; an absent or null one reads as empty.
    mutating func nested(_ name: String) throws(ConfigurationFileError) -> FieldReader {
        try FieldReader(value(name), file: file, path: fieldPath(name))
    }

    /// A reader for a list item that is a mapping.
    func item(_ node: Node, of name: String, at index: Int) throws(ConfigurationFileError) -> FieldReader {
        try FieldReader(node, file: file, path: "\(fieldPath(name))[\(index)]")
    }

    /// The fields present, in the document's order.
    var names: [String] { fields.map(\.name) }

    /// Refuses the first field no read asked for.
    func finish() throws(ConfigurationFileError) {
        if let unknown = fields.first(where: { !read.contains($0.name) }) {
            throw problem(unknown.name, "unknown field (no such field in kube-proxy's \(KubeProxyConfiguration.kind))")
        }
    }
}

extension Node {
    /// The node's resolved tag (`Tag.name` is not public).
    var tagName: Tag.Name { Tag.Name(rawValue: tag.rawValue) }

    /// What a node is, for error messages.
    var kindName: String {
        switch self {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            switch tagName {
            case .bool: return "the boolean \(scalar.string)"
            case .int, .float: return "the number \(scalar.string)"
            case .null: return "null"
            default: return "'\(scalar.string)'"
            }
        }
    }
}
