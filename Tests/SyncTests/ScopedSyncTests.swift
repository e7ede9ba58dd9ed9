import FakeKernel
import IPVSModel
import KubernetesModel
import NetfilterModel
import ProxyRules
import Sync
import TestSupport
import Testing
import Translation

@Suite("Syncing only what a change touched", .serialized, .timeLimit(.minutes(2)))
struct ScopedSyncTests {
    /// Two nodes follow the same random changes of a cluster: one syncs each live translation's state planning only
    /// what it touched, the other the same state planning everything. After every change both kernels hold the
    /// same virtual servers, addresses, nftables elements and ownership record, and the first the desired state.
    @Test(arguments: [11, 12, 13] as [UInt64])
    func planningOnlyWhatWasTouchedEndsWhereReplanningEverythingDoes(seed: UInt64) throws {
        try withTemporaryFolder("scoped") { folder in
            let scoped = FakeNode(folder: folder + "/scoped")
            let everything = FakeNode(folder: folder + "/everything")
            var random = SeededRandom(seed: seed)
            var cluster = ChangingCluster()
            var live = LiveTranslation(node: context)
            for step in 0..<80 {
                live.apply((0..<Int.random(in: 1...3, using: &random)).map { _ in cluster.change(using: &random) })
                let desired = live.takeDesired()
                var underived = desired
                underived.derivation = nil
                let first = step == 0
                let report = try scoped.syncer.sync(desired, options: SyncOptions(full: first, allowEmpty: true))
                let whole = try everything.syncer.sync(underived, options: SyncOptions(full: first, allowEmpty: true))
                // The differential means something only while the scoped sync did plan from what was touched alone.
                #expect(report.lookedAtEverything == first, "step \(step)")
                #expect(whole.lookedAtEverything, "step \(step)")
                #expect(scoped.matches(desired), "step \(step)")
                #expect(scoped.realServers == everything.realServers, "step \(step)")
                #expect(
                    scoped.interfaces.addresses(on: "kube-ipvs0") == everything.interfaces.addresses(on: "kube-ipvs0"))
                for family in NFTFamily.allCases {
                    #expect(
                        scoped.nftables.table(of: family)?.elements == everything.nftables.table(of: family)?.elements,
                        "step \(step), \(family)")
                }
                #expect(try scoped.store.load() == everything.store.load(), "step \(step)")
                #expect(report.table.fullReads == (first ? 1 : 0))
            }
        }
    }

    @Test func anEndpointChangeIsPlannedFromItsOwnVirtualServerOnly() throws {
        try withTemporaryFolder("scoped-one") { folder in
            let node = FakeNode(folder: folder)
            var live = LiveTranslation(node: context)
            let services = (0..<50).map { service("s\($0)", clusterIP: "10.96.0.\($0 + 1)", type: "ClusterIP") }
            let slices = (0..<50).map {
                slice("s\($0)-a", service: "s\($0)", endpoints: ["10.1.\($0).1"], on: "node-b")
            }
            live.apply([.everything(set(services, slices))])
            _ = try node.syncer.sync(live.takeDesired(), options: SyncOptions(full: true))
            let changed = slice("s7-a", service: "s7", endpoints: ["10.1.7.2"], on: "node-b")
            live.apply([.endpointSlice(changed.metadata.objectName, Located(changed, at: location))])
            let desired = live.takeDesired()
            let report = try node.syncer.sync(desired, options: SyncOptions(full: false))
            #expect(!report.lookedAtEverything)
            #expect(report.table.operations.map(\.kind) == [.addRealServer, .deleteRealServer])
            #expect(report.table.realServerReads == 1)
            #expect(report.table.fullReads == 0)
            #expect(report.nftables.transactions.isEmpty)
            #expect(node.matches(desired))
        }
    }
}

private let location = ObjectLocation(file: "test.yaml", document: 1)
private let context = NodeContext(
    nodeName: "node-a", nodeAddresses: [IPAddress("192.168.1.10")!, IPAddress("192.168.2.10")!])

