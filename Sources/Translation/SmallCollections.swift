/// A few keys with their values in an array. A Service's share of the desired state has one virtual server to a
/// few dozen, and at 10,000 Services a dictionary each costs several times the memory of an array.
struct SmallMap<Key: Hashable & Sendable, Value: Sendable>: Sendable, Sequence {
    private var entries: [(key: Key, value: Value)] = []

    var keys: [Key] { entries.map(\.key) }
    var isEmpty: Bool { entries.isEmpty }

    subscript(key: Key) -> Value? {
        get { entries.first { $0.key == key }?.value }
        set {
            let index = entries.firstIndex { $0.key == key }
            switch (index, newValue) {
            case (let index?, let value?): entries[index].value = value
            case (let index?, nil): entries.remove(at: index)
            case (nil, let value?): entries.append((key, value))
            case (nil, nil): break
            }
        }
    }

    func makeIterator() -> IndexingIterator<[(key: Key, value: Value)]> { entries.makeIterator() }
}

extension SmallMap: Equatable where Value: Equatable {
    /// The same keys with the same values, in any order.
    static func == (lhs: SmallMap, rhs: SmallMap) -> Bool {
        lhs.entries.count == rhs.entries.count && lhs.entries.allSatisfy { rhs[$0.key] == $0.value }
    }
}

/// A few distinct elements in an array (see ``SmallMap``).
struct SmallSet<Element: Hashable & Sendable>: Sendable, Sequence {
    private var elements: [Element] = []

    mutating func insert(_ element: Element) {
        if !elements.contains(element) { elements.append(element) }
    }

    func contains(_ element: Element) -> Bool { elements.contains(element) }

    /// The elements not in `other`.
    func subtracting(_ other: SmallSet) -> [Element] { elements.filter { !other.contains($0) } }

    func makeIterator() -> IndexingIterator<[Element]> { elements.makeIterator() }
}

extension SmallSet: Equatable {
    /// The same elements, in any order.
    static func == (lhs: SmallSet, rhs: SmallSet) -> Bool {
        lhs.elements.count == rhs.elements.count && lhs.elements.allSatisfy(rhs.contains)
    }
}
