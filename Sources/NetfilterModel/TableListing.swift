import Foundation

/// A table as libnftables lists it in JSON (`list table ip NAME`): its skeleton and its sets' elements.
public struct TableListing: Sendable, Hashable {
    public var skeleton: TableSkeleton
    public var elements: [String: Set<SetElement>]
    /// How many elements could not be read as ipvs-proxy writes them (ranges it never adds, for one): their
    /// sets need rewriting.
    public var unreadableElements: [String: Int]

    public init(skeleton: TableSkeleton, elements: [String: Set<SetElement>], unreadableElements: [String: Int] = [:]) {
        self.skeleton = skeleton
        self.elements = elements
        self.unreadableElements = unreadableElements
    }

    /// A listing that is not JSON of the shape libnftables writes.
    public struct Malformed: Error, Sendable, CustomStringConvertible {
        public var reason: String
        public var description: String { "an nftables listing could not be read: \(reason)" }
    }

    /// Reads the objects of table `table` of `family` from libnftables' JSON output; objects of other tables
    /// are ignored.
    public init(json: String, family: NFTFamily, table: String) throws(Malformed) {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: Data(json.utf8))
        } catch {
            throw Malformed(reason: "not JSON (\(error))")
        }
        guard let objects = (root as? [String: Any])?["nftables"] as? [Any] else {
            throw Malformed(reason: "no \"nftables\" array")
        }
        var sets: [String: TableSkeleton.SetShape] = [:]
        var chains: [String: TableSkeleton.ChainShape] = [:]
        var elements: [String: Set<SetElement>] = [:]
        var unreadable: [String: Int] = [:]
        var ruleComments: [(chain: String, comment: String)] = []
        for case let object as [String: Any] in objects {
            let (kind, body) = (object.keys.first ?? "", object.values.first as? [String: Any] ?? [:])
            guard body["family"] as? String == family.rawValue, (body["table"] as? String) == table else { continue }
            switch kind {
            case "set":
                guard let name = body["name"] as? String else { throw Malformed(reason: "a set without a name") }
                let typeNames = (body["type"] as? [String]) ?? [(body["type"] as? String) ?? ""]
                let fields = typeNames.compactMap(NFTDataType.init(rawValue:))
                let isInterval = (body["flags"] as? [String])?.contains("interval") ?? false
                // A set of another type keeps no fields, so its shape differs from any ipvs-proxy makes.
                sets[name] = .init(fields: fields.count == typeNames.count ? fields : [], isInterval: isInterval)
                var members = Set<SetElement>()
                for value in body["elem"] as? [Any] ?? [] {
                    if let element = SetElement(json: value, fields: fields) {
                        members.insert(element)
                    } else {
                        unreadable[name, default: 0] += 1
                    }
                }
                elements[name] = members
            case "chain":
                guard let name = body["name"] as? String else { throw Malformed(reason: "a chain without a name") }
                var hook: NFTHook?
                if let type = body["type"] as? String, let hookName = body["hook"] as? String,
                    let priority = body["prio"] as? Int
                {
                    // A base chain whose policy is not accept is not one ipvs-proxy made.
                    hook =
                        (body["policy"] as? String ?? "accept") == "accept"
                        ? NFTHook(type: type, hook: hookName, priority: priority)
                        : NFTHook(type: type, hook: hookName + " (policy \(body["policy"] ?? ""))", priority: priority)
                }
                chains[name] = .init(hook: hook, ruleComments: [])
            case "rule":
                guard let chain = body["chain"] as? String else { throw Malformed(reason: "a rule without a chain") }
                ruleComments.append((chain, body["comment"] as? String ?? ""))
            default:
                continue
            }
        }
        for (chain, comment) in ruleComments { chains[chain]?.ruleComments.append(comment) }
        self.init(
            skeleton: TableSkeleton(sets: sets, chains: chains), elements: elements, unreadableElements: unreadable)
    }
}

/// A base chain of some table, as `list chains` shows it.
public struct ListedChain: Sendable, Hashable, CustomStringConvertible {
    public var family: String
    public var table: String
    public var name: String
    public var hook: String
    public var policy: String

    public var description: String { "table \(family) \(table), chain \(name) (hook \(hook), policy \(policy))" }

    /// The base chains in libnftables' JSON listing of chains (`list chains`).
    public static func baseChains(json: String) throws(TableListing.Malformed) -> [ListedChain] {
        try objects(json, kind: "chain").compactMap { body in
            guard let family = body["family"] as? String, let table = body["table"] as? String,
                let name = body["name"] as? String, let hook = body["hook"] as? String
            else { return nil }
            return ListedChain(
                family: family, table: table, name: name, hook: hook, policy: body["policy"] as? String ?? "accept")
        }
    }
}

extension TableListing {
    /// The names of the tables of a family in libnftables' JSON listing of tables (`list tables ip`).
    public static func tableNames(json: String, family: NFTFamily) throws(Malformed) -> Set<String> {
        Set(
            try objects(json, kind: "table").compactMap { body in
                body["family"] as? String == family.rawValue ? body["name"] as? String : nil
            })
    }
}

/// The bodies of the objects of one kind (`table`, `chain`, ...) in libnftables' JSON output.
func objects(_ json: String, kind: String) throws(TableListing.Malformed) -> [[String: Any]] {
    let root: Any
    do {
        root = try JSONSerialization.jsonObject(with: Data(json.utf8))
    } catch {
        throw TableListing.Malformed(reason: "not JSON (\(error))")
    }
    guard let list = (root as? [String: Any])?["nftables"] as? [Any] else {
        throw TableListing.Malformed(reason: "no \"nftables\" array")
    }
    return list.compactMap { ($0 as? [String: Any])?[kind] as? [String: Any] }
}
