import Synchronization

/// Collects values from closures that run on other threads (a fake's hook), for a test to look at.
public final class Recorder<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])

    public init() {}

    public func record(_ value: Value) {
        values.withLock { $0.append(value) }
    }

    public var recorded: [Value] { values.withLock { $0 } }
}
