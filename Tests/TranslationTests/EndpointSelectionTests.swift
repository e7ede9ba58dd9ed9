import Foundation
import IPVSModel
import KubernetesModel
import ProxyRules
import Testing
import Translation

/// Which endpoints become real servers, case by case, as kube-proxy selects them (pkg/proxy/topology.go and the
/// IPVS proxier's syncEndpoint, Kubernetes 1.34).
@Suite("Endpoint selection", .timeLimit(.minutes(2)))
struct EndpointSelectionTests {
    private func context(zone: String?) -> NodeContext {
        var context = node
        context.zone = zone
        return context
    }

    private func reals(
        _ endpoints: [Endpoint], service: Service = makeService("web"), zone: String? = "zone-a",
        key: VirtualServerKey = tcp("10.96.0.10", 80)
    ) throws -> [String]? {
        let slice = makeSlice("web-1", service: service.metadata.name!, endpoints: endpoints)
        return try translate(manifest(services: [service], slices: [slice]), node: context(zone: zone)).reals(key)
    }

    @Test func zoneHintsForTheNodesZoneKeepTrafficInTheZone() throws {
        let endpoints = [
            hinted("10.244.1.5", zones: ["zone-a"]), hinted("10.244.2.6", zones: ["zone-b"]),
            hinted("10.244.3.7", zones: ["zone-a", "zone-c"]),
        ]
        #expect(try reals(endpoints) == ["10.244.1.5:8080", "10.244.3.7:8080"])
        #expect(try reals(endpoints, zone: "zone-b") == ["10.244.2.6:8080"])
    }

    @Test func hintsAreIgnoredWhenOneReadyEndpointHasNone() throws {
        let endpoints = [hinted("10.244.1.5", zones: ["zone-a"]), ready("10.244.2.6")]
        #expect(try reals(endpoints) == ["10.244.1.5:8080", "10.244.2.6:8080"])
        // A not-ready endpoint without hints does not count.
        #expect(try reals([hinted("10.244.1.5", zones: ["zone-a"]), notReady("10.244.2.6")]) == ["10.244.1.5:8080"])
    }

