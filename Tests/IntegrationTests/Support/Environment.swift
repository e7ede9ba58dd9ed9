import Foundation
import Sync
import Testing

/// Integration tests need a kernel with IPVS and root; `scripts/vm-test` provides both in a VM and sets
/// `IPVS_PROXY_INTEGRATION=1`. Without it they are skipped, so `swift test` on a host runs unit tests only.
/// With it and no IPVS, they fail.
let integrationEnabled = ProcessInfo.processInfo.environment["IPVS_PROXY_INTEGRATION"] == "1"

extension Trait where Self == ConditionTrait {
    /// Runs the test only inside the VM harness.
    static var needsKernelIPVS: Self {
        .enabled(if: integrationEnabled, "needs kernel IPVS: run scripts/vm-test (sets IPVS_PROXY_INTEGRATION=1)")
    }
}

/// The result of a command run for a test.
struct CommandResult {
    var status: Int32
    var output: String
    var error: String
}

/// Runs a program and waits for it. Tests use iproute2 and ipvsadm only to set up and to cross-check the
/// kernel's state independently of the code under test.
@discardableResult
func run(_ path: String, _ arguments: [String], allowFailure: Bool = false) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    let error = Pipe()
    process.standardOutput = output
    process.standardError = error
    try process.run()
    // Both pipes are read at once, and before waiting: a child that fills one pipe while the other is being read
    // (or while nothing is read) would never finish.
    let errorReader = error.fileHandleForReading
    let errorData = Concurrently { errorReader.readDataToEndOfFile() }
    let outputData = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let result = CommandResult(
        status: process.terminationStatus, output: String(decoding: outputData, as: UTF8.self),
        error: String(decoding: try errorData.result(), as: UTF8.self))
    if !allowFailure && result.status != 0 {
        throw CommandFailure(command: ([path] + arguments).joined(separator: " "), result: result)
    }
    return result
}

struct CommandFailure: Error, CustomStringConvertible {
    var command: String
    var result: CommandResult
    var description: String { "`\(command)` exited with \(result.status): \(result.error)\(result.output)" }
}

enum Tools {
    static let ip = "/usr/sbin/ip"
    static let ipvsadm = "/usr/sbin/ipvsadm"
    static let nft = "/usr/sbin/nft"
    static let conntrack = "/usr/sbin/conntrack"

    /// The `ipvs-proxy` executable built beside the test bundle.
    static var ipvsProxy: String {
        if let path = ProcessInfo.processInfo.environment["IPVS_PROXY_BINARY"] { return path }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        return bundle.deletingLastPathComponent().appendingPathComponent("ipvs-proxy").path
    }
}

/// Polls `probe` every `interval` seconds until it returns a value or `timeoutSeconds` pass.
func eventually<Value>(
    timeoutSeconds: Double, every interval: Double = 0.1, _ probe: () throws -> Value?
) rethrows -> Value? {
    let deadline = Date().addingTimeInterval(timeoutSeconds)
    while true {
        if let value = try probe() { return value }
        if Date() > deadline { return nil }
        Thread.sleep(forTimeInterval: interval)
    }
}

/// The root of the package (the tests run from the same paths in the VM).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// A file recorded from a real kube-apiserver or kubectl, unedited.
func recorded(_ name: String) -> String {
    packageRoot.appendingPathComponent("Tests/Fixtures/recorded-api/\(name)").path
}

/// A fresh folder for one test's files.
func temporaryFolder(_ label: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Writes `content` into `folder/name` and returns the path.
@discardableResult
func write(_ content: String, to folder: String, as name: String) throws -> String {
    let path = (folder as NSString).appendingPathComponent(name)
    try Data(content.utf8).write(to: URL(fileURLWithPath: path))
    return path
}
