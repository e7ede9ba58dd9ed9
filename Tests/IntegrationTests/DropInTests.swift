import Foundation
import IPVS
import IPVSModel
import Testing

/// kubeadm v1.34.0's `config.conf`, unedited (Tests/Fixtures/kubeadm/README.md).
private let kubeadmConfig = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/kubeadm/kube-proxy-config.conf").path

private let manifest = """
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: lab}
    spec:
      clusterIP: 10.96.60.1
      ports: [{name: web, port: 80, protocol: TCP, targetPort: 8080}]
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: web-1
      namespace: lab
      labels: {kubernetes.io/service-name: web}
    addressType: IPv4
    ports: [{name: web, port: 8080, protocol: TCP}]
    endpoints:
    - {addresses: ["10.244.0.1"], conditions: {ready: true}}

    """

/// The body of an HTTP response.
private func body(_ response: String) -> String {
    response.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
}

@Suite("ipvs-proxy in kube-proxy's place", .needsKernelIPVS, .timeLimit(.minutes(5)))
struct DropInTests {
    /// kube-proxy's DaemonSet command line, with kubeadm's file: the file's endpoints (10256, 10249), its
    /// cluster CIDR; the folder instead of the file's kubeconfig; kube-proxy's answers on the metrics port.
    @Test func kubeadmsConfigFileRunsTheDaemon() throws {
        let namespace = try TestNamespace("drop-in")
        let ipvs = try namespace.ipvs()
        let folder = try temporaryFolder("drop-in")
        try write(manifest, to: folder, as: "web.yaml")
        let daemon = try Daemon(
            namespace: namespace, manifests: folder, arguments: ["--config", kubeadmConfig, "--logging-format", "json"])
        defer { daemon.stop() }
        let web = VirtualServerKey.address(.tcp, IPAddress("10.96.60.1")!, port: 80)
        let programmed = try eventually(timeoutSeconds: 20) {
            try ipvs.realServers(of: web).count == 1 ? true : nil
        }
        #expect(programmed == true, "\(daemon.output)")

        let mode = try httpGet(port: 10249, path: "/proxyMode")
        #expect(mode.hasPrefix("HTTP/1.1 200 OK"))
        #expect(mode.contains("Content-Type: text/plain"))
        #expect(body(mode) == "ipvs")
        #expect(body(try httpGet(port: 10249, path: "/healthz")) == "ok")

        let configz = try #require(
            try JSONSerialization.jsonObject(with: Data(body(try httpGet(port: 10249, path: "/configz")).utf8))
                as? [String: Any])
        let inUse = try #require(configz["kubeproxy.config.k8s.io"] as? [String: Any])
        #expect(inUse["hostnameOverride"] as? String == "node-a")
        #expect(inUse["clusterCIDR"] as? String == "172.17.0.0/16")
        #expect((inUse["ipvs"] as? [String: Any])?["syncPeriod"] as? String == "30s")

        #expect(try httpGet(port: 10256, path: "/healthz").hasPrefix("HTTP/1.1 200 OK"))
        let metrics = try eventually(timeoutSeconds: 10) { () -> String? in
            let text = try httpGet(port: 10249, path: "/metrics")
            return metric(text, "kubeproxy_sync_proxy_rules_last_timestamp_seconds") > 0 ? text : nil
        }
        let text = try #require(metrics)
        #expect(text.contains("# HELP kubeproxy_sync_proxy_rules_endpoint_changes_pending "))
        #expect(metric(text, #"kubeproxy_proxy_healthz_total{code="200"}"#) >= 1)
        #expect(metric(text, "kubeproxy_sync_proxy_rules_service_changes_pending") == 0)

        // kube-proxy's OOM score, and the flag the file overrode named in a (JSON) warning.
        let score = try String(contentsOfFile: "/proc/\(daemon.process.processIdentifier)/oom_score_adj", encoding: .utf8)
        #expect(score.trimmingCharacters(in: .whitespacesAndNewlines) == "-999")
        let lines = daemon.output.split(separator: "\n")
        let objects = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(!lines.isEmpty && objects.count == lines.count, "\(daemon.output)")
        #expect(
            objects.contains {
                $0["level"] as? String == "warning" && ($0["msg"] as? String)?.contains("ipvs.minSyncPeriod") == true
            }, "\(daemon.output)")
    }

    /// A bad file: exit 2 naming the file and field, and nothing touched.
    @Test func aBadConfigFileChangesNothing() throws {
        let namespace = try TestNamespace("drop-in-bad")
        let ipvs = try namespace.ipvs()
        let folder = try temporaryFolder("drop-in-bad")
        try write(manifest, to: folder, as: "web.yaml")
        let config = try write(
            try String(contentsOfFile: kubeadmConfig, encoding: .utf8).replacingOccurrences(
                of: "  scheduler: \"\"", with: "  schedular: lc"), to: folder, as: "config.conf")
        let result = try ProxyRun(namespace).run(["run", "--config", config, "-f", folder])
        #expect(result.status == 2)
        #expect(result.error.contains("\(config): ipvs.schedular: unknown field"), "\(result.error)")
        #expect(try ipvs.virtualServers().isEmpty)
    }
}
