import IPVSModel
import KubernetesModel
import ProxyRules
import TestSupport
import Testing
import Translation

@Suite("Live translation: change by change, the same as all at once", .serialized, .timeLimit(.minutes(2)))
struct LiveTranslationTests {
    /// Random changes to a small cluster where Services fight over addresses, slices move between Services, and
    /// the node's facts change: after each step the live state equals a fresh translation of the same objects,
    /// and every virtual server and address that differs from the previous step is among those it says it touched.
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func randomChangesGiveTheSameStateAsTranslatingEverything(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        var cluster = RandomCluster()
        var context = node
        var live = LiveTranslation(node: context)
        var previous: DesiredState?
        for _ in 0..<200 {
            var changes: [ClusterChange] = []
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                changes.append(cluster.randomChange(using: &random))
            }
            live.apply(changes)
            if Int.random(in: 0..<20, using: &random) == 0 {
                context.nodeAddresses = Bool.random(using: &random) ? node.nodeAddresses : [IPAddress("192.168.1.10")!]
                live.update(node: context)
            }
            let state = live.takeDesired()
            let (expected, problems) = Translator.translateSkippingInvalid(cluster.set, node: context)
            #expect(state.virtualServers == expected.virtualServers)
            #expect(state.serviceAddresses == expected.serviceAddresses)
            #expect(state.healthChecks == expected.healthChecks)
            #expect(state.servicesWithoutLocalEndpoints == expected.servicesWithoutLocalEndpoints)
            #expect(state.warnings == expected.warnings)
            #expect(state.serviceCount == expected.serviceCount)
            #expect(state.realServerCount == expected.virtualServers.values.reduce(0) { $0 + $1.realServers.count })
            #expect(live.problems.map(\.description) == problems.map(\.description))
            if let previous {
                #expect(state.derivation?.base == previous.revision)
                if let touched = state.derivation?.touched {
                    for key in Set(previous.virtualServers.keys).union(state.virtualServers.keys)
                    where previous.virtualServers[key] != state.virtualServers[key] {
                        #expect(touched.virtualServers.keys.contains(key), "\(key) changed untold")
                    }
                    for key in touched.virtualServers.keys {
                        #expect(touched.previous(key) == previous.virtualServers[key], "\(key) was otherwise")
                    }
                    for address in previous.serviceAddresses.symmetricDifference(state.serviceAddresses) {
                        #expect(touched.serviceAddresses[address] != nil, "\(address) changed untold")
                    }
                    for (address, had) in touched.serviceAddresses {
                        #expect(had == previous.serviceAddresses.contains(address))
                    }
                    #expect(touched.healthChecks == previous.healthChecks)
                    #expect(touched.nodePodNetworks == previous.nodePodNetworks)
                }
            }
            previous = state
        }
    }

    @Test func anEndpointChangeTouchesOnlyItsServicesVirtualServers() {
        var live = LiveTranslation(node: node)
        let services = (1...3).map {
            makeService(
                "s\($0)", type: "NodePort", clusterIPs: ["10.96.0.\($0)"],
                ports: [ServicePort(name: "http", port: 80, targetPort: .int(8080), nodePort: 30000 + $0)])
        }
        let slices = (1...3).map { makeSlice("s\($0)-a", service: "s\($0)", endpoints: [ready("10.1.0.\($0)")]) }
        live.apply([.everything(manifest(services: services, slices: slices))])
        let first = live.takeDesired()
        #expect(first.derivation == nil)
        let changed = makeSlice("s2-a", service: "s2", endpoints: [ready("10.1.0.22")])
        live.apply([.endpointSlice(changed.metadata.objectName, Located(changed, at: location))])
        let second = live.takeDesired()
        // s2's cluster IP and its node port on the node's IPv4 address, nothing else.
        #expect(
            second.derivation?.touched?.virtualServers.keys.sorted() == [
                tcp("10.96.0.2", 80), tcp("192.168.1.10", 30002),
            ])
        #expect(second.derivation?.touched?.serviceAddresses == [:])
        #expect(second.reals(tcp("10.96.0.2", 80)) == ["10.1.0.22:8080"])
    }

    @Test func whenTheHolderOfAContestedVirtualServerGoesTheNextByNameHasIt() {
        var live = LiveTranslation(node: node)
        let a = makeService("a", clusterIPs: ["10.96.0.1"], externalIPs: ["192.0.2.10"])
        let b = makeService("b", clusterIPs: ["10.96.0.2"], externalIPs: ["192.0.2.10"])
        let slices = [
            makeSlice("a-1", service: "a", endpoints: [ready("10.1.0.1")]),
            makeSlice("b-1", service: "b", endpoints: [ready("10.1.0.2")]),
        ]
        live.apply([.everything(manifest(services: [b, a], slices: slices))])
        #expect(live.takeDesired().reals(tcp("192.0.2.10", 80)) == ["10.1.0.1:8080"])
        live.apply([.service(a.metadata.objectName, nil)])
        let after = live.takeDesired()
        #expect(after.reals(tcp("192.0.2.10", 80)) == ["10.1.0.2:8080"])
        #expect(after.warnings.isEmpty)
        // The external IP stays bound: b still wants it.
        #expect(after.serviceAddresses.contains(IPAddress("192.0.2.10")!))
    }
}

