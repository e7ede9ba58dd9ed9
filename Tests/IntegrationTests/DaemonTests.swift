import Foundation
import IPVS
import IPVSModel
import Testing

private let web = VirtualServerKey.address(.tcp, IPAddress("10.96.50.1")!, port: 80)

/// The real servers of `key` as `address:port` strings, sorted.
private func reals(_ ipvs: IPVSHandle, _ key: VirtualServerKey) throws -> [String] {
    try ipvs.realServers(of: key).map(\.server.key.description).sorted()
}

@Suite("ipvs-proxy run against the kernel", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct DaemonTests {
    @Test func aFileChangeReachesTheKernelQuickly() throws {
        let namespace = try TestNamespace("daemon")
        let ipvs = try namespace.ipvs()
        let folder = try temporaryFolder("watched")
        try write(service("web", clusterIP: "10.96.50.1", endpoints: ["10.244.0.1"]), to: folder, as: "web.yaml")
        let daemon = try Daemon(namespace: namespace, manifests: folder)
        defer { daemon.stop() }
        #expect(
            try eventually(timeoutSeconds: 20) { try reals(ipvs, web) == ["10.244.0.1:8080"] ? true : nil } == true,
            "\(daemon.output)")

        let started = Date()
        try write(
            service("web", clusterIP: "10.96.50.1", endpoints: ["10.244.0.1", "10.244.0.2"]), to: folder, as: "web.yaml"
        )
        let arrived = try eventually(timeoutSeconds: 10) {
            try reals(ipvs, web) == ["10.244.0.1:8080", "10.244.0.2:8080"] ? Date() : nil
        }
        let latency = try #require(arrived).timeIntervalSince(started)
        print("file change to kernel: \(Int(latency * 1000)) ms (poll interval 50ms, min sync period 100ms, in the VM)")
        #expect(latency < 5)

        // A new file with a new Service, and a broken edit that leaves the last good content in place.
        try write(service("api", clusterIP: "10.96.50.2", endpoints: ["10.244.0.3"]), to: folder, as: "api.yaml")
        try write("apiVersion: v1\nkind: Service\nmetadata: [broken\n", to: folder, as: "web.yaml")
        let api = VirtualServerKey.address(.tcp, IPAddress("10.96.50.2")!, port: 80)
        #expect(try eventually(timeoutSeconds: 10) { try reals(ipvs, api) == ["10.244.0.3:8080"] ? true : nil } == true)
        #expect(try reals(ipvs, web) == ["10.244.0.1:8080", "10.244.0.2:8080"])
        #expect(daemon.output.contains("manifest file has problems; its last good content stays in use"))

        // Deleting a file removes its Services.
        try FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent("api.yaml"))
        #expect(try eventually(timeoutSeconds: 10) { try ipvs.virtualServer(api) == nil ? true : nil } == true)

        // SIGTERM: a clean stop, and the rules stay.
        #expect(daemon.stop() == 0)
        #expect(try reals(ipvs, web) == ["10.244.0.1:8080", "10.244.0.2:8080"])
    }

    /// The daemon programs the netfilter half too, follows changes with set elements, and sets conntrack's TCP
    /// timeouts in its namespace (the table's size only from the initial namespace: it says so).
    @Test func theDaemonProgramsTheNetfilterHalfAndConntrackTimeouts() throws {
        let namespace = try TestNamespace("daemon-nft")
        let folder = try temporaryFolder("watched")
        try write(service("web", clusterIP: "10.96.51.1", endpoints: ["10.244.0.1"]), to: folder, as: "web.yaml")
        let daemon = try Daemon(
            namespace: namespace, manifests: folder, arguments: ["--cluster-cidr", "10.244.0.0/16"])
        defer { daemon.stop() }
        func clusterIPs() throws -> String {
            try namespace.exec(Tools.nft, ["list", "set", "ip", "ipvs-proxy", "cluster-ips"], allowFailure: true).output
        }
        #expect(
            try eventually(timeoutSeconds: 20) { try clusterIPs().contains("10.96.51.1 . tcp . 80") ? true : nil }
                == true, "\(daemon.output)")
        try write(service("api", clusterIP: "10.96.51.2", endpoints: ["10.244.0.2"]), to: folder, as: "api.yaml")
        #expect(
            try eventually(timeoutSeconds: 20) { try clusterIPs().contains("10.96.51.2 . tcp . 80") ? true : nil }
                == true)
        func sysctl(_ name: String) throws -> String {
            try namespace.exec("/bin/busybox", ["cat", "/proc/sys/net/netfilter/\(name)"]).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try sysctl("nf_conntrack_tcp_timeout_established") == "86400")
        #expect(try sysctl("nf_conntrack_tcp_timeout_close_wait") == "3600")
        #expect(daemon.output.contains("not in the initial network namespace: the conntrack table's size"))
        #expect(daemon.stop() == 0)
    }

    @Test func outsideTamperingIsRepairedAtTheNextResyncAndForeignRulesAreLeftAlone() throws {
        let namespace = try TestNamespace("tamper")
        let ipvs = try namespace.ipvs()
        let foreign = VirtualServerKey.address(.tcp, IPAddress("192.168.60.1")!, port: 443)
        try ipvs.add(VirtualServer(foreign, scheduler: .weightedLeastConnection))
        try ipvs.add(RealServer(IPAddress("192.168.60.2")!, port: 443), to: foreign)
        let folder = try temporaryFolder("watched")
        try write(
            service("web", clusterIP: "10.96.50.1", endpoints: ["10.244.0.1", "10.244.0.2"]), to: folder, as: "web.yaml"
        )
        let daemon = try Daemon(namespace: namespace, manifests: folder, arguments: ["--sync-period", "1s"])
        defer { daemon.stop() }
        let expected = ["10.244.0.1:8080", "10.244.0.2:8080"]
        #expect(
            try eventually(timeoutSeconds: 20) { try reals(ipvs, web) == expected ? true : nil } == true,
            "\(daemon.output)")

        // Someone deletes a real server, changes the scheduler, turns a weight down and adds a stranger.
        try ipvs.delete(RealServerKey(IPAddress("10.244.0.2")!, port: 8080), from: web)
        try ipvs.edit(VirtualServer(web, scheduler: .sourceHashing))
        try ipvs.edit(RealServer(IPAddress("10.244.0.1")!, port: 8080, weight: 9), in: web)
        try ipvs.add(RealServer(IPAddress("10.244.9.9")!, port: 8080), to: web)
        let repaired = try eventually(timeoutSeconds: 10) { () -> Bool? in
            let state = try ipvs.virtualServer(web)
            let servers = try ipvs.realServers(of: web)
            return state?.server.scheduler == .roundRobin && servers.map(\.server.key.description).sorted() == expected
                && servers.allSatisfy { $0.server.weight == 1 } ? true : nil
        }
        #expect(repaired == true, "\(daemon.output)")
        // The foreign virtual server is untouched.
        #expect(try ipvs.virtualServer(foreign)?.server.scheduler == .weightedLeastConnection)
        #expect(try reals(ipvs, foreign) == ["192.168.60.2:443"])
    }

    @Test func sighupForcesAFullResync() throws {
        let namespace = try TestNamespace("sighup")
        let ipvs = try namespace.ipvs()
        let folder = try temporaryFolder("watched")
        try write(service("web", clusterIP: "10.96.50.1", endpoints: ["10.244.0.1"]), to: folder, as: "web.yaml")
        let port = Int.random(in: 30001...40000)
        let daemon = try Daemon(
            namespace: namespace, manifests: folder,
            arguments: ["--sync-period", "1h", "--metrics-bind-address", "127.0.0.1:\(port)"])
        defer { daemon.stop() }
        #expect(try eventually(timeoutSeconds: 20) { try reals(ipvs, web) == ["10.244.0.1:8080"] ? true : nil } == true)
        let before = try #require(metrics(port: port) { metric($0, fullSyncs) >= 1 }, "\(daemon.output)")
        try ipvs.delete(web)
        // Nothing repairs it before the hour is up: watched for a second (a claim that nothing happens needs a
        // while), failing as soon as it is back...
        #expect(try eventually(timeoutSeconds: 1) { try ipvs.virtualServer(web) } == nil)
        daemon.signal(SIGHUP)  // ...but SIGHUP does at once, with one full resync.
        #expect(
            try eventually(timeoutSeconds: 10) { try reals(ipvs, web) == ["10.244.0.1:8080"] ? true : nil } == true,
            "\(daemon.output)")
        let after = try #require(metrics(port: port) { metric($0, fullSyncs) > metric(before, fullSyncs) })
        #expect(metric(after, fullSyncs) == metric(before, fullSyncs) + 1)
    }

    /// A client keeps a TCP connection open to a backend that is then removed: the backend drains at weight 0,
    /// gets no new connection, and is deleted once the connection closes.
    @Test func aRemovedBackendDrainsAndIsDeletedAfterItsLastConnection() throws {
        let lab = try TrafficLab(backends: 2)
        let servers = try (0..<2).map {
            try ReplyServer(
                in: lab.backends[$0], address: lab.backendAddress($0), port: 8080, reply: "backend-\($0)",
                holdConnections: true)
        }
        let folder = try temporaryFolder("watched")
        let endpoints = ["10.200.0.2", "10.200.1.2"]
        try write(service("web", clusterIP: "10.96.50.1", endpoints: endpoints), to: folder, as: "web.yaml")
        let port = Int.random(in: 30001...40000)
        let daemon = try Daemon(
            namespace: lab.node, manifests: folder,
            arguments: ["--drain-check-period", "500ms", "--metrics-bind-address", "127.0.0.1:\(port)"])
        defer { daemon.stop() }
        let ipvs = try lab.node.ipvs()
        #expect(
            try eventually(timeoutSeconds: 20) { try reals(ipvs, web).count == 2 ? true : nil } == true,
            "\(daemon.output)")

        // Open one connection and keep it: the server answers and holds it.
        let clusterIP = IPAddress("10.96.50.1")!
        let (connection, first) = try lab.client.perform { () -> (Int32, String) in
            let connection = try openConnection(to: clusterIP, port: 80)
            var buffer = [UInt8](repeating: 0, count: 64)
            let count = recv(connection, &buffer, buffer.count, 0)
            return (connection, String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self))
        }
        let held = try #require(Int(first.dropFirst("backend-".count)))
        let heldAddress = endpoints[held]
        let other = endpoints[1 - held]

        // The held backend leaves the Service.
        try write(service("web", clusterIP: "10.96.50.1", endpoints: [other]), to: folder, as: "web.yaml")
        let drained = try eventually(timeoutSeconds: 10) { () -> RealServerState? in
            try ipvs.realServers(of: web).first {
                $0.server.address.description == heldAddress && $0.server.weight == 0
            }
        }
        #expect(drained?.activeConnections == 1, "\(daemon.output)")
        // No new connection goes to it.
        for _ in 0..<4 {
            let reply = try lab.client.perform { () -> String in
                let connection = try openConnection(to: clusterIP, port: 80)
                defer { close(connection) }
                var buffer = [UInt8](repeating: 0, count: 64)
                let count = recv(connection, &buffer, buffer.count, 0)
                return String(decoding: buffer.prefix(max(count, 0)), as: UTF8.self)
            }
            #expect(reply == "backend-\(1 - held)")
        }
        // Still there while the connection lives, three drain checks later: each is an incremental sync that reads
        // the draining real server's connections, and would have deleted it.
        let draining = try #require(metrics(port: port) { _ in true }, "\(daemon.output)")
        let checked = metrics(port: port) { metric($0, incrementalSyncs) >= metric(draining, incrementalSyncs) + 3 }
        #expect(checked != nil, "\(daemon.output)")
        #expect(try reals(ipvs, web).contains("\(heldAddress):8080"))

        // The connection ends (reset, so the kernel forgets it without waiting out TIME_WAIT): deleted.
        var linger = linger(l_onoff: 1, l_linger: 0)
        setsockopt(connection, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
        close(connection)
        servers[held].closeHeldConnections()
        servers[1 - held].closeHeldConnections()
        let deleted = try eventually(timeoutSeconds: 30) { try reals(ipvs, web) == ["\(other):8080"] ? true : nil }
        let remaining = try ipvs.realServers(of: web)
        #expect(deleted == true, "\(remaining)\n\(daemon.output)")
    }

    /// The Daemon helper's own promise, which tests of privileges rely on: a capability it drops is gone from the
    /// daemon, root as it is (here CAP_NET_ADMIN, without which the daemon refuses to start).
    @Test func aDaemonStartedWithoutACapabilityLacksIt() throws {
        let namespace = try TestNamespace("daemon-nocap")
        let folder = try temporaryFolder("watched")
        let daemon = try Daemon(
            namespace: namespace, manifests: folder, descriptorLimit: (soft: 512, hard: 1024),
            droppedCapabilities: [12])
        let ended = eventually(timeoutSeconds: 20) { daemon.process.isRunning ? nil : true }
        #expect(ended == true)
        #expect(daemon.stop() == 1, "\(daemon.output)")
        #expect(daemon.output.contains("ipvs-proxy needs the CAP_NET_ADMIN capability"), "\(daemon.output)")
        #expect(daemon.output.contains("before=soft 512, hard 1024"), "\(daemon.output)")
    }

    @Test func healthAndMetricsEndpointsAnswer() throws {
        let namespace = try TestNamespace("health")
        let folder = try temporaryFolder("watched")
        try write(service("web", clusterIP: "10.96.50.1", endpoints: ["10.244.0.1"]), to: folder, as: "web.yaml")
        let port = Int.random(in: 20000...30000)
        let daemon = try Daemon(
            namespace: namespace, manifests: folder,
            arguments: [
                "--healthz-bind-address", "127.0.0.1:\(port)", "--metrics-bind-address", "127.0.0.1:\(port + 1)",
            ])
        defer { daemon.stop() }
        let ipvs = try namespace.ipvs()
        #expect(
            try eventually(timeoutSeconds: 20) { try reals(ipvs, web).count == 1 ? true : nil } == true,
            "\(daemon.output)")

        let healthz = try #require(eventually(timeoutSeconds: 10) { try? httpGet(port: port, path: "/healthz") })
        #expect(healthz.hasPrefix("HTTP/1.1 200 OK"))
        let body = try #require(healthz.components(separatedBy: "\r\n\r\n").last)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        #expect(json["lastUpdated"] is String)
        #expect(json["currentTime"] is String)
        #expect(json["nodeEligible"] as? Bool == true)
        #expect((json["lastUpdated"] as? String)?.hasSuffix("+0000 UTC") == true)
        #expect(try httpGet(port: port, path: "/livez").hasPrefix("HTTP/1.1 200 OK"))

        // A bad file is skipped, logged and counted; the rest stays programmed.
        try write(
            "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: 0}]}\n", to: folder,
            as: "bad.yaml")
        let counted = try eventually(timeoutSeconds: 10) {
            try httpGet(port: port + 1, path: "/metrics").contains("ipvs_proxy_invalid_objects_total 1") ? true : nil
        }
        #expect(counted == true, "\(daemon.output)")
        #expect(try reals(ipvs, web).count == 1)

        let metrics = try httpGet(port: port + 1, path: "/metrics")
        print(
            metrics.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.contains("_bucket") }.joined(
                separator: "\n"))
        for name in [
            "kubeproxy_sync_proxy_rules_duration_seconds_count", "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "kubeproxy_sync_proxy_rules_endpoint_changes_total", "kubeproxy_sync_proxy_rules_service_changes_total",
            "kubeproxy_network_programming_duration_seconds_count",
            "ipvs_proxy_kernel_operations_total{operation=\"add-virtual-server\",result=\"success\"} 1",
            "ipvs_proxy_virtual_servers 1", "ipvs_proxy_real_servers 1", "ipvs_proxy_real_servers_draining 0",
        ] {
            #expect(metrics.contains(name), "\(name)")
        }
    }
}

