import Foundation
import IPVSModel

/// Runs the `ipvs-proxy` executable against one test namespace with its own state folder.
struct ProxyRun {
    let namespace: TestNamespace
    let stateDirectory: String

    init(_ namespace: TestNamespace) throws {
        self.namespace = namespace
        stateDirectory = try temporaryFolder("state")
    }

    @discardableResult
    func callAsFunction(_ arguments: String...) throws -> CommandResult {
        try run(arguments)
    }

    @discardableResult
    func run(_ arguments: [String]) throws -> CommandResult {
        let command = arguments.first ?? ""
        var full = arguments
        if ["sync", "cleanup", "show", "run"].contains(command) {
            full += ["--netns", namespace.path, "--state-dir", stateDirectory]
        }
        return try IntegrationTests.run(Tools.ipvsProxy, full, allowFailure: true)
    }

    /// `sync --output json`, decoded.
    func syncJSON(_ arguments: [String]) throws -> (status: Int32, summary: [String: Any], result: CommandResult) {
        let result = try run(["sync"] + arguments + ["--output", "json"])
        let summary = (try? JSONSerialization.jsonObject(with: Data(result.output.utf8))) as? [String: Any] ?? [:]
        return (result.status, summary, result)
    }
}

extension Dictionary where Key == String, Value == Any {
    /// `summary["virtualServers", "added"]`.
    subscript(_ first: String, _ second: String) -> Int? {
        (self[first] as? [String: Any])?[second] as? Int
    }
}