private let location = ObjectLocation(file: "test.yaml", document: 1)

/// A small cluster whose objects change at random: few names, so that changes hit the same objects again.
private struct RandomCluster {
    var services: [ObjectName: Service] = [:]
    var slices: [ObjectName: EndpointSlice] = [:]

    var set: ManifestSet {
        manifest(
            services: services.values.sorted { $0.metadata.objectName < $1.metadata.objectName },
            slices: slices.values.sorted { $0.metadata.objectName < $1.metadata.objectName })
    }

    mutating func randomChange(using random: inout SeededRandom) -> ClusterChange {
        switch Int.random(in: 0..<10, using: &random) {
        case 0..<3:
            let service = randomService(using: &random)
            let name = service.metadata.objectName
            if Int.random(in: 0..<4, using: &random) == 0 {
                services[name] = nil
                return .service(name, nil)
            }
            services[name] = service
            return .service(name, Located(service, at: location))
        case 3:
            return .everything(set)
        default:
            let slice = randomSlice(using: &random)
            let name = slice.metadata.objectName
            if Int.random(in: 0..<5, using: &random) == 0 {
                slices[name] = nil
                return .endpointSlice(name, nil)
            }
            slices[name] = slice
            return .endpointSlice(name, Located(slice, at: location))
        }
    }

    /// One of five Services: shared cluster and external IPs, node ports, Local policies, a bad scheduler.
    private func randomService(using random: inout SeededRandom) -> Service {
        let index = Int.random(in: 0..<5, using: &random)
        let type = ["ClusterIP", "NodePort", "LoadBalancer"].randomElement(using: &random)!
        var service = makeService(
            "s\(index)", type: type, clusterIPs: ["10.96.0.\(Int.random(in: 1...3, using: &random))"],
            ports: [
                ServicePort(
                    name: "http", port: 80, targetPort: .int(8080), nodePort: type == "ClusterIP" ? nil : 30000 + index)
            ],
            externalIPs: Bool.random(using: &random) ? ["192.0.2.\(Int.random(in: 1...2, using: &random))"] : nil,
            loadBalancer: type == "LoadBalancer" ? [LoadBalancerIngress(ip: "198.51.100.\(index)")] : nil,
            externalTrafficPolicy: Bool.random(using: &random) ? "Local" : nil,
            internalTrafficPolicy: Int.random(in: 0..<4, using: &random) == 0 ? "Local" : nil,
            annotations: Int.random(in: 0..<8, using: &random) == 0 ? [Translator.schedulerAnnotation: "nope"] : nil)
        service.spec.healthCheckNodePort = 32000 + index
        return service
    }

    /// One of eight slices, each for one of the five Services, with a few endpoints on this node or another.
    private func randomSlice(using random: inout SeededRandom) -> EndpointSlice {
        let index = Int.random(in: 0..<8, using: &random)
        let endpoints = (0..<Int.random(in: 0...3, using: &random)).map { _ -> Endpoint in
            let address = "10.1.0.\(Int.random(in: 1...6, using: &random))"
            let onNode = Bool.random(using: &random) ? "node-a" : "node-b"
            return Bool.random(using: &random) ? ready(address, node: onNode) : terminating(address)
        }
        return makeSlice(
            "slice-\(index)", service: "s\(Int.random(in: 0..<5, using: &random))",
            endpoints: endpoints, ports: [EndpointPort(name: "http", port: 8080)])
    }
}

@Suite("Live translation keeps the ServiceCIDRs", .timeLimit(.minutes(1)))
struct LiveTranslationServiceCIDRTests {
    private func located(_ name: String, _ cidrs: [String]) -> Located<ServiceCIDR> {
        Located(
            ServiceCIDR(metadata: ObjectMeta(name: name), spec: ServiceCIDRSpec(cidrs: cidrs)),
            at: ObjectLocation(file: "/apis/networking.k8s.io/v1/servicecidrs", document: 1, kind: "ServiceCIDR"))
    }

    /// Nothing is translated from them yet, but every change is kept for the service ranges' routes (issue 23).
    @Test func everythingThenAddedThenDeleted() {
        var live = LiveTranslation(node: NodeContext(nodeName: "node-a", nodeAddresses: []))
        var set = ManifestSet()
        set.serviceCIDRs = [located("kubernetes", ["10.96.0.0/12"])]
        live.apply([.everything(set)])
        let more = located("more", ["10.113.0.0/24"])
        live.apply([.serviceCIDR(more.object.metadata.objectName, more)])
        #expect(live.serviceCIDRs.map { $0.object.metadata.name ?? "" } == ["kubernetes", "more"])
        live.apply([.serviceCIDR(ObjectMeta(name: "kubernetes").objectName, nil)])
        #expect(live.serviceCIDRs.map { $0.object.spec?.cidrs ?? [] } == [["10.113.0.0/24"]])
        live.apply([.everything(ManifestSet())])
        #expect(live.serviceCIDRs.isEmpty)
    }
}
