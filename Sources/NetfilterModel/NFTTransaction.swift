/// Changes to ipvs-proxy's tables that go to the kernel as one nftables transaction: all of them or none.
public struct NFTTransaction: Sendable, Hashable {
    /// One change.
    public enum Step: Sendable, Hashable {
        /// Replace the table (whatever is there) with `table` holding `elements`.
        case replace(NFTable, elements: [String: Set<SetElement>])
        /// Delete and add elements of the table's sets (deletions first).
        case changeElements(NFTable, deleting: [String: Set<SetElement>], adding: [String: Set<SetElement>])
        /// Delete the table.
        case delete(NFTable)
    }

    public var steps: [Step]

    public init(_ steps: [Step] = []) {
        self.steps = steps
    }

    public var isEmpty: Bool { steps.isEmpty }

    /// The transaction in nft's syntax, as libnftables takes it.
    public var text: String {
        steps.map { step in
            switch step {
            case .replace(let table, let elements): table.replacement(elements: elements)
            case .changeElements(let table, let deleting, let adding):
                table.elementChanges(deleting: deleting, adding: adding)
            case .delete(let table): table.deletion
            }
        }.joined()
    }

    /// How many set elements it adds and deletes.
    public var elementCounts: (added: Int, deleted: Int) {
        var added = 0
        var deleted = 0
        for step in steps {
            switch step {
            case .replace(_, let elements): added += elements.values.reduce(0) { $0 + $1.count }
            case .changeElements(_, let deleting, let adding):
                added += adding.values.reduce(0) { $0 + $1.count }
                deleted += deleting.values.reduce(0) { $0 + $1.count }
            case .delete: break
            }
        }
        return (added, deleted)
    }
}
