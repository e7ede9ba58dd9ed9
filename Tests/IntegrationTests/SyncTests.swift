import Foundation
import IPVSModel
import Testing

/// What kube-proxy's IPVS mode programs on node-a (node address 192.168.1.10) for the recorded cluster, as
/// `ipvsadm -Sn` saves it; worked out by hand from Tests/Fixtures/recorded-api/README.md.
private let recordedClusterRules = [
    "-A -t 10.96.0.1:443 -s rr",  // default/kubernetes: no endpoints were recorded
    "-A -t 10.97.11.90:8080 -s rr", "-a -t 10.97.11.90:8080 -r 10.244.1.60:8080 -m -w 1",
    "-A -t [fd00:10:96::14a2]:8080 -s rr", "-a -t [fd00:10:96::14a2]:8080 -r [fd00:10:244:1::3c]:8080 -m -w 1",
    "-A -t [fd00:10:96::b3a4]:8080 -s rr", "-a -t [fd00:10:96::b3a4]:8080 -r [fd00:10:244:1::3c]:8080 -m -w 1",
    // checkout: NodePort, externalTrafficPolicy Local; the cluster IP keeps every endpoint.
    "-A -t 10.98.113.234:443 -s rr", "-a -t 10.98.113.234:443 -r 10.244.1.20:8443 -m -w 1",
    "-a -t 10.98.113.234:443 -r 10.244.2.21:8443 -m -w 1",
    "-A -t 192.0.2.10:443 -s rr", "-a -t 192.0.2.10:443 -r 10.244.1.20:8443 -m -w 1",
    "-A -t 192.168.1.10:31386 -s rr", "-a -t 192.168.1.10:31386 -r 10.244.1.20:8443 -m -w 1",
    // dns: ClientIP affinity for 600 s on both protocols.
    "-A -u 10.96.34.202:53 -s rr -p 600", "-a -u 10.96.34.202:53 -r 10.244.1.40:53 -m -w 1",
    "-a -u 10.96.34.202:53 -r 10.244.2.41:53 -m -w 1",
    "-A -t 10.96.34.202:53 -s rr -p 600", "-a -t 10.96.34.202:53 -r 10.244.1.40:53 -m -w 1",
    "-a -t 10.96.34.202:53 -r 10.244.2.41:53 -m -w 1",
    // edge: LoadBalancer with ingress 192.0.2.30 and node port 32276.
    "-A -t 10.96.77.62:80 -s rr", "-a -t 10.96.77.62:80 -r 10.244.1.30:8080 -m -w 1",
    "-a -t 10.96.77.62:80 -r 10.244.2.31:8080 -m -w 1",
    "-A -t 192.0.2.30:80 -s rr", "-a -t 192.0.2.30:80 -r 10.244.1.30:8080 -m -w 1",
    "-a -t 192.0.2.30:80 -r 10.244.2.31:8080 -m -w 1",
    "-A -t 192.168.1.10:32276 -s rr", "-a -t 192.168.1.10:32276 -r 10.244.1.30:8080 -m -w 1",
    "-a -t 192.168.1.10:32276 -r 10.244.2.31:8080 -m -w 1",
    // legacy-db: its mirrored slice; 172.16.5.12 is not ready.
    "-A -t 10.104.184.199:3306 -s rr", "-a -t 10.104.184.199:3306 -r 172.16.5.10:3306 -m -w 1",
    "-a -t 10.104.184.199:3306 -r 172.16.5.11:3306 -m -w 1",
    // web: named target port http is 8080; only the ready endpoints (10.244.2.6 is not ready, 10.244.3.7 is
    // terminating while others are ready).
    "-A -t 10.105.23.164:80 -s rr", "-a -t 10.105.23.164:80 -r 10.244.1.5:8080 -m -w 1",
    "-a -t 10.105.23.164:80 -r 10.244.1.8:8080 -m -w 1",
    "-A -t 10.105.23.164:9090 -s rr", "-a -t 10.105.23.164:9090 -r 10.244.1.5:9100 -m -w 1",
    "-a -t 10.105.23.164:9090 -r 10.244.1.8:9100 -m -w 1",
].sorted()

