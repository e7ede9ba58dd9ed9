import Foundation
import IPVSModel
import Testing

/// A folder holding `services` as one manifest file.
private func manifests(_ services: [ServiceManifest]) throws -> String {
    let folder = try temporaryFolder("netfilter")
    try write(services.map(\.yaml).joined(), to: folder, as: "services.yaml")
    return folder
}

/// Connects and returns the reply, or the error as text (`refused`, `timed out`), so that tests can say which.
private func attempt(
    from namespace: TestNamespace, to address: IPAddress, port: UInt16,
    protocol transportProtocol: TransportProtocol = .tcp, timeoutSeconds: Int = 2
) -> String {
    do {
        return try request(
            from: namespace, to: address, port: port, protocol: transportProtocol, timeoutSeconds: timeoutSeconds)
    } catch let error as SocketError where error.code == ECONNREFUSED {
        return "refused"
    } catch let error as SocketError where error.code == EAGAIN || error.code == ETIMEDOUT || error.code == EINPROGRESS
    {
        return "timed out"
    } catch {
        return "\(error)"
    }
}

@Suite("The netfilter half against the kernel, with real traffic", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct NetfilterTests {
    /// NodePort, load-balancer and external-IP traffic to a pod on the other node is masqueraded (policy
    /// Cluster): the pod sees node-a's address and its answers come back through node-a. Without the masquerade
    /// node-b would answer the client straight from the pod's address, and the connection would die.
    @Test func externalTrafficReachesAPodOnTheOtherNodeMasqueraded() throws {
        let lab = try ClusterLab()
        let servers = try [AddressFamily.ipv4, .ipv6].map { family in
            try ReplyServer(
                in: lab.podsB[0], address: ClusterLab.podAddress(node: 2, 0, family: family), port: 8080,
                reply: "web", tellsPeer: true)
        }
        let service = ServiceManifest(
            name: "web", type: "LoadBalancer", clusterIPs: ["10.96.0.10", "fd00:96::10"], nodePort: 30080,
            externalIPs: ["192.0.2.10", "2001:db8::10"], loadBalancerIPs: ["192.0.2.30", "2001:db8::30"],
            endpoints: [
                (ClusterLab.podAddress(node: 2, 0), "node-b"),
                (ClusterLab.podAddress(node: 2, 0, family: .ipv6), "node-b"),
            ])
        try lab.sync(ProxyRun(lab.nodeA), manifests([service]))
        for (address, port, seen) in [
            ("192.168.60.1", 30080, "192.168.60.1"), ("192.0.2.30", 80, "192.168.60.1"),
            ("192.0.2.10", 80, "192.168.60.1"), ("fd00:60::1", 30080, "fd00:60::1"),
            ("2001:db8::30", 80, "fd00:60::1"), ("2001:db8::10", 80, "fd00:60::1"),
        ] {
            #expect(
                attempt(from: lab.client, to: IPAddress(address)!, port: UInt16(port)) == "web from \(seen)",
                "\(address):\(port)")
        }
        withExtendedLifetime(servers) {}
    }

    /// externalTrafficPolicy Local: nothing is masqueraded, and the client's own address reaches the pod.
    @Test func externalTrafficPolicyLocalKeepsTheClientsAddress() throws {
        let lab = try ClusterLab()
        let servers = try [AddressFamily.ipv4, .ipv6].map { family in
            try ReplyServer(
                in: lab.podsA[0], address: ClusterLab.podAddress(node: 1, 0, family: family), port: 8080,
                reply: "local", tellsPeer: true)
        }
        let service = ServiceManifest(
            name: "local", type: "LoadBalancer", clusterIPs: ["10.96.0.11", "fd00:96::11"], nodePort: 30081,
            loadBalancerIPs: ["192.0.2.31", "2001:db8::31"], externalTrafficPolicy: "Local",
            endpoints: [
                (ClusterLab.podAddress(node: 1, 0), "node-a"),
                (ClusterLab.podAddress(node: 1, 0, family: .ipv6), "node-a"),
            ])
        try lab.sync(ProxyRun(lab.nodeA), manifests([service]))
        for (address, port, seen) in [
            ("192.0.2.31", 80, "192.168.60.100"), ("192.168.60.1", 30081, "192.168.60.100"),
            ("2001:db8::31", 80, "fd00:60::100"), ("fd00:60::1", 30081, "fd00:60::100"),
        ] {
            #expect(attempt(from: lab.client, to: IPAddress(address)!, port: UInt16(port)) == "local from \(seen)")
        }
        withExtendedLifetime(servers) {}
    }

    /// ClusterIP traffic from a pod keeps the pod's address; from outside the cluster CIDR it is masqueraded,
    /// and so is traffic from the node itself, which would otherwise leave with the ClusterIP as its source.
    @Test func clusterIPTrafficIsMasqueradedFromOutsideTheClusterOnly() throws {
        let lab = try ClusterLab()
        let servers = try [AddressFamily.ipv4, .ipv6].map { family in
            try ReplyServer(
                in: lab.podsB[0], address: ClusterLab.podAddress(node: 2, 0, family: family), port: 8080,
                reply: "api", tellsPeer: true)
        }
        let service = ServiceManifest(
            name: "api", clusterIPs: ["10.96.0.12", "fd00:96::12"],
            endpoints: [
                (ClusterLab.podAddress(node: 2, 0), "node-b"),
                (ClusterLab.podAddress(node: 2, 0, family: .ipv6), "node-b"),
            ])
        try lab.sync(ProxyRun(lab.nodeA), manifests([service]))
        let v4 = IPAddress("10.96.0.12")!
        let v6 = IPAddress("fd00:96::12")!
        #expect(attempt(from: lab.podsA[0], to: v4, port: 80) == "api from 10.244.1.2")
        #expect(attempt(from: lab.podsA[0], to: v6, port: 80) == "api from fd00:244:1::2")
        #expect(attempt(from: lab.client, to: v4, port: 80) == "api from 192.168.60.1")
        #expect(attempt(from: lab.client, to: v6, port: 80) == "api from fd00:60::1")
        #expect(attempt(from: lab.nodeA, to: v4, port: 80) == "api from 192.168.60.1")
        #expect(attempt(from: lab.nodeA, to: v6, port: 80) == "api from fd00:60::1")
        withExtendedLifetime(servers) {}
    }

    /// The node's own connections to its node ports are masqueraded, as kube-proxy's nat OUTPUT does (policy
    /// Cluster): from node-a to an address of its own that node-b has no route to, the pod on node-a sees
    /// node-a's address on the pods' bridge and the pod on node-b, reached, node-a's address on the LAN. Without
    /// the masquerade both see the outside address, and node-b cannot answer. Policy Local keeps the address the
    /// connection went to, as in kube-proxy; a port that is no node port (the health-check node port's server,
    /// played by a listener on node-a) is left alone.
    @Test func theNodesOwnConnectionsToItsNodePortsAreMasqueraded() throws {
        let lab = try ClusterLab(outsideAddresses: true)
        var servers = try [AddressFamily.ipv4, .ipv6].flatMap { family in
            try [
                ReplyServer(
                    in: lab.podsA[0], address: ClusterLab.podAddress(node: 1, 0, family: family), port: 8080,
                    reply: "pod-a", tellsPeer: true),
                ReplyServer(
                    in: lab.podsB[0], address: ClusterLab.podAddress(node: 2, 0, family: family), port: 8080,
                    reply: "pod-b", tellsPeer: true),
            ]
        }
        servers.append(
            try ReplyServer(in: lab.nodeA, address: IPAddress("::")!, port: 32088, reply: "health", tellsPeer: true))
        let both = ServiceManifest(
            name: "both", type: "NodePort", clusterIPs: ["10.96.0.19", "fd00:96::19"], nodePort: 30087,
            endpoints: [
                (ClusterLab.podAddress(node: 1, 0), "node-a"), (ClusterLab.podAddress(node: 2, 0), "node-b"),
                (ClusterLab.podAddress(node: 1, 0, family: .ipv6), "node-a"),
                (ClusterLab.podAddress(node: 2, 0, family: .ipv6), "node-b"),
            ])
        let local = ServiceManifest(
            name: "local", type: "LoadBalancer", clusterIPs: ["10.96.0.20", "fd00:96::20"], nodePort: 30088,
            externalTrafficPolicy: "Local", healthCheckNodePort: 32088,
            endpoints: [
                (ClusterLab.podAddress(node: 1, 0), "node-a"),
                (ClusterLab.podAddress(node: 1, 0, family: .ipv6), "node-a"),
            ])
        try lab.sync(ProxyRun(lab.nodeA), manifests([both, local]))
        for (outside, bridge, lan) in [
            (ClusterLab.nodeAOutsideAddress, "10.244.1.1", "192.168.60.1"),
            (ClusterLab.nodeAOutsideAddressV6, "fd00:244:1::1", "fd00:60::1"),
        ] {
            // Round robin over the two endpoints: two connections reach each.
            let replies = (0..<4).map { _ in attempt(from: lab.nodeA, to: outside, port: 30087) }
            #expect(
                replies.sorted() == [
                    "pod-a from \(bridge)", "pod-a from \(bridge)", "pod-b from \(lan)", "pod-b from \(lan)",
                ], "\(outside)")
            #expect(attempt(from: lab.nodeA, to: outside, port: 30088) == "pod-a from \(outside)")
            #expect(attempt(from: lab.nodeA, to: outside, port: 32088) == "health from \(outside)")
        }
        withExtendedLifetime(servers) {}
    }

    /// A pod that reaches itself through its own Service is masqueraded, so its answer comes back to it.
    @Test func aPodReachingItselfThroughItsServiceIsAnswered() throws {
        let lab = try ClusterLab()
        let servers = try [AddressFamily.ipv4, .ipv6].map { family in
            try ReplyServer(
                in: lab.podsA[0], address: ClusterLab.podAddress(node: 1, 0, family: family), port: 8080,
                reply: "self", tellsPeer: true)
        }
        let service = ServiceManifest(
            name: "self", clusterIPs: ["10.96.0.13", "fd00:96::13"],
            endpoints: [
                (ClusterLab.podAddress(node: 1, 0), "node-a"),
                (ClusterLab.podAddress(node: 1, 0, family: .ipv6), "node-a"),
            ])
        try lab.sync(ProxyRun(lab.nodeA), manifests([service]))
        #expect(attempt(from: lab.podsA[0], to: IPAddress("10.96.0.13")!, port: 80) == "self from 10.244.1.1")
        #expect(attempt(from: lab.podsA[0], to: IPAddress("fd00:96::13")!, port: 80) == "self from fd00:244:1::1")
        withExtendedLifetime(servers) {}
    }

    /// A host daemon listening on every address does not answer on service addresses (only the Services'
    /// ports are let in there), while it still answers on the node's own address.
    @Test func serviceAddressesTakeOnlyTheirServicesPorts() throws {
        let lab = try ClusterLab()
        let daemon = try ReplyServer(in: lab.nodeA, address: IPAddress("0.0.0.0")!, port: 2222, reply: "sshd")
        let server = try ReplyServer(
            in: lab.podsB[0], address: ClusterLab.podAddress(node: 2, 0), port: 8080, reply: "web")
        let service = ServiceManifest(
            name: "web", type: "LoadBalancer", clusterIPs: ["10.96.0.14"], nodePort: 30084,
            externalIPs: ["192.0.2.14"], loadBalancerIPs: ["192.0.2.34"],
            endpoints: [(ClusterLab.podAddress(node: 2, 0), "node-b")])
        try lab.sync(ProxyRun(lab.nodeA), manifests([service]))
        #expect(attempt(from: lab.client, to: ClusterLab.nodeAAddress, port: 2222) == "sshd")
        for address in ["10.96.0.14", "192.0.2.14", "192.0.2.34"] {
            #expect(attempt(from: lab.client, to: IPAddress(address)!, port: 2222) == "refused", "\(address)")
            #expect(attempt(from: lab.client, to: IPAddress(address)!, port: 80) == "web", "\(address)")
        }
        withExtendedLifetime((daemon, server)) {}
    }

    /// loadBalancerSourceRanges let only their sources reach the load-balancer IP; the Service's ClusterIP and
    /// node port stay open to everyone, as in kube-proxy.
    @Test func sourceRangesLetOnlyTheirSourcesIn() throws {
        let lab = try ClusterLab()
        let server = try ReplyServer(
            in: lab.podsB[0], address: ClusterLab.podAddress(node: 2, 0), port: 8080, reply: "edge")
        let service = ServiceManifest(
            name: "edge", type: "LoadBalancer", clusterIPs: ["10.96.0.15"], nodePort: 30085,
            loadBalancerIPs: ["192.0.2.35"], sourceRanges: ["192.168.60.100/32"],
            endpoints: [(ClusterLab.podAddress(node: 2, 0), "node-b")])
        try lab.sync(ProxyRun(lab.nodeA), manifests([service]))
        let loadBalancer = IPAddress("192.0.2.35")!
        #expect(attempt(from: lab.client, to: loadBalancer, port: 80) == "edge")
        #expect(attempt(from: lab.otherClient, to: loadBalancer, port: 80) == "timed out")
        #expect(attempt(from: lab.otherClient, to: IPAddress("10.96.0.15")!, port: 80) == "edge")
        #expect(attempt(from: lab.otherClient, to: ClusterLab.nodeAAddress, port: 30085) == "edge")
        withExtendedLifetime(server) {}
    }

    /// A sync with nothing changed sends no nftables transaction: the ruleset stays byte for byte, rule handles
    /// included. A foreign table survives sync and cleanup; cleanup removes ipvs-proxy's tables and nothing else.
    @Test func nothingChangedLeavesTheRulesetAsItWasAndForeignTablesStay() throws {
        let lab = try ClusterLab()
        try lab.nodeA.exec(
            Tools.nft,
            [
                "add table inet foreign; add chain inet foreign input { type filter hook input priority 10; policy accept; }; "
                    + "add set inet foreign blocked { type ipv4_addr; elements = { 203.0.113.9 } }"
            ])
        let proxy = try ProxyRun(lab.nodeA)
        let folder = try manifests([
            ServiceManifest(
                name: "web", clusterIPs: ["10.96.0.16", "fd00:96::16"],
                endpoints: [(ClusterLab.podAddress(node: 2, 0), "node-b")])
        ])
        try lab.sync(proxy, folder)
        let before = try lab.nodeA.ruleset()
        #expect(before.contains("table ip ipvs-proxy"))
        #expect(before.contains("table ip6 ipvs-proxy"))
        let again = try proxy.syncJSON([
            "-f", folder, "--node-name", "node-a", "--cluster-cidr", ClusterLab.clusterCIDRs,
        ])
        #expect(again.status == 0, "\(again.result.error)")
        #expect(again.summary["nftables", "transactions"] == 0)
        #expect(try lab.nodeA.ruleset() == before)

        #expect(try proxy("cleanup").status == 0)
        let after = try lab.nodeA.ruleset()
        #expect(!after.contains("ipvs-proxy"))
        #expect(after.contains("table inet foreign"))
        #expect(after.contains("203.0.113.9"))
    }

    /// What someone else changes in ipvs-proxy's table is repaired at the next full sync: an element removed,
    /// a foreign element added, a rule deleted.
    @Test func tamperingIsRepairedAtTheNextSync() throws {
        let lab = try ClusterLab()
        let daemon = try ReplyServer(in: lab.nodeA, address: IPAddress("0.0.0.0")!, port: 2222, reply: "sshd")
        let server = try ReplyServer(
            in: lab.podsB[0], address: ClusterLab.podAddress(node: 2, 0), port: 8080, reply: "web")
        let proxy = try ProxyRun(lab.nodeA)
        let folder = try manifests([
            ServiceManifest(
                name: "web", clusterIPs: ["10.96.0.17"], endpoints: [(ClusterLab.podAddress(node: 2, 0), "node-b")])
        ])
        try lab.sync(proxy, folder)
        let clean = try lab.nodeA.exec(Tools.nft, ["list", "table", "ip", "ipvs-proxy"]).output

        // An element removed: the ClusterIP's port is refused; a foreign element let in.
        try lab.nodeA.exec(Tools.nft, ["delete element ip ipvs-proxy cluster-ips { 10.96.0.17 . tcp . 80 }"])
        try lab.nodeA.exec(Tools.nft, ["add element ip ipvs-proxy cluster-ips { 10.96.0.17 . tcp . 2222 }"])
        #expect(attempt(from: lab.client, to: IPAddress("10.96.0.17")!, port: 80) == "refused")
        #expect(attempt(from: lab.client, to: IPAddress("10.96.0.17")!, port: 2222) == "sshd")
        try lab.sync(proxy, folder)
        #expect(try lab.nodeA.exec(Tools.nft, ["list", "table", "ip", "ipvs-proxy"]).output == clean)
        #expect(attempt(from: lab.client, to: IPAddress("10.96.0.17")!, port: 80) == "web")
        #expect(attempt(from: lab.client, to: IPAddress("10.96.0.17")!, port: 2222) == "refused")

        // A rule deleted (the filter's): the table is written whole again.
        let listing = try lab.nodeA.exec(Tools.nft, ["-a", "list", "chain", "ip", "ipvs-proxy", "input"]).output
        let handle = try #require(
            listing.split(separator: "\n").first { $0.contains("reject") }?.split(separator: " ").last)
        try lab.nodeA.exec(Tools.nft, ["delete rule ip ipvs-proxy input handle \(handle)"])
        #expect(attempt(from: lab.client, to: IPAddress("10.96.0.17")!, port: 2222) == "sshd")
        try lab.sync(proxy, folder)
        #expect(try lab.nodeA.exec(Tools.nft, ["list", "table", "ip", "ipvs-proxy"]).output == clean)
        #expect(attempt(from: lab.client, to: IPAddress("10.96.0.17")!, port: 2222) == "refused")
        withExtendedLifetime((daemon, server)) {}
    }

    /// Bad netfilter flags are usage errors, before anything is changed.
    @Test func badNetfilterFlagsChangeNothing() throws {
        let namespace = try TestNamespace("badnetfilter")
        let proxy = try ProxyRun(namespace)
        let folder = try manifests([ServiceManifest(name: "web", clusterIPs: ["10.96.0.18"])])
        for (flags, message) in [
            (["--cluster-cidr", "10.244.0.0/33"], "--cluster-cidr: '10.244.0.0/33' is not a network"),
            (["--detect-local-mode", "Bridge"], "--detect-local-mode: 'Bridge' is not"),
            (["--iptables-masquerade-bit", "32"], "--iptables-masquerade-bit: 32 is not a bit"),
        ] {
            let result = try proxy(["sync", "-f", folder] + flags)
            #expect(result.status == 2, "\(flags)")
            #expect(result.error.contains(message), "\(result.error)")
        }
        #expect(try namespace.ipvsadmRules().isEmpty)
        #expect(!(try namespace.ruleset().contains("ipvs-proxy")))
    }
}
