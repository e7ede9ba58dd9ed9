import Foundation
import Synchronization

/// Runs work on a thread of its own while the caller goes on; ``result()`` waits for it.
///
/// For blocking kernel work that overlaps other work (binding addresses during the IPVS batch, reading the
/// table while the input is parsed), outside Swift's cooperative thread pool.
package final class Concurrently<Value: Sendable>: Sendable {
    private let finished = DispatchSemaphore(value: 0)
    private let outcome = Mutex<Result<Value, any Error>?>(nil)

    package init(_ work: @escaping @Sendable () throws -> Value) {
        let thread = Thread { [self] in
            let result = Result { try work() }
            outcome.withLock { $0 = result }
            finished.signal()
        }
        thread.start()
    }

    /// Waits for the work to finish, and returns its value or throws its error.
    package func result() throws -> Value {
        finished.wait()
        // Let a later call return at once too.
        finished.signal()
        return try outcome.withLock { $0! }.get()
    }
}
