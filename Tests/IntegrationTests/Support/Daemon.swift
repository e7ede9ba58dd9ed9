import Foundation
import IPVSModel

/// `ipvs-proxy run` as a child process, against one test namespace with its own state folder.
final class Daemon: @unchecked Sendable {
    let process = Process()
    let log: String
    let stateDirectory: String

    convenience init(namespace: TestNamespace, manifests: String, arguments: [String] = []) throws {
        try self.init(namespace: namespace, source: ["-f", manifests], arguments: arguments)
    }

    /// The daemon watching the API server that a kubeconfig names.
    convenience init(namespace: TestNamespace, kubeconfig: String, arguments: [String] = []) throws {
        try self.init(namespace: namespace, source: ["--kubeconfig", kubeconfig], arguments: arguments)
    }

    private init(namespace: TestNamespace, source: [String], arguments: [String]) throws {
        stateDirectory = try temporaryFolder("daemon-state")
        log = (try temporaryFolder("daemon-log") as NSString).appendingPathComponent("daemon.log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.executableURL = URL(fileURLWithPath: Tools.ipvsProxy)
        process.arguments =
            ["run"] + source + [
                "--netns", namespace.path, "--state-dir", stateDirectory, "--node-name", "node-a",
                "--min-sync-period", "100ms", "--poll-interval", "50ms", "--healthz-bind-address", "",
                "--metrics-bind-address", "", "--log-level", "debug",
            ] + arguments
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = output
        process.standardError = output
        try process.run()
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
