import Foundation
import Testing

@testable import KubernetesModel

/// A file recorded from a real kube-apiserver or kubectl (see Tests/Fixtures/recorded-api/README.md), unedited.
func recorded(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/recorded-api/\(name)").path
}

@Suite("Decoding what kubectl and the API server really print", .timeLimit(.minutes(2)))
struct RecordedAPITests {
    @Test func kubectlYAMLListHoldsEveryObject() throws {
        let set = try ManifestLoader.load(paths: [recorded("kubectl-get-all.yaml")])
        #expect(set.services.count == 10)
        #expect(set.endpointSlices.count == 10)
        #expect(set.endpoints.count == 1)
        #expect(set.warnings.isEmpty)

        let web = try #require(set.services.first { $0.object.metadata.name == "web" })
        #expect(web.object.metadata.namespace == "shop")
        #expect(web.object.spec.clusterIPs == ["10.105.23.164"])
        #expect(web.object.spec.ports?.first?.targetPort == .string("http"))
        #expect(web.object.spec.ports?.last?.targetPort == .int(9100))
        #expect(web.location.description.hasSuffix("kubectl-get-all.yaml: document 1, item 10 (Service shop/web)"))

        let edge = try #require(set.services.first { $0.object.metadata.name == "edge" }).object
        #expect(edge.spec.type == "LoadBalancer")
        #expect(edge.spec.ports?.first?.nodePort == 32276)
        #expect(edge.status?.loadBalancer?.ingress?.first?.ip == "192.0.2.30")
        #expect(edge.spec.loadBalancerSourceRanges == ["203.0.113.0/24"])

        let dns = try #require(set.services.first { $0.object.metadata.name == "dns" }).object
        #expect(dns.spec.sessionAffinity == "ClientIP")
        #expect(dns.spec.sessionAffinityConfig?.clientIP?.timeoutSeconds == 600)
        #expect(dns.spec.ports?.map(\.protocol) == ["UDP", "TCP"])

        let terminating = try #require(set.endpointSlices.first { $0.object.metadata.name == "web-q4m8z" }).object
        #expect(terminating.serviceName == "web")
        let conditions = try #require(terminating.endpoints?.first?.conditions)
        #expect(!conditions.isReady && conditions.isServing && conditions.isTerminating)

        let legacy = try #require(set.endpoints.first).object
        #expect(legacy.subsets?.first?.addresses?.map(\.ip) == ["172.16.5.10", "172.16.5.11"])
        #expect(legacy.subsets?.first?.notReadyAddresses?.map(\.ip) == ["172.16.5.12"])
    }

    @Test func kubectlJSONDecodesToTheSameObjectsAsItsYAML() throws {
        let yaml = try ManifestLoader.load(paths: [recorded("kubectl-get-all.yaml")])
        let json = try ManifestLoader.load(paths: [recorded("kubectl-get-all.json")])
        #expect(json.services.map(\.object) == yaml.services.map(\.object))
        #expect(json.endpointSlices.map(\.object) == yaml.endpointSlices.map(\.object))
        #expect(json.endpoints.map(\.object) == yaml.endpoints.map(\.object))
    }

    @Test func apiListsWithoutItemKindsTakeTheirKindFromTheList() throws {
        let services = try ManifestLoader.load(paths: [recorded("list-services.json")])
        #expect(services.services.count == 10)
        let compact = try ManifestLoader.load(paths: [recorded("list-services-compact.json")])
        #expect(compact.services.map(\.object) == services.services.map(\.object))
        let slices = try ManifestLoader.load(paths: [recorded("list-endpointslices.json")])
        #expect(slices.endpointSlices.count == 10)
        let endpoints = try ManifestLoader.load(paths: [recorded("list-endpoints.json")])
        #expect(endpoints.endpoints.map(\.object.metadata.name) == ["legacy-db"])
    }

    @Test func aStatusObjectIsNotAManifestObject() throws {
        // A 401 body is a Status: a kind the proxy ignores.
        #expect(try ManifestLoader.load(paths: [recorded("unauthorized-401.json")]).isEmpty)
    }
}