private func service(
    _ name: String, clusterIP: String, type: String, udp: Bool = false, externalIP: String? = nil,
    local: Bool = false, loadBalancerIP: String? = nil, sourceRanges: [String]? = nil, nodePort: Int? = nil
) -> Service {
    var spec = ServiceSpec(
        type: type, clusterIP: clusterIP, clusterIPs: [clusterIP], externalIPs: externalIP.map { [$0] },
        ports: [
            ServicePort(name: "p", protocol: udp ? "UDP" : "TCP", port: 80, targetPort: .int(8080), nodePort: nodePort)
        ],
        externalTrafficPolicy: local ? "Local" : nil)
    spec.loadBalancerSourceRanges = sourceRanges
    if local, type == "LoadBalancer" { spec.healthCheckNodePort = 32000 + (nodePort ?? 0) % 100 }
    return Service(
        metadata: ObjectMeta(name: name, namespace: "ns"), spec: spec,
        status: loadBalancerIP.map {
            ServiceStatus(loadBalancer: LoadBalancerStatus(ingress: [LoadBalancerIngress(ip: $0)]))
        })
}

private func slice(_ name: String, service: String, endpoints: [String], on node: String) -> EndpointSlice {
    EndpointSlice(
        metadata: ObjectMeta(name: name, namespace: "ns", labels: [EndpointSlice.serviceNameLabel: service]),
        addressType: "IPv4",
        endpoints: endpoints.map {
            Endpoint(
                addresses: [$0], conditions: EndpointConditions(ready: true, serving: true, terminating: false),
                nodeName: node)
        },
        ports: [
            EndpointPort(name: "p", protocol: "TCP", port: 8080), EndpointPort(name: "p", protocol: "UDP", port: 8080),
        ])
}

private func set(_ services: [Service], _ slices: [EndpointSlice]) -> ManifestSet {
    var set = ManifestSet()
    set.services = services.map { Located($0, at: location) }
    set.endpointSlices = slices.map { Located($0, at: location) }
    return set
}

/// A few Services of every kind whose specs and slices change at random: node ports on two node addresses (a
/// shared nftables element), endpoints on this node (hairpin elements, shared between a Service's virtual
/// servers), external IPs two Services want, source ranges, health checks, UDP.
private struct ChangingCluster {
    var services: [ObjectName: Service] = [:]
    var slices: [ObjectName: EndpointSlice] = [:]

    mutating func change(using random: inout SeededRandom) -> ClusterChange {
        if Int.random(in: 0..<3, using: &random) == 0 {
            let index = Int.random(in: 0..<6, using: &random)
            let name = ObjectName(namespace: "ns", name: "s\(index)")
            if Int.random(in: 0..<5, using: &random) == 0 {
                services[name] = nil
                return .service(name, nil)
            }
            let type = ["ClusterIP", "NodePort", "LoadBalancer"].randomElement(using: &random)!
            let made = service(
                "s\(index)", clusterIP: "10.96.0.\(Int.random(in: 1...4, using: &random))", type: type,
                udp: Bool.random(using: &random),
                externalIP: Bool.random(using: &random) ? "192.0.2.\(Int.random(in: 1...2, using: &random))" : nil,
                local: Bool.random(using: &random),
                loadBalancerIP: type == "LoadBalancer" ? "198.51.100.\(index)" : nil,
                sourceRanges: Bool.random(using: &random) ? ["203.0.113.0/24"] : nil,
                nodePort: type == "ClusterIP" ? nil : 30000 + Int.random(in: 0..<3, using: &random))
            services[name] = made
            return .service(name, Located(made, at: location))
        }
        let index = Int.random(in: 0..<8, using: &random)
        let name = ObjectName(namespace: "ns", name: "slice-\(index)")
        if Int.random(in: 0..<6, using: &random) == 0 {
            slices[name] = nil
            return .endpointSlice(name, nil)
        }
        let made = slice(
            "slice-\(index)", service: "s\(Int.random(in: 0..<6, using: &random))",
            endpoints: (0..<Int.random(in: 0...3, using: &random)).map { _ in
                "10.1.0.\(Int.random(in: 1...5, using: &random))"
            }, on: Bool.random(using: &random) ? "node-a" : "node-b")
        slices[name] = made
        return .endpointSlice(name, Located(made, at: location))
    }
}
