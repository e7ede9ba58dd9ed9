import Foundation
import IPVS
import IPVSModel
import Testing

/// A ClusterIP Service with one ready endpoint on node-a.
private func clusterService(_ name: String, _ clusterIP: String) -> ServiceManifest {
    ServiceManifest(name: name, clusterIPs: [clusterIP], endpoints: [(IPAddress("10.244.1.2")!, "node-a")])
}

private func key(_ clusterIP: String) -> VirtualServerKey { .address(.tcp, IPAddress(clusterIP)!, port: 80) }

/// The port a flood goes to, and how a client asks it.
private enum Target: String {
    case healthz
    case healthCheckNodePort = "health-check-node-port"
    case metrics
}

/// Issue 21: idle connections to a port anyone who reaches the node can open took the daemon to its descriptor
/// limit, after which its syncs failed and its folder listing emptied the cluster. Here the daemon starts with a
/// descriptor limit of 1024 soft and 2048 hard (set by `test_spawn` in the child before exec, as
/// `descriptorLimit`), below the 5,000 connections the flood holds to one port; it must raise the soft limit to
/// 2048 and keep its connections within a budget of that, so that every virtual server stays in the kernel, a
/// Service added or removed during the flood reaches the kernel within 5 s, and the port answers again within
/// 3 s of the flood's end.
@Suite("HTTP floods against ipvs-proxy run", .needsKernelIPVS, .serialized, .timeLimit(.minutes(10)))
struct FloodTests {
    @Test func aFloodOfTheHealthzPortLeavesTheProxyWorking() throws {
        try flood(.healthz)
    }

    @Test func aFloodOfAHealthCheckNodePortLeavesTheProxyWorking() throws {
        try flood(.healthCheckNodePort)
    }

    @Test func aFloodOfTheMetricsPortLeavesTheProxyWorking() throws {
        try flood(.metrics)
    }

    private func flood(_ target: Target) throws {
        let began = Date()
        try ConnectionFlood.raiseDescriptorLimit(atLeast: 12_000)
        let namespace = try TestNamespace("flood")
        let ipvs = try namespace.ipvs()
        let folder = try temporaryFolder("flood")
        var stable = ["10.96.60.1", "10.96.60.2", "10.96.60.3"]
        for (index, clusterIP) in stable.enumerated() {
            try write(clusterService("svc-\(index + 1)", clusterIP).yaml, to: folder, as: "svc-\(index + 1).yaml")
        }
        let healthCheckNodePort = 32061
        if target == .healthCheckNodePort {
            let edge = ServiceManifest(
                name: "edge", type: "LoadBalancer", clusterIPs: ["10.96.60.9"], nodePort: 30061,
                loadBalancerIPs: ["192.0.2.61"], externalTrafficPolicy: "Local",
                healthCheckNodePort: healthCheckNodePort, endpoints: [(IPAddress("10.244.1.3")!, "node-a")])
            try write(edge.yaml, to: folder, as: "edge.yaml")
            stable.append("10.96.60.9")
        }
        let healthzPort = Int.random(in: 20000...29000)
        let metricsPort = healthzPort + 1
        // Under the VM's emulated CPUs the daemon accepts about a hundred connections a second. Held for 20 s,
        // they reach the server's cap before the timeout frees any, as a flood on a real node does at once; and
        // without the cap they would reach the daemon's soft limit of 1024 (issue 21) within the timeout. The cap
        // is 512 rather than the default 1024 so that the daemon tears the flood's connections down within the
        // 3 s the test allows once it stops (the unit tests cover the default).
        let requestTimeout = 20.0
        let cap = 512
        let daemon = try Daemon(
            namespace: namespace, manifests: folder,
            arguments: [
                "--healthz-bind-address", "127.0.0.1:\(healthzPort)", "--metrics-bind-address",
                "127.0.0.1:\(metricsPort)", "--sync-period", "1s", "--http-request-timeout", "\(Int(requestTimeout))s",
                "--http-max-connections", "\(cap)",
                "--log-level", "info",
            ],
            descriptorLimit: (soft: 1024, hard: 2048))
        defer { daemon.stop() }

        /// What the flooded port answers a normal client, or `nil`.
        func answer() -> String? {
            switch target {
            case .healthz: try? httpGet(port: healthzPort, path: "/healthz")
            case .metrics: try? httpGet(port: metricsPort, path: "/metrics")
            case .healthCheckNodePort:
                try? namespace.perform { try httpGet(port: healthCheckNodePort, path: "/") }
            }
        }
        let keys = Set(stable.map(key))
        let programmed = try eventually(timeoutSeconds: 60) {
            try keys.isSubset(of: Set(ipvs.virtualServers().map(\.server.key))) ? true : nil
        }
        #expect(programmed == true, "\(daemon.output)")
        #expect(eventually(timeoutSeconds: 20) { answer()?.hasPrefix("HTTP/1.1 200 OK") == true ? true : nil } == true)
        #expect(
            daemon.output.contains("open-file limit raised to the hard limit")
                && daemon.output.contains("after=soft 2048, hard 2048"), "\(daemon.output)")
        let ready = Date()

