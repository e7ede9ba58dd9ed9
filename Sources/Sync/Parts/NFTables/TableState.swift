import IPVSModel
import NetfilterModel
import ProxyRules

extension NFTablesPart {
    /// The tables of one family as they are in the kernel.
    ///
    /// Two table states are equal when their skeletons and every set's ``ElementsDigest`` are: a set is found
    /// unchanged without comparing its elements, and a table kept in the ledger leaves each set's elements unread
    /// (as the lines of the file) until a plan needs them, because its digest differs from what is wanted.
    package struct TableState: Sendable, Hashable {
        /// The digest of the table's skeleton (``TableSkeleton/digest``).
        package var skeletonDigest: String
        /// A digest of each set's elements (sets without elements left out).
        package private(set) var digests: [String: ElementsDigest]
        /// Each set's elements: known, or the ledger's lines, one element a line.
        private var contents: [String: Contents]
        /// Elements a listing showed that ipvs-proxy cannot name: the table is rewritten.
        package var hasUnreadableElements = false

        private enum Contents: Sendable {
            case known(Set<SetElement>)
            case lines(Substring)
        }

        package init(skeletonDigest: String, elements: [String: Set<SetElement>]) {
            self.skeletonDigest = skeletonDigest
            let nonEmpty = elements.filter { !$0.value.isEmpty }
            digests = nonEmpty.mapValues(ElementsDigest.init)
            contents = nonEmpty.mapValues(Contents.known)
        }

        /// A table as the ledger kept it: per set, its digest and its elements' lines.
        init(skeletonDigest: String, keptSets: [String: (digest: ElementsDigest, lines: Substring)]) {
            self.skeletonDigest = skeletonDigest
            digests = keptSets.mapValues(\.digest)
            contents = keptSets.mapValues { Contents.lines($0.lines) }
        }

        /// The elements of one set.
        package func elements(of set: String) -> Set<SetElement> {
            switch contents[set] {
            case .known(let elements): elements
            case .lines(let lines): Set(lines.split(separator: "\n").map { SetElement(text: String($0)) })
            case nil: []
            }
        }

        /// The names of the sets that hold elements.
        package var setNames: [String] { digests.keys.sorted() }

        /// One set's elements as the ledger writes them, one a line.
        func lines(of set: String) -> Substring {
            switch contents[set] {
            case .known(let elements): Substring(elements.map(\.text).sorted().joined(separator: "\n"))
            case .lines(let lines): lines
            case nil: ""
            }
        }

        /// Deletes and adds elements of one set (the deleted ones present, the added ones not), keeping its digest.
        mutating func change(_ set: String, deleting: Set<SetElement>, adding: Set<SetElement>) {
            var elements = self.elements(of: set)
            contents[set] = nil
            elements.subtract(deleting)
            elements.formUnion(adding)
            var digest = digests[set] ?? .empty
            for element in deleting {
                digest.count -= 1
                digest.sum &-= ElementsDigest.hash(element.text)
            }
            for element in adding {
                digest.count += 1
                digest.sum &+= ElementsDigest.hash(element.text)
            }
            digests[set] = elements.isEmpty ? nil : digest
            contents[set] = elements.isEmpty ? nil : .known(elements)
        }

        package static func == (lhs: TableState, rhs: TableState) -> Bool {
            lhs.skeletonDigest == rhs.skeletonDigest && lhs.digests == rhs.digests
                && lhs.hasUnreadableElements == rhs.hasUnreadableElements
        }

        package func hash(into hasher: inout Hasher) {
            hasher.combine(skeletonDigest)
            hasher.combine(digests)
            hasher.combine(hasUnreadableElements)
        }
    }
}
