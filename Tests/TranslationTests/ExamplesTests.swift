import Foundation
import IPVSModel
import KubernetesModel
import ProxyRules
import Testing
import Translation

@Suite("The example manifests", .timeLimit(.minutes(2)))
struct ExamplesTests {
    @Test func loadAndTranslateToTheDemosTable() throws {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples").path
        let set = try ManifestLoader.load(paths: [examples])
        #expect(set.services.count == 5)
        let context = NodeContext(nodeName: "demo-node", nodeAddresses: [IPAddress("192.168.0.5")!])
        let state = try Translator.translate(set, node: context)
        // web, dns (UDP and TCP), checkout (cluster IP, node port), edge (cluster IP, ingress, node port); db is headless.
        #expect(state.virtualServers.count == 8)
        #expect(state.reals(tcp("10.96.10.10", 80)) == ["10.200.0.2:8080", "10.200.1.2:8080"])
        #expect(state.virtualServers[tcp("192.0.2.50", 80)]?.server.scheduler == .leastConnection)
        // checkout's only ready endpoint serves; the terminating one waits.
        #expect(state.reals(tcp("192.168.0.5", 30443)) == ["10.200.0.2:8443"])
        #expect(state.serviceAddresses.count == 5)
    }
}