/// A plain HTTP/1.1 GET over a socket, returning the whole response.
func httpGet(host: String = "127.0.0.1", port: Int, path: String) throws -> String {
    let connection = try openConnection(to: IPAddress(host)!, port: UInt16(port))
    defer { close(connection) }
    let request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n"
    _ = request.withCString { send(connection, $0, strlen($0), 0) }
    return readAll(connection)
}

/// The value of a metric line (`name{labels} value`) in Prometheus text, or 0 when absent.
func metric(_ text: String, _ series: String) -> Double {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1)) ?? 0
    }
    return 0
}

/// Syncs by mode and result.
let fullSyncs = #"ipvs_proxy_syncs_total{mode="full",result="success"}"#
let incrementalSyncs = #"ipvs_proxy_syncs_total{mode="incremental",result="success"}"#
let failedFullSyncs = #"ipvs_proxy_syncs_total{mode="full",result="error"}"#
let failedIncrementalSyncs = #"ipvs_proxy_syncs_total{mode="incremental",result="error"}"#

/// The daemon's metrics at 127.0.0.1:`port` once `condition` holds for them, polled for up to `timeoutSeconds`;
/// `nil` if it never did.
func metrics(port: Int, timeoutSeconds: Double = 20, until condition: (String) -> Bool) -> String? {
    eventually(timeoutSeconds: timeoutSeconds) { () -> String? in
        guard let text = try? httpGet(port: port, path: "/metrics") else { return nil }
        return condition(text) ? text : nil
    }
}