private let recordedServiceAddresses: Set<String> = [
    "10.96.0.1", "10.97.11.90", "fd00:10:96::14a2", "fd00:10:96::b3a4", "10.98.113.234", "192.0.2.10",
    "10.96.34.202", "10.96.77.62", "192.0.2.30", "10.104.184.199", "10.105.23.164",
]

private let node = ["--node-name", "node-a", "--node-ip", "192.168.1.10"]

@Suite("ipvs-proxy sync against the kernel", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct SyncCommandTests {
    @Test func theRecordedClusterBecomesWhatKubeProxyWouldProgram() throws {
        let namespace = try TestNamespace("sync")
        let proxy = try ProxyRun(namespace)
        let first = try proxy.syncJSON(["-f", recorded("kubectl-get-all.yaml")] + node)
        #expect(first.status == 0, "\(first.result.error)")
        #expect(try namespace.ipvsadmRules() == recordedClusterRules)
        #expect(first.summary["virtualServers", "added"] == 15)
        #expect(first.summary["realServers", "added"] == 23)
        #expect(first.summary["addresses", "bound"] == 11)

        let interfaces = try namespace.interfaces()
        let link = try #require(try interfaces.link(named: "kube-ipvs0"))
        #expect(link.kind == "dummy")
        let bound = try interfaces.addresses().filter { $0.linkIndex == link.index && !$0.address.isLinkLocal }
        #expect(Set(bound.map(\.address.description)) == recordedServiceAddresses)

        // Nothing changed: nothing written.
        let second = try proxy.syncJSON(["-f", recorded("kubectl-get-all.json")] + node)
        #expect(second.status == 0)
        #expect(second.summary["writeOperations"] as? Int == 0)
        #expect(try namespace.ipvsadmRules() == recordedClusterRules)

        // show names each virtual server's Service port.
        let shown = try proxy("show", "--output", "json").output
        let json = try #require(try JSONSerialization.jsonObject(with: Data(shown.utf8)) as? [String: Any])
        let servers = try #require(json["virtualServers"] as? [[String: Any]])
        let web = servers.first { $0["address"] as? String == "10.105.23.164" && $0["port"] as? Int == 80 }
        #expect(web?["service"] as? String == "shop/web:http")
        #expect(try proxy("show").output.contains("TCP  10.96.34.202:53 rr persistent 600  # shop/dns:dns-tcp"))
    }

    @Test func anEndpointGoneIsOneDeletePerVirtualServer() throws {
        let namespace = try TestNamespace("sync-change")
        let proxy = try ProxyRun(namespace)
        let folder = try temporaryFolder("manifests")
        let original = try String(contentsOfFile: recorded("kubectl-get-all.yaml"), encoding: .utf8)
        let file = try write(original, to: folder, as: "cluster.yaml")
        #expect(try proxy.syncJSON(["-f", folder] + node).status == 0)

        // 10.244.1.8 leaves web-q4m8z: one delete on each of web's two virtual servers, nothing else.
        let changed = original.replacingOccurrences(
            of: "  - addresses:\n    - 10.244.1.8\n", with: "  - addresses:\n    - 10.244.1.9\n")
        #expect(changed != original)
        try write(changed, to: folder, as: "cluster.yaml")
        let result = try proxy.syncJSON(["-f", file] + node)
        #expect(result.status == 0)
        #expect(result.summary["realServers", "deleted"] == 2)
        #expect(result.summary["realServers", "added"] == 2)
        #expect(result.summary["writeOperations"] as? Int == 4)
        let rules = try namespace.ipvsadmRules()
        #expect(rules.contains("-a -t 10.105.23.164:80 -r 10.244.1.9:8080 -m -w 1"))
        #expect(!rules.contains("-a -t 10.105.23.164:80 -r 10.244.1.8:8080 -m -w 1"))

        // The scheduler changes: edits only.
        let edited = try proxy.syncJSON(["-f", file, "--scheduler", "lc"] + node)
        #expect(edited.summary["virtualServers", "edited"] == 15)
        #expect(edited.summary["writeOperations"] as? Int == 15)
    }

    @Test func foreignVirtualServersSurviveSyncAndCleanup() throws {
        let namespace = try TestNamespace("foreign")
        let proxy = try ProxyRun(namespace)
        let ipvs = try namespace.ipvs()
        // One at a key web wants, one elsewhere (keepalived's, say).
        let wanted = VirtualServerKey.address(.tcp, IPAddress("10.105.23.164")!, port: 80)
        let elsewhere = VirtualServerKey.address(.tcp, IPAddress("192.168.50.1")!, port: 80)
        try ipvs.add(VirtualServer(wanted, scheduler: .weightedLeastConnection))
        try ipvs.add(RealServer(IPAddress("192.168.50.7")!, port: 80), to: wanted)
        try ipvs.add(VirtualServer(elsewhere))
        try ipvs.add(RealServer(IPAddress("192.168.50.8")!, port: 80), to: elsewhere)
        let foreignRules = try namespace.ipvsadmRules()

        let result = try proxy.syncJSON(["-f", recorded("kubectl-get-all.yaml")] + node)
        #expect(result.status == 3)
        #expect(
            (result.summary["blocked"] as? [[String: Any]])?.first?["virtualServer"] as? String
                == "TCP 10.105.23.164:80")
        let rules = try namespace.ipvsadmRules()
        #expect(Set(foreignRules).isSubset(of: Set(rules)))
        #expect(!rules.contains { $0.contains("10.105.23.164:80 -r 10.244") })
        #expect(rules.contains("-a -t 10.105.23.164:9090 -r 10.244.1.5:9100 -m -w 1"))

        // kube-proxy's way to ask for it (`cleanup` does the same; the other tests use that).
        let cleanup = try proxy("run", "--cleanup")
        #expect(cleanup.status == 0, "\(cleanup.error)")
        #expect(cleanup.output.contains("virtual servers: "), "\(cleanup.output)")
        #expect(try namespace.ipvsadmRules() == foreignRules)
        #expect(try namespace.interfaces().link(named: "kube-ipvs0") == nil)
    }

    @Test func badInputChangesNothing() throws {
        let namespace = try TestNamespace("bad")
        let proxy = try ProxyRun(namespace)
        let folder = try temporaryFolder("bad")
        try write(
            try String(contentsOfFile: recorded("kubectl-get-all.yaml"), encoding: .utf8), to: folder, as: "a.yaml")
        try write(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: broken\nspec:\n  clusterIP: 10.96.9.9\n  ports:\n  - port: 0\n",
            to: folder, as: "b.yaml")
        let result = try proxy("sync", "-f", folder)
        #expect(result.status == 2)
        #expect(
            result.error.contains(
                "b.yaml: document 1 (Service default/broken): spec.ports[0].port: must be a port number 1-65535, not 0")
        )
        #expect(try namespace.ipvsadmRules().isEmpty)
        #expect(try namespace.interfaces().link(named: "kube-ipvs0") == nil)
    }

    @Test func dryRunPrintsThePlanAndChangesNothing() throws {
        let namespace = try TestNamespace("dry")
        let proxy = try ProxyRun(namespace)
        let result = try proxy.run(["sync", "-f", recorded("kubectl-get-all.yaml"), "--dry-run"] + node)
        #expect(result.status == 0)
        #expect(result.output.contains("dry run: 38 IPVS operations planned, nothing changed"))
        #expect(result.output.contains("add-virtual-server UDP 10.96.34.202:53 scheduler rr persistent 600"))
        #expect(result.output.contains("bind 10.105.23.164"))
        #expect(try namespace.ipvsadmRules().isEmpty)
    }

    @Test func anEmptyInputDoesNotWipeWhatIsOwnedUnlessAllowed() throws {
        let namespace = try TestNamespace("empty")
        let proxy = try ProxyRun(namespace)
        #expect(try proxy.syncJSON(["-f", recorded("kubectl-get-all.yaml")] + node).status == 0)
        let folder = try temporaryFolder("empty")
        let refused = try proxy("sync", "-f", folder)
        #expect(refused.status == 2)
        #expect(refused.error.contains("pass --allow-empty"))
        #expect(try namespace.ipvsadmRules() == recordedClusterRules)
        let allowed = try proxy.syncJSON(["-f", folder, "--allow-empty"])
        #expect(allowed.status == 0)
        #expect(allowed.summary["virtualServers", "deleted"] == 15)
        #expect(try namespace.ipvsadmRules().isEmpty)
    }
}
