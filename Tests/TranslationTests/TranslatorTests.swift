import IPVSModel
import KubernetesModel
import Testing

@testable import Translation

@Suite("Translation of Services into IPVS state, case by case", .timeLimit(.minutes(2)))
struct TranslatorTests {
    let webSlice = makeSlice("web-1", service: "web", endpoints: [ready("10.244.1.5"), ready("10.244.2.6")])

    @Test func clusterIPGetsOneVirtualServerPerPortWithReadyEndpoints() throws {
        let state = try translate(manifest(services: [makeService("web")], slices: [webSlice]))
        #expect(Array(state.virtualServers.keys) == [tcp("10.96.0.10", 80)])
        let desired = try #require(state.virtualServers[tcp("10.96.0.10", 80)])
        #expect(desired.server.scheduler == .roundRobin)
        #expect(desired.server.flags.isEmpty)
        #expect(desired.servicePort.description == "shop/web:http")
        #expect(state.reals(tcp("10.96.0.10", 80)) == ["10.244.1.5:8080", "10.244.2.6:8080"])
        #expect(desired.realServers.allSatisfy { $0.weight == 1 && $0.forwardingMethod == .masquerade })
        #expect(state.serviceAddresses == [IPAddress("10.96.0.10")!])
    }

    @Test func dualStackServiceGetsEachFamilysEndpoints() throws {
        let service = makeService("api", clusterIPs: ["10.96.0.20", "fd00:10:96::20"])
        let v4 = makeSlice("api-4", service: "api", endpoints: [ready("10.244.1.60")])
        let v6 = makeSlice("api-6", service: "api", addressType: "IPv6", endpoints: [ready("fd00:244::3c")])
        let state = try translate(manifest(services: [service], slices: [v4, v6]))
        #expect(state.reals(tcp("10.96.0.20", 80)) == ["10.244.1.60:8080"])
        #expect(state.reals(tcp("fd00:10:96::20", 80)) == ["[fd00:244::3c]:8080"])
        #expect(state.serviceAddresses == [IPAddress("10.96.0.20")!, IPAddress("fd00:10:96::20")!])
    }

    @Test func nodePortListensOnEachNodeAddressOfTheServicesFamily() throws {
        let service = makeService(
            "checkout", type: "NodePort", ports: [ServicePort(port: 443, targetPort: .int(8443), nodePort: 31386)])
        let slice = makeSlice(
            "checkout-1", service: "checkout", endpoints: [ready("10.244.1.20")],
            ports: [EndpointPort(name: "", port: 8443)])
        let state = try translate(manifest(services: [service], slices: [slice]))
        #expect(Set(state.virtualServers.keys) == [tcp("10.96.0.10", 443), tcp("192.168.1.10", 31386)])
        #expect(state.reals(tcp("192.168.1.10", 31386)) == ["10.244.1.20:8443"])
        #expect(state.virtualServers[tcp("192.168.1.10", 31386)]?.servicePort.description == "shop/checkout:443")
        // Node addresses are never bound to the dummy link.
        #expect(state.serviceAddresses == [IPAddress("10.96.0.10")!])
    }

    @Test func externalIPsGetVirtualServersAndAreBoundUnlessTheNodeHasThem() throws {
        let service = makeService("web", externalIPs: ["192.0.2.10", "192.168.1.10"])
        let state = try translate(manifest(services: [service], slices: [webSlice]))
        #expect(state.reals(tcp("192.0.2.10", 80)) == ["10.244.1.5:8080", "10.244.2.6:8080"])
        #expect(state.virtualServers[tcp("192.168.1.10", 80)] != nil)
        #expect(state.serviceAddresses == [IPAddress("10.96.0.10")!, IPAddress("192.0.2.10")!])
    }

