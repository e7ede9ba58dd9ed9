import CTestSupport
import Foundation
import IPVSModel
import Synchronization

/// `ipvs-proxy run` as a child process, against one test namespace with its own state folder.
///
/// Started through `test_spawn` (Tests/CTestSupport), not Foundation's `Process`, which can neither set a child's
/// resource limits nor take capabilities away from it.
final class Daemon: @unchecked Sendable {
    let process: SpawnedProcess
    let log: String
    let stateDirectory: String

    /// The daemon watching manifest files.
    /// - Parameters:
    ///   - descriptorLimit: the daemon's `RLIMIT_NOFILE` from its start (else the test process's).
    ///   - droppedCapabilities: capabilities (`CAP_x` numbers) the daemon lacks entirely, root as it is.
    convenience init(
        namespace: TestNamespace, manifests: String, arguments: [String] = [],
        descriptorLimit: (soft: Int, hard: Int)? = nil, droppedCapabilities: [Int32] = []
    ) throws {
        try self.init(
            namespace: namespace, source: ["-f", manifests], arguments: arguments, descriptorLimit: descriptorLimit,
            droppedCapabilities: droppedCapabilities)
    }

    /// The daemon watching the API server that a kubeconfig names.
    convenience init(namespace: TestNamespace, kubeconfig: String, arguments: [String] = []) throws {
        try self.init(namespace: namespace, source: ["--kubeconfig", kubeconfig], arguments: arguments)
    }

    private init(
        namespace: TestNamespace, source: [String], arguments: [String],
        descriptorLimit: (soft: Int, hard: Int)? = nil, droppedCapabilities: [Int32] = []
    ) throws {
        stateDirectory = try temporaryFolder("daemon-state")
        log = (try temporaryFolder("daemon-log") as NSString).appendingPathComponent("daemon.log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let arguments =
            ["run"] + source + [
                "--netns", namespace.path, "--state-dir", stateDirectory, "--node-name", "node-a",
                "--min-sync-period", "100ms", "--poll-interval", "50ms", "--healthz-bind-address", "",
                "--metrics-bind-address", "", "--log-level", "debug",
            ] + arguments
        process = try SpawnedProcess(
            Tools.ipvsProxy, arguments, output: log, descriptorLimit: descriptorLimit,
            droppedCapabilities: droppedCapabilities)
    }

    /// Sends a signal to the daemon.
    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Stops the daemon with SIGTERM and returns its exit status.
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning {
            signal(SIGTERM)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// A child process started by `test_spawn`, with the part of `Process`'s interface the tests use.
final class SpawnedProcess: Sendable {
    let processIdentifier: pid_t
    /// The status once the child has been waited for.
    private let status = Mutex<Int32?>(nil)

    /// Starts `path` with `arguments`, its standard output and error appended to the file `output`.
    init(
        _ path: String, _ arguments: [String], output: String, descriptorLimit: (soft: Int, hard: Int)? = nil,
        droppedCapabilities: [Int32] = []
    ) throws {
        let mask = droppedCapabilities.reduce(UInt64(0)) { $0 | (1 << UInt64($1)) }
        var argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let pid = argv.withUnsafeMutableBufferPointer { buffer in
            test_spawn(path, buffer.baseAddress, output, descriptorLimit?.soft ?? 0, descriptorLimit?.hard ?? 0, mask)
        }
        guard pid > 0 else { throw NamespaceError(operation: "start \(path)", code: -pid) }
        processIdentifier = pid
    }

    var isRunning: Bool { reap(blocking: false) == nil }

    /// The exit status, or 128 plus the signal that ended it; -1 while it runs.
    var terminationStatus: Int32 { reap(blocking: false) ?? -1 }

    func waitUntilExit() { _ = reap(blocking: true) }

    /// Waits under the lock: a child can be waited for only once, and whoever comes second must get its status.
    private func reap(blocking: Bool) -> Int32? {
        status.withLock { status in
            if let status { return status }
            let result = test_wait(processIdentifier, blocking ? 1 : 0)
            guard result >= 0 else { return nil }
            status = result
            return result
        }
    }
}
