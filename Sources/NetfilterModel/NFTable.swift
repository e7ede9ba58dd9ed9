/// An nftables family of the tables ipvs-proxy owns.
public enum NFTFamily: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case ip
    case ip6

    public var description: String { rawValue }
}

/// A named set of an nftables table, declared without its elements.
public struct NFTSet: Sendable, Hashable {
    public var name: String
    /// The types of its key's fields (more than one: a concatenation).
    public var fields: [NFTDataType]
    /// Whether its elements may be networks (`flags interval`).
    public var isInterval: Bool
    public var comment: String

    public init(name: String, fields: [NFTDataType], isInterval: Bool = false, comment: String) {
        self.name = name
        self.fields = fields
        self.isInterval = isInterval
        self.comment = comment
    }

    var declaration: String {
        var text = "\tset \(name) {\n\t\ttype \(fields.map(\.rawValue).joined(separator: " . "))\n"
        if isInterval { text += "\t\tflags interval\n" }
        text += "\t\tcomment \(quoted(comment))\n\t}\n"
        return text
    }
}

/// A rule, with what it is for.
public struct NFTRule: Sendable, Hashable {
    /// The rule's statements in nft syntax.
    public var statements: String
    /// What the rule is for, in a few words.
    public var purpose: String

    public init(_ statements: String, purpose: String) {
        self.statements = statements
        self.purpose = purpose
    }

    /// The rule's comment: its purpose and a digest of its statements, so that a listing shows whether each rule
    /// is still the one ipvs-proxy wrote (nft may print a rule other than as it was written, but keeps its
    /// comment as is).
    public var comment: String { "\(purpose) [\(Digest.fnv1a32(statements))]" }
}

/// How a base chain hooks into the kernel.
public struct NFTHook: Sendable, Hashable {
    /// `nat` or `filter`.
    public var type: String
    /// `prerouting`, `input`, `forward`, `output` or `postrouting`.
    public var hook: String
    public var priority: Int

    public init(type: String, hook: String, priority: Int) {
        self.type = type
        self.hook = hook
        self.priority = priority
    }
}

/// A chain: a base chain on a hook (policy accept), or a regular chain that rules jump to.
public struct NFTChain: Sendable, Hashable {
    public var name: String
    public var hook: NFTHook?
    public var rules: [NFTRule]

    public init(name: String, hook: NFTHook? = nil, rules: [NFTRule]) {
        self.name = name
        self.hook = hook
        self.rules = rules
    }

    var declaration: String {
        var text = "\tchain \(name) {\n"
        if let hook {
            text += "\t\ttype \(hook.type) hook \(hook.hook) priority \(hook.priority); policy accept;\n"
        }
        for rule in rules { text += "\t\t\(rule.statements) comment \(quoted(rule.comment))\n" }
        return text + "\t}\n"
    }
}

/// A table as ipvs-proxy makes it: sets (filled separately) and chains.
public struct NFTable: Sendable, Hashable {
    public var family: NFTFamily
    public var name: String
    public var comment: String
    public var sets: [NFTSet]
    public var chains: [NFTChain]

    public init(family: NFTFamily, name: String, comment: String, sets: [NFTSet], chains: [NFTChain]) {
        self.family = family
        self.name = name
        self.comment = comment
        self.sets = sets
        self.chains = chains
    }

    /// `ip ipvs-proxy`: how nft names the table in commands.
    public var qualifiedName: String { "\(family) \(name)" }

    /// What a listing of the table must show, apart from set elements, for the table to be as ipvs-proxy makes
    /// it.
    public var skeleton: TableSkeleton {
        TableSkeleton(
            sets: Dictionary(
                uniqueKeysWithValues: sets.map { ($0.name, .init(fields: $0.fields, isInterval: $0.isInterval)) }),
            chains: Dictionary(
                uniqueKeysWithValues: chains.map {
                    ($0.name, .init(hook: $0.hook, ruleComments: $0.rules.map(\.comment)))
                }
            ))
    }

    /// Commands that replace whatever table of this name there is with this one, holding `elements`, in one
    /// transaction (`add table` first, so that `delete table` always finds one).
    public func replacement(elements: [String: Set<SetElement>]) -> String {
        var text = "add table \(qualifiedName)\ndelete table \(qualifiedName)\n"
        text += "table \(qualifiedName) {\n\tcomment \(quoted(comment))\n"
        for set in sets { text += set.declaration }
        for chain in chains { text += chain.declaration }
        text += "}\n"
        for set in sets {
            if let members = elements[set.name], !members.isEmpty {
                text += elementCommand("add", set: set.name, members.sorted())
            }
        }
        return text
    }

    /// Commands that delete and add elements (deletions first), or an empty string when there are none.
    public func elementChanges(deleting: [String: Set<SetElement>], adding: [String: Set<SetElement>]) -> String {
        var text = ""
        for set in sets {
            if let members = deleting[set.name], !members.isEmpty {
                text += elementCommand("delete", set: set.name, members.sorted())
            }
        }
        for set in sets {
            if let members = adding[set.name], !members.isEmpty {
                text += elementCommand("add", set: set.name, members.sorted())
            }
        }
        return text
    }

    /// The command that deletes this table.
    public var deletion: String { "delete table \(qualifiedName)\n" }

    private func elementCommand(_ verb: String, set: String, _ members: [SetElement]) -> String {
        "\(verb) element \(qualifiedName) \(set) { \(members.map(\.text).joined(separator: ", ")) }\n"
    }
}

/// The shape of a table apart from its set elements: each set's type, each chain's hook and the comments of
/// its rules, in order.
public struct TableSkeleton: Sendable, Hashable {
    public struct SetShape: Sendable, Hashable {
        public var fields: [NFTDataType]
        public var isInterval: Bool
    }

    public struct ChainShape: Sendable, Hashable {
        public var hook: NFTHook?
        public var ruleComments: [String]
    }

    public var sets: [String: SetShape]
    public var chains: [String: ChainShape]
}

/// nft's quoting of a string (comments hold no quotes of their own).
func quoted(_ text: String) -> String { "\"\(text)\"" }

/// Short stable digests.
public enum Digest {
    /// The 32-bit FNV-1a hash of `text`'s UTF-8 bytes, as 8 hexadecimal digits.
    public static func fnv1a32(_ text: String) -> String {
        var hash: UInt32 = 0x811C_9DC5
        for byte in text.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 0x0100_0193
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex
    }
}

extension TableSkeleton {
    /// A digest of the skeleton, to remember it by: the same for the same sets, chains, hooks and rules.
    public var digest: String {
        var lines: [String] = []
        for (name, shape) in sets.sorted(by: { $0.key < $1.key }) {
            lines.append("set \(name) \(shape.fields.map(\.rawValue).joined(separator: ".")) \(shape.isInterval)")
        }
        for (name, shape) in chains.sorted(by: { $0.key < $1.key }) {
            let hook = shape.hook.map { "\($0.type) \($0.hook) \($0.priority)" } ?? "regular"
            lines.append("chain \(name) \(hook)")
            lines += shape.ruleComments.map { "rule \($0)" }
        }
        return Digest.fnv1a64(lines.joined(separator: "\n"))
    }
}

extension Digest {
    /// The 64-bit FNV-1a hash of `text`'s UTF-8 bytes, as 16 hexadecimal digits.
    public static func fnv1a64(_ text: String) -> String {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