@Suite("ipvs-proxy run between full resyncs", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct IncrementalSyncTests {
    /// After the first sync, one endpoint change reaches the kernel with its own two operations, reading
    /// only that virtual server's real servers: no dump of the whole table.
    @Test func oneEndpointChangeCostsOnlyItsOwnOperations() throws {
        let namespace = try TestNamespace("incremental")
        let folder = try temporaryFolder("incremental")
        let original = generatedCluster(services: 500)
        try write(original, to: folder, as: "cluster.json")
        let port = Int.random(in: 30001...40000)
        let daemon = try Daemon(
            namespace: namespace, manifests: folder,
            arguments: ["--sync-period", "1h", "--metrics-bind-address", "127.0.0.1:\(port)"])
        defer { daemon.stop() }
        let ipvs = try namespace.ipvs()
        #expect(
            try eventually(timeoutSeconds: 60) { try ipvs.virtualServers().count == 500 ? true : nil } == true,
            "\(daemon.output)")
        // The first sync is complete once it is counted (last, after its operations).
        let before = try #require(metrics(port: port) { metric($0, fullSyncs) >= 1 }, "\(daemon.output)")
        let added = #"ipvs_proxy_kernel_operations_total{operation="add-virtual-server",result="success"}"#
        #expect(metric(before, added) == 500)

        // Service svc-7's first endpoint (10.128.0.112) is replaced by a new address.
        let changed = original.replacingOccurrences(of: #"["10.128.0.112"]"#, with: #"["10.250.0.1"]"#)
        #expect(changed != original)
        let started = Date()
        try write(changed, to: folder, as: "cluster.json")
        let key = VirtualServerKey.address(.tcp, IPAddress("10.96.0.8")!, port: 80)
        let arrived = try eventually(timeoutSeconds: 20) {
            try ipvs.realServers(of: key).contains { $0.server.address == IPAddress("10.250.0.1")! } ? Date() : nil
        }
        let latency = try #require(arrived).timeIntervalSince(started)
        print("one endpoint change among 500 Services to kernel: \(Int(latency * 1000)) ms")
        // Its sync is counted last, once everything else of it is: a scrape that shows it shows all of it.
        let after = try #require(
            metrics(port: port) { metric($0, incrementalSyncs) > metric(before, incrementalSyncs) })
        func delta(_ series: String) -> Double { metric(after, series) - metric(before, series) }
        #expect(delta("ipvs_proxy_table_reads_total") == 0)
        #expect(delta(incrementalSyncs) == 1)
        #expect(delta("ipvs_proxy_real_server_reads_total") == 1)
        #expect(delta(#"ipvs_proxy_kernel_operations_total{operation="delete-real-server",result="success"}"#) == 1)
        #expect(delta(#"ipvs_proxy_kernel_operations_total{operation="add-real-server",result="success"}"#) == 1)
        #expect(delta(#"ipvs_proxy_kernel_operations_total{operation="add-virtual-server",result="success"}"#) == 0)
    }
}
