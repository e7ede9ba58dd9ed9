import IPVSModel
import KubernetesModel
import ProxyRules
import Testing
import Translation

@Suite("Translation at scale", .timeLimit(.minutes(2)))
struct ScaleTests {
    /// 10,000 Services with 10 endpoints each, as the benchmark's input: every one becomes one virtual server
    /// with its 10 real servers, and each cluster IP one service address.
    @Test func tenThousandServices() throws {
        var set = ManifestSet()
        let location = ObjectLocation(file: "generated.json", document: 1)
        for index in 0..<10_000 {
            let clusterIP = IPAddress(ipv4: 0x0A60_0000 + UInt32(index) + 1).description
            set.services.append(
                Located(
                    makeService(
                        "svc-\(index)", namespace: "bench", clusterIPs: [clusterIP],
                        ports: [ServicePort(name: "http", port: 80, targetPort: .int(8080))]), at: location))
            let endpoints = (0..<10).map {
                ready(IPAddress(ipv4: 0x0A80_0000 + UInt32(index) * 16 + UInt32($0) + 1).description)
            }
            set.endpointSlices.append(
                Located(
                    makeSlice("svc-\(index)-a", service: "svc-\(index)", namespace: "bench", endpoints: endpoints),
                    at: location))
        }
        let state = try Translator.translate(set, node: node)
        #expect(state.virtualServers.count == 10_000)
        #expect(state.realServerCount == 100_000)
        #expect(state.serviceAddresses.count == 10_000)
        #expect(state.virtualServers.values.allSatisfy { $0.realServers.count == 10 })
    }
}
