import CTestSupport
import Foundation
import IPVS
import IPVSModel
import Interfaces
import KernelAccess
import Netfilter
import Sync
import Synchronization

/// A fresh network namespace for one test: IPVS tables are per namespace, so every test starts from an
/// empty table and cannot disturb another.
///
/// Made in-process and held by a file descriptor, not with `ip netns add`: concurrent `ip netns add`
/// calls race on the first mount of /run/netns, which cost tests their namespaces.
final class TestNamespace: @unchecked Sendable {
    let label: String
    private let descriptor: Int32

    /// A path any process can open to reach the namespace (a `--netns` value for ipvs-proxy).
    var path: String { "/proc/\(getpid())/fd/\(descriptor)" }

    init(_ label: String = "test") throws {
        self.label = label
        let descriptor = test_netns_create()
        guard descriptor >= 0 else { throw NamespaceError(operation: "create a network namespace", code: -descriptor) }
        self.descriptor = descriptor
        // Until the namespace has a routing table, the kernel classifies every IPv4 real server as
        // broadcast and refuses it (EINVAL): bringing lo (always link 1) up creates one.
        try interfaces().setLinkUp(index: 1)
    }

    deinit {
        close(descriptor)
    }

    func ipvs() throws -> IPVSHandle { try IPVSHandle(networkNamespacePath: path) }
    func interfaces() throws -> InterfaceHandle { try InterfaceHandle(networkNamespacePath: path) }
    func nftables() throws -> NFTablesHandle { try NFTablesHandle(networkNamespacePath: path) }
    func conntrack() throws -> ConntrackHandle { try ConntrackHandle(networkNamespacePath: path) }
    /// The nftables handle as the sync engine sees it.
    func syncerConnection() throws -> any NFTablesConnection { try nftables() }

    /// The namespace's whole nftables ruleset as `nft -a list ruleset` prints it (handles included).
    func ruleset() throws -> String { try exec(Tools.nft, ["-a", "list", "ruleset"]).output }

    /// Runs a program inside the namespace.
    @discardableResult
    func exec(_ program: String, _ arguments: [String], allowFailure: Bool = false) throws -> CommandResult {
        try run("/bin/busybox", ["nsenter", "--net=\(path)", "--", program] + arguments, allowFailure: allowFailure)
    }

    /// Runs `ip` inside the namespace.
    @discardableResult
    func ip(_ arguments: String...) throws -> CommandResult { try exec(Tools.ip, arguments) }

    /// The kernel's table as `ipvsadm -Sn` saves it, one rule per line, sorted: an independent reading
    /// to compare the code under test against.
    func ipvsadmRules() throws -> [String] {
        try exec(Tools.ipvsadm, ["-Sn"]).output.split(separator: "\n").map(String.init).sorted()
    }

    /// Runs `body` on a thread of its own that has entered this namespace, and waits for it.
    func perform<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) throws -> Result {
        let done = DispatchSemaphore(value: 0)
        let outcome = LockedBox<Swift.Result<Result, any Error>?>(nil)
        let descriptor = descriptor
        let thread = Thread {
            let entered = test_netns_enter(descriptor)
            if entered != 0 {
                outcome.value = .failure(NamespaceError(operation: "enter a network namespace", code: -entered))
            } else {
                outcome.value = Swift.Result { try body() }
            }
            done.signal()
        }
        thread.start()
        done.wait()
        return try outcome.value!.get()
    }

    /// Starts a thread that stays inside this namespace and runs `body` until it returns.
    func detach(_ body: @escaping @Sendable () -> Void) {
        let descriptor = descriptor
        let thread = Thread {
            guard test_netns_enter(descriptor) == 0 else { return }
            body()
        }
        thread.start()
    }
}

struct NamespaceError: Error, CustomStringConvertible {
    var operation: String
    var code: Int32
    var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// A value shared between threads under a lock.
final class LockedBox<Value: Sendable>: Sendable {
    private let stored: Mutex<Value>

    init(_ value: Value) { stored = Mutex(value) }

    var value: Value {
        get { stored.withLock { $0 } }
        set { stored.withLock { $0 = newValue } }
    }
}
