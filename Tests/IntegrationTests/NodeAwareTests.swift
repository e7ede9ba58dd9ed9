import Foundation
import IPVS
import IPVSModel
import Testing

/// A Node manifest for `node-a`, optionally tainted by the cluster autoscaler.
private func nodeManifest(tainted: Bool) -> String {
    var yaml = """
        apiVersion: v1
        kind: Node
        metadata:
          name: node-a
          labels: {topology.kubernetes.io/zone: zone-a}
        spec:
          podCIDRs: [10.244.1.0/24]

        """
    if tainted {
        yaml += "  taints: [{key: ToBeDeletedByClusterAutoscaler, value: \"1764079812\", effect: NoSchedule}]\n"
    }
    return yaml
}

/// One HTTP request from `namespace`; the answer, or `nil` when the connection fails.
private func probe(from namespace: TestNamespace, _ address: String, port: Int) -> String? {
    try? namespace.perform { try httpGet(host: address, port: port, path: "/healthz") }
}

@Suite("Node-aware proxying against the kernel", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct NodeAwareTests {
    /// A load balancer's probe from outside gets 200 from the health-check node port while node-a has a ready
    /// endpoint of the Service, 503 once the endpoint is on another node, and nothing once the Service is gone. The
    /// port answers on the load-balancer IP too: the netfilter half lets it through.
    @Test func aLoadBalancersProbeFollowsTheLocalEndpoints() throws {
        let lab = try ClusterLab()
        let folder = try temporaryFolder("health-check")
        var edge = ServiceManifest(
            name: "edge", type: "LoadBalancer", clusterIPs: ["10.96.0.40"], nodePort: 30040,
            loadBalancerIPs: ["192.0.2.40"], externalTrafficPolicy: "Local", healthCheckNodePort: 32040,
            endpoints: [(ClusterLab.podAddress(node: 1, 0), "node-a")])
        try write(edge.yaml, to: folder, as: "edge.yaml")
        let daemon = try Daemon(
            namespace: lab.nodeA, manifests: folder, arguments: ["--cluster-cidr", ClusterLab.clusterCIDRs])
        defer { daemon.stop() }

        let ready = eventually(timeoutSeconds: 20) {
            probe(from: lab.client, "192.168.60.1", port: 32040).flatMap { $0.hasPrefix("HTTP/1.1 200") ? $0 : nil }
        }
        #expect(ready?.contains("X-Load-Balancing-Endpoint-Weight: 1\r\n") == true, "\(daemon.output)")
        #expect(ready?.contains("\"localEndpoints\": 1,") == true)
        #expect(probe(from: lab.client, "192.0.2.40", port: 32040)?.hasPrefix("HTTP/1.1 200") == true)

        edge.endpoints = [(ClusterLab.podAddress(node: 2, 0), "node-b")]
        try write(edge.yaml, to: folder, as: "edge.yaml")
        let gone = eventually(timeoutSeconds: 10) {
            probe(from: lab.client, "192.168.60.1", port: 32040).flatMap { $0.hasPrefix("HTTP/1.1 503") ? $0 : nil }
        }
        #expect(gone?.contains("\"localEndpoints\": 0,") == true, "\(daemon.output)")

        try write("", to: folder, as: "edge.yaml")
        #expect(
            eventually(timeoutSeconds: 10) { probe(from: lab.client, "192.168.60.1", port: 32040) == nil ? true : nil }
                == true)
    }

    /// `/healthz` answers 503 with `nodeEligible: false` once the node's own Node (here from a manifest) carries
    /// the cluster autoscaler's taint, and 200 again when the taint goes.
    @Test func healthzTurnsUnavailableWhenTheNodeIsBeingRemoved() throws {
        let namespace = try TestNamespace("node-eligible")
        let folder = try temporaryFolder("node")
        try write(nodeManifest(tainted: false), to: folder, as: "node.yaml")
        let port = Int.random(in: 30001...40000)
        let daemon = try Daemon(
            namespace: namespace, manifests: folder, arguments: ["--healthz-bind-address", "127.0.0.1:\(port)"])
        defer { daemon.stop() }
        func healthz() -> String? { try? httpGet(port: port, path: "/healthz") }
        #expect(
            eventually(timeoutSeconds: 20) { healthz()?.contains("\"nodeEligible\": true") == true ? true : nil }
                == true, "\(daemon.output)")
        try write(nodeManifest(tainted: true), to: folder, as: "node.yaml")
        let tainted = eventually(timeoutSeconds: 10) {
            healthz().flatMap { $0.contains("\"nodeEligible\": false") ? $0 : nil }
        }
        #expect(tainted?.hasPrefix("HTTP/1.1 503") == true, "\(daemon.output)")
        #expect(try httpGet(port: port, path: "/livez").hasPrefix("HTTP/1.1 200"))
        try write(nodeManifest(tainted: false), to: folder, as: "node.yaml")
        #expect(
            eventually(timeoutSeconds: 10) { healthz()?.hasPrefix("HTTP/1.1 200") == true ? true : nil } == true)
    }

    /// An address added to a node interface gets its NodePort virtual servers from the kernel's announcement, with
    /// the default pacing: a sync of its own begins within a second, not at the next full resync (an hour here).
    /// The proxy's own binds on the dummy link do not set off syncs.
    @Test func aNewNodeAddressGetsNodePortsWithinASecond() throws {
        let namespace = try TestNamespace("node-address")
        try namespace.ip("link", "add", "eth1", "type", "dummy")
        try namespace.ip("addr", "add", "192.168.77.1/24", "dev", "eth1")
        try namespace.ip("link", "set", "eth1", "up")
        let folder = try temporaryFolder("nodeport")
        let service = ServiceManifest(
            name: "web", type: "NodePort", clusterIPs: ["10.96.0.77"], nodePort: 30077,
            endpoints: [(IPAddress("10.244.1.2")!, "node-a")])
        try write(service.yaml, to: folder, as: "web.yaml")
        let port = Int.random(in: 40001...50000)
        let daemon = try Daemon(
            namespace: namespace, manifests: folder,
            arguments: [
                "--min-sync-period", "1s", "--sync-period", "1h", "--metrics-bind-address", "127.0.0.1:\(port)",
            ])
        defer { daemon.stop() }
        let ipvs = try namespace.ipvs()
        func nodePort(_ address: String) -> VirtualServerKey { .address(.tcp, IPAddress(address)!, port: 30077) }
        #expect(
            try eventually(timeoutSeconds: 20) { try ipvs.virtualServer(nodePort("192.168.77.1")) } != nil,
            "\(daemon.output)")
        // Every sync, counted once its writes are done (the first is full, and bound the ClusterIP on the dummy
        // link); its time and duration are recorded after that, so a scrape is taken once they are.
        func syncs(_ text: String) -> Double {
            [fullSyncs, incrementalSyncs, failedFullSyncs, failedIncrementalSyncs].map { metric(text, $0) }
                .reduce(0, +)
        }
        func timed(_ text: String) -> Bool {
            metric(text, "kubeproxy_sync_proxy_rules_duration_seconds_count") == syncs(text)
        }
        let first = try #require(metrics(port: port) { syncs($0) >= 1 && timed($0) }, "\(daemon.output)")
        // A sync the binds' announcements set off would come one minimum period (1 s) after the first: none comes
        // in three. (That nothing happens can only be watched for a while; the watch ends at the first extra sync.)
        let extra = metrics(port: port, timeoutSeconds: 3) { syncs($0) > syncs(first) }
        #expect(extra == nil, "\(daemon.output)")

        let added = Date()
        try namespace.ip("addr", "add", "192.168.77.2/24", "dev", "eth1")
        let arrived = try eventually(timeoutSeconds: 10, every: 0.02) {
            try ipvs.virtualServer(nodePort("192.168.77.2")) != nil ? Date() : nil
        }
        let latency = try #require(arrived, "\(daemon.output)").timeIntervalSince(added)
        print("new node address to NodePort virtual server: \(Int(latency * 1000)) ms (default pacing, in the VM)")
        // One incremental sync did it, which began within a second of the address: its end, less its duration.
        let after = try #require(metrics(port: port) { syncs($0) > syncs(first) && timed($0) }, "\(daemon.output)")
        #expect(metric(after, incrementalSyncs) == metric(first, incrementalSyncs) + 1, "\(daemon.output)")
        #expect(syncs(after) == syncs(first) + 1, "\(daemon.output)")
        let ended = metric(after, "kubeproxy_sync_proxy_rules_last_timestamp_seconds")
        let duration =
            metric(after, "kubeproxy_sync_proxy_rules_duration_seconds_sum")
            - metric(first, "kubeproxy_sync_proxy_rules_duration_seconds_sum")
        let began = Date(timeIntervalSince1970: ended - duration).timeIntervalSince(added)
        print("new node address to the start of its sync: \(Int(began * 1000)) ms, the sync \(Int(duration * 1000)) ms")
        #expect(began < 1, "\(daemon.output)")

        try namespace.ip("addr", "del", "192.168.77.2/24", "dev", "eth1")
        #expect(
            try eventually(timeoutSeconds: 5) { try ipvs.virtualServer(nodePort("192.168.77.2")) == nil ? true : nil }
                == true, "\(daemon.output)")
        #expect(try ipvs.virtualServer(nodePort("192.168.77.1")) != nil)
    }

    /// internalTrafficPolicy Local with no endpoint on this node and no external address: the ClusterIP drops
    /// traffic instead of sending it to another node. With policy Cluster the same request is answered.
    @Test func internalLocalWithoutALocalEndpointRefusesTraffic() throws {
        let lab = try ClusterLab()
        let server = try ReplyServer(
            in: lab.podsB[0], address: ClusterLab.podAddress(node: 2, 0), port: 8080, reply: "cache")
        var cache = ServiceManifest(
            name: "cache", clusterIPs: ["10.96.0.41"], endpoints: [(ClusterLab.podAddress(node: 2, 0), "node-b")])
        let folder = try temporaryFolder("internal-local")
        try write(cache.yaml, to: folder, as: "cache.yaml")
        let proxy = try ProxyRun(lab.nodeA)
        try lab.sync(proxy, folder)
        let clusterIP = IPAddress("10.96.0.41")!
        #expect(try request(from: lab.podsA[0], to: clusterIP, port: 80) == "cache")

        cache.internalTrafficPolicy = "Local"
        try write(cache.yaml, to: folder, as: "cache.yaml")
        try lab.sync(proxy, folder)
        // The endpoint's real server is gone, or drains at weight 0 while the first request's connection
        // lingers: either way it takes no new connection.
        #expect(
            try lab.nodeA.ipvs().realServers(of: .address(.tcp, clusterIP, port: 80)).allSatisfy {
                $0.server.weight == 0
            })
        #expect(throws: SocketError.self) {
            try request(from: lab.podsA[0], to: clusterIP, port: 80, timeoutSeconds: 2)
        }
        withExtendedLifetime(server) {}
    }
}
