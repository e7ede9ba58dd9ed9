import CNetlink
import Synchronization

/// One of the shim's handles (a netlink socket, a libnftables context) and the lock that serializes its use: the C
/// side is not thread-safe. Opened at init, closed at deinit; its calls' negative codes become `Failure`s.
///
/// The kernel modules' handles (`IPVSHandle`, `InterfaceHandle`, `ConntrackHandle`, ...) are each one or two of
/// these with typed calls around them.
package final class ShimHandle<Failure: ShimCallError>: Sendable {
    // The shim's handle is not thread-safe: it is used only with `lock` held.
    private nonisolated(unsafe) let pointer: OpaquePointer
    private let lock = Mutex(())
    private let close: @Sendable (OpaquePointer) -> Void
    private let dumps = DumpRereader()

    /// Opens a handle.
    /// - Parameters:
    ///   - operation: What opening is called in an error (`open IPVS netlink socket`); ` in network namespace
    ///     PATH` follows when `networkNamespacePath` is given.
    ///   - open: Calls the shim's open function with the place for its pointer; returns the shim's code.
    ///   - close: The shim's close function.
    package init(
        _ operation: String, networkNamespacePath: String? = nil,
        open: (UnsafeMutablePointer<OpaquePointer?>) -> Int32, close: @escaping @Sendable (OpaquePointer) -> Void
    ) throws(Failure) {
        var pointer: OpaquePointer?
        let code = open(&pointer)
        guard code == 0, let pointer else {
            let place = networkNamespacePath.map { " in network namespace \($0)" } ?? ""
            throw Failure(operation: operation + place, ShimError(rawValue: code))
        }
        self.pointer = pointer
        self.close = close
    }

    deinit {
        close(pointer)
    }

    /// Runs `body` with the shim's pointer, the lock held.
    package func withHandle<Result, E: Error>(_ body: (OpaquePointer) throws(E) -> Result) throws(E) -> Result {
        try lock.withLock { _ throws(E) in try body(pointer) }
    }

    /// Makes one shim call, the lock held.
    /// - Returns: The call's result (0 or a count).
    /// - Throws: `Failure` for `operation` when the shim returned a negative code.
    @discardableResult
    package func call(_ operation: @autoclosure () -> String, _ body: (OpaquePointer) -> Int32) throws(Failure) -> Int32
    {
        try Failure.check(withHandle(body), operation())
    }

    // MARK: - Dumps

    /// How many of this handle's dumps the kernel marked interrupted (each was read again from the start, up to
    /// ``DumpRereader/attempts`` times in a row).
    package var interruptedDumps: Int { dumps.interruptedDumps }

    /// Reads a dump whole, the lock held, again from scratch while the kernel marks it interrupted.
    /// - Parameters:
    ///   - initial: What an attempt starts gathering into.
    ///   - dump: Calls the shim's dump with the pointer and the place it gathers into (the visitor's context).
    /// - Throws: `Failure` for `operation` when the dump failed, or stayed interrupted through every attempt.
    package func dump<Gathered>(
        _ operation: @autoclosure () -> String, startingWith initial: @autoclosure () -> Gathered,
        _ dump: (OpaquePointer, UnsafeMutablePointer<Gathered>) -> Int32
    ) throws(Failure) -> Gathered {
        try withHandle { pointer throws(Failure) in
            try self.dump(on: pointer, operation(), startingWith: initial(), dump)
        }
    }

    /// ``dump(_:startingWith:_:)`` inside ``withHandle(_:)``, with the pointer it gave: for several dumps under
    /// one hold of the lock.
    package func dump<Gathered>(
        on pointer: OpaquePointer, _ operation: @autoclosure () -> String,
        startingWith initial: @autoclosure () -> Gathered,
        _ dump: (OpaquePointer, UnsafeMutablePointer<Gathered>) -> Int32
    ) throws(Failure) -> Gathered {
        let (code, gathered) = dumps.gather(startingWith: initial()) { dump(pointer, $0) }
        try Failure.check(code, operation())
        return gathered
    }

    // MARK: - Batches

    /// Sends `items` as one batch, the lock held throughout: `begin`, `append` for each item, `commit`. The kernel
    /// answers only the messages it refused; the commit hands them to a visitor, gathered here.
    /// - Returns: The refused items: each one's index in `items` and what the shim said.
    /// - Throws: `Failure` for `operation` when the batch could not be sent or its outcome is unknown (any part
    ///   of it may have been applied).
    package func batch<Item>(
        _ operation: @autoclosure () -> String, _ items: [Item], begin: (OpaquePointer) -> Int32,
        append: (OpaquePointer, Item) -> Int32,
        commit: (OpaquePointer, cnetlink_failure_visitor, UnsafeMutableRawPointer) -> Int32
    ) throws(Failure) -> [ShimRefusal] {
        let (code, refusals) = withHandle { pointer -> (Int32, [ShimRefusal]) in
            let begun = begin(pointer)
            guard begun == 0 else { return (begun, []) }
            for item in items {
                let appended = append(pointer, item)
                guard appended == 0 else { return (appended, []) }
            }
            return ShimRefusal.collecting { commit(pointer, $0, $1) }
        }
        try Failure.check(code, operation())
        return refusals
    }
}
