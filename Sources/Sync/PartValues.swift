/// One value for each part, of a type that part alone knows (its state, its changes, its report), found by the
/// part's type: the engine holds its parts as `any KernelPart`, and each step opens one to reach its own values.
struct PartValues: Sendable {
    private var values: [ObjectIdentifier: any Sendable] = [:]

    init() {}

    /// The value of `part`, if there is one.
    func get<Part: KernelPart, Value: Sendable>(_ part: Part.Type, as type: Value.Type = Value.self) -> Value? {
        values[ObjectIdentifier(part)] as? Value
    }

    mutating func set<Part: KernelPart, Value: Sendable>(_ value: Value?, for part: Part.Type) {
        values[ObjectIdentifier(part)] = value
    }

    /// Changes the value of `part` in place (`initial` when there is none). It is taken out while `body` runs, so
    /// that a large value (a table of 10,000 virtual servers) is changed where it is, not copied.
    mutating func modify<Part: KernelPart, Value: Sendable, Result>(
        _ part: Part.Type, initial: @autoclosure () -> Value, _ body: (inout Value) throws -> Result
    ) rethrows -> Result {
        let key = ObjectIdentifier(part)
        var value = (values.removeValue(forKey: key) as? Value) ?? initial()
        defer { values[key] = value }
        return try body(&value)
    }
}