        let expected = LockedBox(keys)
        let sampler = VirtualServerSampler(try namespace.ipvs(), every: 0.1) { expected.value }
        let flood = ConnectionFlood(
            to: IPAddress("127.0.0.1")!,
            port: UInt16(target == .healthz ? healthzPort : target == .metrics ? metricsPort : healthCheckNodePort),
            count: 5000, in: target == .healthCheckNodePort ? namespace : nil)
        let floodStarted = Date()
        // The server is full once it refuses: connections it ends as soon as they are made.
        let full = eventually(timeoutSeconds: 45) { flood.report.endedAtOnce >= 20 ? Date() : nil }
        #expect(full != nil, "the server never refused a connection: \(flood.report)")

        // During the flood: a new Service reaches the kernel, and a removed one leaves it, each within 5 s.
        try write(clusterService("svc-4", "10.96.60.4").yaml, to: folder, as: "svc-4.yaml")
        let added = try eventually(timeoutSeconds: 5) { try ipvs.virtualServer(key("10.96.60.4")) }
        #expect(added != nil, "svc-4 did not reach the kernel within 5 s during the flood")
        if added != nil { expected.value.insert(key("10.96.60.4")) }
        expected.value.remove(key("10.96.60.3"))
        try FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent("svc-3.yaml"))
        let removed = try eventually(timeoutSeconds: 5) {
            try ipvs.virtualServer(key("10.96.60.3")) == nil ? true : nil
        }
        #expect(removed == true, "svc-3 did not leave the kernel within 5 s during the flood")
        // Long enough for connections to be closed by the request timeout.
        _ = eventually(timeoutSeconds: requestTimeout + 2) {
            Date().timeIntervalSince(floodStarted) > requestTimeout + 1.5 ? true : nil
        }

        let flooding = flood.stop()
        let samples = sampler.stop()
        let floodEnded = Date()
        #expect(samples.misses.isEmpty && samples.failures.isEmpty, "\(samples)\n\(daemon.output.suffix(4000))")
        #expect(samples.longestGap <= 0.5, "\(samples)")
        let back = eventually(timeoutSeconds: 3, every: 0.05) {
            answer()?.hasPrefix("HTTP/1.1 200 OK") == true ? Date() : nil
        }
        #expect(back != nil, "the \(target.rawValue) port did not answer within 3 s of the flood's end")

        let metrics = try #require(eventually(timeoutSeconds: 3) { try? httpGet(port: metricsPort, path: "/metrics") })
        let refused = metric(metrics, #"ipvs_proxy_http_connections_refused_total{endpoint="\#(target.rawValue)"}"#)
        let timedOut = metric(metrics, #"ipvs_proxy_http_connections_timed_out_total{endpoint="\#(target.rawValue)"}"#)
        #expect(refused > 0)
        #expect(timedOut > 0)
        #expect(daemon.output.contains("refusing HTTP connections"))
        func seconds(_ from: Date, _ to: Date?) -> String {
            to.map { String(format: "%.1f s", $0.timeIntervalSince(from)) } ?? "never"
        }
        print(
            "flood of the \(target.rawValue) port: \(flooding); daemon refused \(Int(refused)), timed out "
                + "\(Int(timedOut)); sampler: \(samples); full after \(seconds(floodStarted, full)); answered "
                + "again after \(seconds(floodEnded, back)); setup \(seconds(began, ready)), whole case "
                + "\(seconds(began, Date())) (in the VM)")
        #expect(daemon.stop() == 0)
    }
}