    @Test func hintsForNoEndpointInTheZoneOrAnUnknownZoneFallBackToAll() throws {
        let endpoints = [hinted("10.244.1.5", zones: ["zone-b"]), hinted("10.244.2.6", zones: ["zone-c"])]
        #expect(try reals(endpoints) == ["10.244.1.5:8080", "10.244.2.6:8080"])
        #expect(
            try reals([hinted("10.244.1.5", zones: ["zone-a"]), hinted("10.244.2.6", zones: ["zone-b"])], zone: nil)
                == ["10.244.1.5:8080", "10.244.2.6:8080"])
    }

    @Test func nodeHintsWinOverZoneHintsWhenOneNamesThisNode() throws {
        let endpoints = [
            hinted("10.244.1.5", zones: ["zone-a"], nodes: ["node-a"]),
            hinted("10.244.1.6", zones: ["zone-a"], nodes: ["node-c"]),
        ]
        #expect(try reals(endpoints) == ["10.244.1.5:8080"])
        // No endpoint for this node: zone hints decide.
        let elsewhere = [
            hinted("10.244.1.5", zones: ["zone-a"], nodes: ["node-b"]),
            hinted("10.244.2.6", zones: ["zone-b"], nodes: ["node-c"]),
        ]
        #expect(try reals(elsewhere) == ["10.244.1.5:8080"])
    }

    @Test func withNoReadyEndpointServingTerminatingOnesServeAndTopologyIsIgnored() throws {
        var leaving = terminating("10.244.2.6")
        leaving.hints = EndpointHints(forZones: [HintName(name: "zone-b")])
        #expect(try reals([leaving, notReady("10.244.3.7")]) == ["10.244.2.6:8080"])
        // A missing serving condition means serving, as kube-proxy reads it.
        let unsaid = Endpoint(
            addresses: ["10.244.4.8"], conditions: EndpointConditions(ready: false, terminating: true))
        #expect(try reals([unsaid]) == ["10.244.4.8:8080"])
    }

    @Test func onlyAnEndpointsFirstAddressIsProxied() throws {
        #expect(try reals([Endpoint(addresses: ["10.244.1.5", "10.244.1.6"])]) == ["10.244.1.5:8080"])
    }

    @Test func internalLocalWithoutALocalEndpointDropsTrafficUnlessTheServiceIsReachableFromOutside() throws {
        let remote = [ready("10.244.2.6", node: "node-b")]
        let internalOnly = makeService("web", internalTrafficPolicy: "Local")
        let slice = makeSlice("web-1", service: "web", endpoints: remote)
        let state = try translate(manifest(services: [internalOnly], slices: [slice]))
        #expect(state.reals(tcp("10.96.0.10", 80)) == [])
        #expect(state.servicesWithoutLocalEndpoints[.internal] == [ServiceName(namespace: "shop", name: "web")])

        // With a node port the cluster IP keeps every endpoint, so that local clients still get through.
        let withNodePort = makeService(
            "web", type: "NodePort", ports: [ServicePort(name: "http", port: 80, nodePort: 30080)],
            internalTrafficPolicy: "Local")
        #expect(try reals(remote, service: withNodePort) == ["10.244.2.6:8080"])
        // A local ready endpoint is preferred; a local terminating one only when no local one is ready.
        #expect(try reals([ready("10.244.1.5", node: "node-a")] + remote, service: internalOnly) == ["10.244.1.5:8080"])
        var localLeaving = terminating("10.244.1.7")
        localLeaving.nodeName = "node-a"
        #expect(try reals([localLeaving] + remote, service: internalOnly) == ["10.244.1.7:8080"])
        // No endpoint anywhere: nothing to count.
        let empty = try translate(
            manifest(services: [internalOnly], slices: [makeSlice("web-1", service: "web", endpoints: [])]))
        #expect(empty.servicesWithoutLocalEndpoints.isEmpty)
    }

    @Test func externalLocalWithoutALocalEndpointKeepsTheClusterEndpointsAndIsCounted() throws {
        let service = makeService(
            "web", type: "NodePort", ports: [ServicePort(name: "http", port: 80, nodePort: 30080)],
            externalTrafficPolicy: "Local")
        let slice = makeSlice("web-1", service: "web", endpoints: [ready("10.244.2.6", node: "node-b")])
        let state = try translate(manifest(services: [service], slices: [slice]))
        #expect(state.reals(tcp("192.168.1.10", 30080)) == ["10.244.2.6:8080"])
        #expect(state.servicesWithoutLocalEndpoints[.external] == [ServiceName(namespace: "shop", name: "web")])
        #expect(state.servicesWithoutLocalEndpoints[.internal] == nil)
    }

    @Test func externalLocalOnAClusterIPServiceIsNoPolicy() throws {
        // The field applies to NodePort and LoadBalancer Services only.
        let service = makeService("web", externalIPs: ["192.0.2.10"], externalTrafficPolicy: "Local")
        let slice = makeSlice(
            "web-1", service: "web",
            endpoints: [ready("10.244.1.5", node: "node-a"), ready("10.244.2.6", node: "node-b")])
        let state = try translate(manifest(services: [service], slices: [slice]))
        #expect(state.reals(tcp("192.0.2.10", 80)) == ["10.244.1.5:8080", "10.244.2.6:8080"])
        #expect(state.virtualServers[tcp("192.0.2.10", 80)]?.keepsClientAddress == false)
    }

    @Test func objectsForAnotherProxyOrOfHeadlessServicesAreLeftOut() throws {
        var other = makeService("other", clusterIPs: ["10.96.0.20"])
        other.metadata.labels = [ProxyLabels.serviceProxyName: "cilium"]
        let service = makeService("web")
        var headlessSlice = makeSlice("web-2", service: "web", endpoints: [ready("10.244.9.9")])
        headlessSlice.metadata.labels?[ProxyLabels.headless] = ""
        let slice = makeSlice("web-1", service: "web", endpoints: [ready("10.244.1.5")])
        let state = try translate(manifest(services: [other, service], slices: [slice, headlessSlice]))
        #expect(state.virtualServers[tcp("10.96.0.20", 80)] == nil)
        #expect(state.reals(tcp("10.96.0.10", 80)) == ["10.244.1.5:8080"])
        #expect(ProxyLabels.selector == "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless")
    }

    @Test func addressesOfAFamilyTheServiceDoesNotHaveAreIgnored() throws {
        let service = makeService(
            "web", type: "LoadBalancer", externalIPs: ["192.0.2.10", "2001:db8::10"],
            loadBalancer: [LoadBalancerIngress(ip: "2001:db8::30")])
        let state = try translate(manifest(services: [service]))
        #expect(state.virtualServers[tcp("192.0.2.10", 80)] != nil)
        #expect(state.virtualServers[tcp("2001:db8::10", 80)] == nil)
        #expect(state.virtualServers[tcp("2001:db8::30", 80)] == nil)
        #expect(!state.serviceAddresses.contains(IPAddress("2001:db8::10")!))
    }

    @Test func aLoadBalancerWithLocalPolicyGetsAHealthCheckCountingLocalReadyAddresses() throws {
        var service = makeService(
            "edge", type: "LoadBalancer", clusterIPs: ["10.96.0.10", "fd00:96::10"],
            ports: [ServicePort(name: "http", port: 80, nodePort: 32276), ServicePort(name: "admin", port: 81)],
            externalTrafficPolicy: "Local")
        service.spec.healthCheckNodePort = 32000
        let v4 = makeSlice(
            "edge-1", service: "edge",
            endpoints: [
                ready("10.244.1.5", node: "node-a"), ready("10.244.1.6", node: "node-a"),
                ready("10.244.2.6", node: "node-b"),
                Endpoint(
                    addresses: ["10.244.1.7"],
                    conditions: EndpointConditions(ready: false, serving: true, terminating: true),
                    nodeName: "node-a"),
            ],
            ports: [EndpointPort(name: "http", port: 8080), EndpointPort(name: "admin", port: 8081)])
        let v6 = makeSlice(
            "edge-2", service: "edge", addressType: "IPv6", endpoints: [ready("fd00:244::5", node: "node-a")],
            ports: [EndpointPort(name: "http", port: 8080)])
        let state = try translate(manifest(services: [service], slices: [v4, v6]))
        // One address behind two ports counts once; terminating and remote endpoints do not count.
        let check = try #require(state.healthChecks[ServiceName(namespace: "shop", name: "edge")])
        #expect(check == HealthCheck(port: 32000, localEndpoints: [.ipv4: 2, .ipv6: 1]))

        service.spec.externalTrafficPolicy = "Cluster"
        #expect(try translate(manifest(services: [service], slices: [v4, v6])).healthChecks.isEmpty)
    }

    /// The recorded `web` slices: 10.244.1.5 is hinted for zone-a, but the other ready endpoint (10.244.1.8) has
    /// no hint, so topology is ignored and both serve, in every zone.
    @Test func theRecordedWebSlicesServeEveryReadyEndpoint() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/recorded-api")
        let set = try ManifestLoader.load(paths: [
            fixtures.appendingPathComponent("list-services.json").path,
            fixtures.appendingPathComponent("list-endpointslices.json").path,
        ])
        let hints = set.endpointSlices.flatMap { $0.object.endpoints ?? [] }.compactMap(\.hints)
        #expect(hints.contains(EndpointHints(forZones: [HintName(name: "zone-a")])))
        for zone in ["zone-a", "zone-b"] {
            var context = NodeContext(nodeName: "node-a", nodeAddresses: [IPAddress("192.168.1.10")!])
            context.zone = zone
            let state = try Translator.translate(set, node: context)
            #expect(state.reals(tcp("10.105.23.164", 80)) == ["10.244.1.5:8080", "10.244.1.8:8080"], "\(zone)")
        }
    }
}