    @Test func loadBalancerIngressIPsExceptProxyMode() throws {
        let service = makeService(
            "edge", type: "LoadBalancer", ports: [ServicePort(name: "http", port: 80, nodePort: 32276)],
            loadBalancer: [
                LoadBalancerIngress(ip: "192.0.2.30"), LoadBalancerIngress(ip: "192.0.2.31", ipMode: "Proxy"),
                LoadBalancerIngress(hostname: "lb.example.com"),
            ])
        let state = try translate(
            manifest(
                services: [service], slices: [makeSlice("edge-1", service: "edge", endpoints: [ready("10.244.1.30")])]))
        #expect(
            Set(state.virtualServers.keys) == [
                tcp("10.96.0.10", 80), tcp("192.0.2.30", 80), tcp("192.168.1.10", 32276),
            ])
        #expect(state.serviceAddresses.contains(IPAddress("192.0.2.30")!))
        #expect(!state.serviceAddresses.contains(IPAddress("192.0.2.31")!))
    }

    @Test func loadBalancerIPsOfANonLoadBalancerServiceAreIgnored() throws {
        let service = makeService("web", loadBalancer: [LoadBalancerIngress(ip: "192.0.2.30")])
        #expect(try translate(manifest(services: [service])).virtualServers.count == 1)
    }

    @Test func headlessAndExternalNameServicesGetNothing() throws {
        let headless = makeService("db", clusterIPs: ["None"])
        var external = makeService("mail", clusterIPs: [])
        external.spec.type = "ExternalName"
        external.spec.externalName = "mail.example.com"
        let state = try translate(
            manifest(
                services: [headless, external],
                slices: [makeSlice("db-1", service: "db", endpoints: [ready("10.244.2.50")])]))
        #expect(state.virtualServers.isEmpty)
        #expect(state.serviceAddresses.isEmpty)
    }

    @Test func udpAndSctpPorts() throws {
        let service = makeService(
            "dns",
            ports: [
                ServicePort(name: "dns-udp", protocol: "UDP", port: 53),
                ServicePort(name: "dns-tcp", protocol: "TCP", port: 53),
                ServicePort(name: "diameter", protocol: "SCTP", port: 3868),
            ])
        let slice = makeSlice(
            "dns-1", service: "dns", endpoints: [ready("10.244.1.40")],
            ports: [
                EndpointPort(name: "dns-udp", protocol: "UDP", port: 5353),
                EndpointPort(name: "dns-tcp", protocol: "TCP", port: 5353),
                EndpointPort(name: "diameter", protocol: "SCTP", port: 3868),
            ])
        let state = try translate(manifest(services: [service], slices: [slice]))
        let address = IPAddress("10.96.0.10")!
        #expect(state.reals(.address(.udp, address, port: 53)) == ["10.244.1.40:5353"])
        #expect(state.reals(.address(.tcp, address, port: 53)) == ["10.244.1.40:5353"])
        #expect(state.reals(.address(.sctp, address, port: 3868)) == ["10.244.1.40:3868"])
    }

    @Test func namedTargetPortsResolveThroughTheSlicesPortNames() throws {
        let service = makeService(
            "web",
            ports: [
                ServicePort(name: "http", port: 80, targetPort: .string("http")),
                ServicePort(name: "metrics", port: 9090, targetPort: .int(9100)),
            ])
        let slice = makeSlice(
            "web-1", service: "web", endpoints: [ready("10.244.1.5")],
            ports: [EndpointPort(name: "http", port: 8080), EndpointPort(name: "metrics", port: 9100)])
        let state = try translate(manifest(services: [service], slices: [slice]))
        #expect(state.reals(tcp("10.96.0.10", 80)) == ["10.244.1.5:8080"])
        #expect(state.reals(tcp("10.96.0.10", 9090)) == ["10.244.1.5:9100"])
    }

    @Test func slicesAreMergedAndDuplicateEndpointsDropped() throws {
        let first = makeSlice("web-1", service: "web", endpoints: [ready("10.244.1.5"), ready("10.244.2.6")])
        let second = makeSlice("web-2", service: "web", endpoints: [ready("10.244.2.6"), ready("10.244.3.7")])
        let other = makeSlice("api-1", service: "api", endpoints: [ready("10.244.9.9")])
        let elsewhere = makeSlice("web-x", service: "web", namespace: "other", endpoints: [ready("10.244.8.8")])
        let state = try translate(manifest(services: [makeService("web")], slices: [first, second, other, elsewhere]))
        #expect(state.reals(tcp("10.96.0.10", 80)) == ["10.244.1.5:8080", "10.244.2.6:8080", "10.244.3.7:8080"])
    }

    @Test func fqdnSlicesAreIgnored() throws {
        let fqdn = makeSlice("web-f", service: "web", addressType: "FQDN", endpoints: [ready("backend.example.com")])
        let state = try translate(manifest(services: [makeService("web")], slices: [fqdn, webSlice]))
        #expect(state.reals(tcp("10.96.0.10", 80))?.count == 2)
    }

    @Test func notReadyEndpointsAreExcluded() throws {
        let slice = makeSlice(
            "web-1", service: "web",
            endpoints: [ready("10.244.1.5"), notReady("10.244.2.6"), terminating("10.244.3.7")])
        let state = try translate(manifest(services: [makeService("web")], slices: [slice]))
        #expect(state.reals(tcp("10.96.0.10", 80)) == ["10.244.1.5:8080"])
    }

    @Test func servingTerminatingEndpointsServeOnlyWhenNoneIsReady() throws {
        let slice = makeSlice("web-1", service: "web", endpoints: [notReady("10.244.2.6"), terminating("10.244.3.7")])
        let state = try translate(manifest(services: [makeService("web")], slices: [slice]))
        #expect(state.reals(tcp("10.96.0.10", 80)) == ["10.244.3.7:8080"])
    }

    @Test func aMissingReadyConditionMeansReady() throws {
        let slice = makeSlice("web-1", service: "web", endpoints: [Endpoint(addresses: ["10.244.1.5"])])
        #expect(
            try translate(manifest(services: [makeService("web")], slices: [slice])).reals(tcp("10.96.0.10", 80)) == [
                "10.244.1.5:8080"
            ])
    }

    @Test func aServiceWithoutEndpointsStillGetsItsVirtualServers() throws {
        let state = try translate(manifest(services: [makeService("web")]))
        #expect(state.reals(tcp("10.96.0.10", 80)) == [])
    }

    @Test func clientIPAffinityBecomesPersistenceWithItsTimeout() throws {
        let state = try translate(
            manifest(services: [
                makeService("a", clusterIPs: ["10.96.0.1"], affinityTimeout: 600),
                makeService("b", clusterIPs: ["10.96.0.2"], affinityTimeout: .some(nil)),
            ]))
        let a = try #require(state.virtualServers[tcp("10.96.0.1", 80)]?.server)
        #expect(a.flags == .persistent)
        #expect(a.persistenceTimeout == 600)
        #expect(state.virtualServers[tcp("10.96.0.2", 80)]?.server.persistenceTimeout == 10800)
    }

    @Test func externalTrafficPolicyLocalKeepsNodePortToLocalEndpoints() throws {
        let service = makeService(
            "checkout", type: "NodePort", ports: [ServicePort(name: "https", port: 443, nodePort: 31386)],
            externalIPs: ["192.0.2.10"], externalTrafficPolicy: "Local")
        let slice = makeSlice(
            "checkout-1", service: "checkout",
            endpoints: [ready("10.244.1.20", node: "node-a"), ready("10.244.2.21", node: "node-b")],
            ports: [EndpointPort(name: "https", port: 8443)])
        let state = try translate(manifest(services: [service], slices: [slice]))
        #expect(state.reals(tcp("192.168.1.10", 31386)) == ["10.244.1.20:8443"])
        #expect(state.reals(tcp("192.0.2.10", 443)) == ["10.244.1.20:8443"])
        // The cluster IP is internal traffic: every endpoint.
        #expect(state.reals(tcp("10.96.0.10", 443)) == ["10.244.1.20:8443", "10.244.2.21:8443"])
    }

    @Test func internalTrafficPolicyLocalKeepsClusterIPToLocalEndpoints() throws {
        let service = makeService("web", internalTrafficPolicy: "Local")
        let slice = makeSlice(
            "web-1", service: "web",
            endpoints: [ready("10.244.1.5", node: "node-a"), ready("10.244.2.6", node: "node-b")])
        #expect(
            try translate(manifest(services: [service], slices: [slice])).reals(tcp("10.96.0.10", 80)) == [
                "10.244.1.5:8080"
            ])
    }

    @Test func theGlobalSchedulerAppliesUnlessAnAnnotationOverridesIt() throws {
        var context = node
        context.scheduler = .leastConnection
        let state = try translate(
            manifest(services: [
                makeService("a", clusterIPs: ["10.96.0.1"]),
                makeService("b", clusterIPs: ["10.96.0.2"], annotations: [Translator.schedulerAnnotation: "sh"]),
            ]), node: context)
        #expect(state.virtualServers[tcp("10.96.0.1", 80)]?.server.scheduler == .leastConnection)
        #expect(state.virtualServers[tcp("10.96.0.2", 80)]?.server.scheduler == .sourceHashing)
    }

    @Test func maglevHashingSetsTheFlagKubeProxySets() throws {
        var context = node
        context.scheduler = .maglevHashing
        let state = try translate(manifest(services: [makeService("web")]), node: context)
        #expect(state.virtualServers[tcp("10.96.0.10", 80)]?.server.flags == .schedulerFlag2)
    }

    @Test func anUnknownSchedulerAnnotationIsBadInput() throws {
        let service = makeService("web", annotations: [Translator.schedulerAnnotation: "fastest"])
        let errors = try #require(throws: ManifestErrors.self) { try translate(manifest(services: [service])) }
        #expect(
            errors.description
                == "test.yaml: document 1: metadata.annotations[\"ipvs-proxy.io/scheduler\"]: unknown IPVS scheduler 'fastest'; valid schedulers: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos"
        )
    }

    @Test func legacyEndpointsServeAServiceWithoutSlices() throws {
        let endpoints = Endpoints(
            metadata: ObjectMeta(name: "legacy-db", namespace: "shop"),
            subsets: [
                EndpointSubset(
                    addresses: [EndpointAddress(ip: "172.16.5.10"), EndpointAddress(ip: "172.16.5.11")],
                    notReadyAddresses: [EndpointAddress(ip: "172.16.5.12")], ports: [EndpointPort(port: 3306)])
            ])
        let service = makeService("legacy-db", ports: [ServicePort(port: 3306)])
        let state = try translate(manifest(services: [service], endpoints: [endpoints]))
        #expect(state.reals(tcp("10.96.0.10", 3306)) == ["172.16.5.10:3306", "172.16.5.11:3306"])

        // Once a slice exists, the slice is the truth.
        let slice = makeSlice(
            "legacy-db-1", service: "legacy-db", endpoints: [ready("172.16.5.10")], ports: [EndpointPort(port: 3306)])
        let withSlice = try translate(manifest(services: [service], slices: [slice], endpoints: [endpoints]))
        #expect(withSlice.reals(tcp("10.96.0.10", 3306)) == ["172.16.5.10:3306"])
    }

    @Test func twoServicesWantingOneVirtualServerFirstWinsWithAWarning() throws {
        let a = makeService("a", clusterIPs: ["10.96.0.1"], externalIPs: ["192.0.2.10"])
        let b = makeService("b", clusterIPs: ["10.96.0.2"], externalIPs: ["192.0.2.10"])
        let state = try translate(manifest(services: [b, a]))
        #expect(state.virtualServers[tcp("192.0.2.10", 80)]?.servicePort.description == "shop/a:http")
        #expect(state.warnings == ["shop/b:http wants TCP 192.0.2.10:80, which shop/a:http has; skipped"])
    }

    /// What the netfilter half needs to know of each virtual server: the kind of address, whether its clients
    /// keep their address, its source ranges, and which of its endpoints run on this node.
    @Test func eachVirtualServerSaysWhatItIsForTheNetfilterHalf() throws {
        var service = makeService(
            "edge", type: "LoadBalancer", ports: [ServicePort(name: "http", port: 80, nodePort: 32276)],
            externalIPs: ["192.0.2.10"], loadBalancer: [LoadBalancerIngress(ip: "192.0.2.30")],
            externalTrafficPolicy: "Local")
        service.spec.loadBalancerSourceRanges = [" 203.0.113.0/24", "2001:db8::/32"]
        let slice = makeSlice(
            "edge-1", service: "edge",
            endpoints: [ready("10.244.1.20", node: "node-a"), ready("10.244.2.21", node: "node-b")])
        let state = try translate(manifest(services: [service], slices: [slice]))
        let clusterIP = try #require(state.virtualServers[tcp("10.96.0.10", 80)])
        #expect(clusterIP.kind == .clusterIP)
        #expect(!clusterIP.keepsClientAddress)
        #expect(clusterIP.sourceRanges.isEmpty)
        #expect(clusterIP.localRealServers.map(\.description) == ["10.244.1.20:8080"])
        let loadBalancer = try #require(state.virtualServers[tcp("192.0.2.30", 80)])
        #expect(loadBalancer.kind == .loadBalancerIP)
        #expect(loadBalancer.keepsClientAddress)
        #expect(loadBalancer.sourceRanges.map(\.description) == ["203.0.113.0/24"])
        let external = try #require(state.virtualServers[tcp("192.0.2.10", 80)])
        #expect(external.kind == .externalIP)
        #expect(external.sourceRanges.isEmpty)
        #expect(state.virtualServers[tcp("192.168.1.10", 32276)]?.kind == .nodePort)
        #expect(state.virtualServers[tcp("192.168.1.10", 32276)]?.keepsClientAddress == true)
    }

    /// kube-proxy lets this node's own connections reach a load-balancer IP when a source range holds one of
    /// the node's addresses: they come from the load-balancer IP itself, bound on the dummy link.
    @Test func aSourceRangeHoldingTheNodeAlsoLetsTheLoadBalancerIPIn() throws {
        var service = makeService(
            "edge", type: "LoadBalancer", ports: [ServicePort(name: "http", port: 80, nodePort: 32276)],
            loadBalancer: [LoadBalancerIngress(ip: "192.0.2.30")])
        service.spec.loadBalancerSourceRanges = ["192.168.0.0/16"]
        let state = try translate(manifest(services: [service]))
        #expect(
            state.virtualServers[tcp("192.0.2.30", 80)]?.sourceRanges.map(\.description) == [
                "192.168.0.0/16", "192.0.2.30/32",
            ])
    }

    @Test func sourceRangesOfOtherTypesAreIgnored() throws {
        var service = makeService("web", type: "NodePort", externalIPs: ["192.0.2.10"])
        service.spec.loadBalancerSourceRanges = ["203.0.113.0/24"]
        let state = try translate(manifest(services: [service]))
        #expect(state.virtualServers.values.allSatisfy { $0.sourceRanges.isEmpty })
    }
}
