import CHeapMemory
import Foundation
import IPVSModel
import KubernetesModel
import StateSources
import TestSupport
import Testing

@testable import ProxyCommands
@testable import ProxyConfiguration
@testable import ProxyDaemon

@Suite("Durations as kube-proxy writes them", .timeLimit(.minutes(2)))
struct GoDurationTests {
    @Test(arguments: [
        ("500ms", 0.5), ("2s", 2), ("1m", 60), ("1m30s", 90), ("1.5h", 5400), ("0", 0), ("0s", 0), ("250us", 0.00025),
        ("1h2m3s", 3723),
    ])
    func parses(_ text: String, _ seconds: Double) throws {
        let duration = try #require(GoDuration(text))
        #expect(abs(duration.seconds - seconds) < 1e-9)
    }

    @Test(arguments: ["", "5", "1x", "ms", "1.2.3s", "-1s", "1 s"])
    func rejects(_ text: String) {
        #expect(GoDuration(text) == nil)
    }

    @Test func printsLikeGo() {
        #expect(GoDuration(.seconds(30)).description == "30s")
        #expect(GoDuration(.milliseconds(500)).description == "500ms")
        #expect(GoDuration(.seconds(90)).description == "1m30s")
        #expect(GoDuration(.seconds(3600)).description == "1h")
        #expect(GoDuration(.zero).description == "0s")
    }
}

@Suite("Health endpoint", .timeLimit(.minutes(2)))
struct HealthStateTests {
    @Test func healthyUntilAQueuedChangeWaitsTooLong() throws {
        let health = HealthState(timeout: .seconds(60))
        let start = Date(timeIntervalSince1970: 1_795_000_000)
        health.synced(at: start)
        #expect(health.response(now: start, includeNodeEligible: true).status == .ok)
        health.queued(at: start.addingTimeInterval(10))
        #expect(health.response(now: start.addingTimeInterval(60), includeNodeEligible: false).status == .ok)
        let late = health.response(now: start.addingTimeInterval(71), includeNodeEligible: true)
        #expect(late.status == .serviceUnavailable)
        health.synced(at: start.addingTimeInterval(72))
        #expect(health.response(now: start.addingTimeInterval(200), includeNodeEligible: true).status == .ok)
    }

    @Test func unhealthyOnceTheAPIServerIsOutOfReachForTheTimeout() throws {
        let health = HealthState(timeout: .seconds(60))
        let start = Date(timeIntervalSince1970: 1_795_000_000)
        health.synced(at: start)
        health.sourceCurrent(false, at: start.addingTimeInterval(5))
        // Later failures do not restart the clock.
        health.sourceCurrent(false, at: start.addingTimeInterval(50))
        #expect(health.response(now: start.addingTimeInterval(65), includeNodeEligible: true).status == .ok)
        #expect(
            health.response(now: start.addingTimeInterval(66), includeNodeEligible: true).status == .serviceUnavailable)
        #expect(
            health.response(now: start.addingTimeInterval(66), includeNodeEligible: false).status == .serviceUnavailable
        )
        health.sourceCurrent(true, at: start.addingTimeInterval(70))
        #expect(health.response(now: start.addingTimeInterval(71), includeNodeEligible: true).status == .ok)
    }

    @Test func answersKubeProxysJSON() throws {
        let health = HealthState(timeout: .seconds(60))
        health.synced(at: Date(timeIntervalSince1970: 1_795_622_400.25))
        let response = health.response(now: Date(timeIntervalSince1970: 1_795_622_401), includeNodeEligible: true)
        #expect(response.contentType == "application/json")
        #expect(
            response.body
                == #"{"lastUpdated": "2026-11-25 16:00:00.25 +0000 UTC", "currentTime": "2026-11-25 16:00:01 +0000 UTC", "nodeEligible": true}"#
        )
        let livez = health.response(now: Date(timeIntervalSince1970: 1_795_622_401), includeNodeEligible: false)
        #expect(!livez.body.contains("nodeEligible"))
    }

    /// kube-proxy's rule: a Node being deleted, or tainted by the cluster autoscaler, is not eligible for
    /// load-balancer traffic; `/healthz` says so with a 503, `/livez` does not care.
    @Test func aNodeGoingAwayIsNotEligible() throws {
        let health = HealthState(timeout: .seconds(60))
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        health.synced(at: now)
        var node = Node(metadata: ObjectMeta(name: "node-a"), spec: NodeSpec(taints: [Taint(key: "dedicated")]))
        health.follow(node)
        #expect(health.response(now: now, includeNodeEligible: true).status == .ok)
        node.spec?.taints?.append(Taint(key: Node.autoscalerDeletionTaint, value: "1764079812", effect: "NoSchedule"))
        health.follow(node)
        let tainted = health.response(now: now, includeNodeEligible: true)
        #expect(tainted.status == .serviceUnavailable)
        #expect(tainted.body.hasSuffix(#""nodeEligible": false}"#))
        #expect(health.response(now: now, includeNodeEligible: false).status == .ok)
        #expect(health.isHealthy(now: now))
        health.follow(Node(metadata: ObjectMeta(name: "node-a", deletionTimestamp: "2026-11-25T16:00:00Z")))
        #expect(health.response(now: now, includeNodeEligible: true).status == .serviceUnavailable)
        // No Node to go by: eligible.
        health.follow(nil)
        #expect(health.response(now: now, includeNodeEligible: true).status == .ok)
    }
}

@Suite("Doorbell", .timeLimit(.minutes(2)))
struct DoorbellTests {
    @Test func aRingBeforeTheWaitIsKept() async {
        let doorbell = Doorbell()
        doorbell.ring()
        let start = ContinuousClock.now
        await doorbell.wait(until: .now + .seconds(10), on: ContinuousClock())
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    @Test func aWaitEndsAtItsDeadlineWithoutARing() async {
        let doorbell = Doorbell()
        let start = ContinuousClock.now
        await doorbell.wait(until: .now + .milliseconds(100), on: ContinuousClock())
        #expect(ContinuousClock.now - start >= .milliseconds(100))
    }
}

/// kubeadm's file, as a v1.34.0 cluster's ConfigMap has it (Tests/Fixtures/kubeadm/README.md), unedited.
private let kubeadm = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/kubeadm/kube-proxy-config.conf").path

@Suite("ipvs-proxy run's defaults", .timeLimit(.minutes(2)))
struct RunDefaultsTests {
    @Test func metricsListenOnLoopbackAndHealthOnAllAddresses() throws {
        let settings = try RunCommand.parse(["-f", "/tmp"]).settings()
        #expect(settings.metricsAddress == HostPort("127.0.0.1:10249"))
        #expect(settings.healthzAddress == HostPort("0.0.0.0:10256"))
        #expect(GoDuration(settings.loop.syncPeriod).description == "30s")
        #expect(GoDuration(settings.loop.minSyncPeriod).description == "1s")
        #expect(settings.stateDirectory == "/run/ipvs-proxy")
        #expect(settings.http.maximumPerServer == 1024)
        #expect(GoDuration(settings.http.requestTimeout).description == "5s")
    }

    /// The HTTP servers' limits are flags only (KubeProxyConfiguration has no field for them), so a --config
    /// file leaves them as given.
    @Test func theHTTPLimitsAreFlagsThatTheConfigurationFileLeavesAlone() throws {
        let arguments = ["-f", "/tmp", "--http-max-connections", "64", "--http-request-timeout", "1500ms"]
        for settings in [
            try RunCommand.parse(arguments).settings(),
            try RunCommand.parse(arguments + ["--config", kubeadm]).settings(),
        ] {
            #expect(settings.http.maximumPerServer == 64)
            #expect(settings.http.requestTimeout == .milliseconds(1500))
        }
    }

    /// Each is refused by the parser as a usage error (exit status 2), with a message that names the flag.
    @Test(arguments: [
        (["--sync-period", "soon"], "--sync-period"),
        (["--min-sync-period", "-1s"], "--min-sync-period"),
        (["--metrics-bind-address", "localhost"], "--metrics-bind-address: 'localhost' is not host:port"),
        (["-f", "/tmp", "--kubeconfig", "/x"], "Give either --manifests or --kubeconfig, not both."),
        (["--scheduler", "fastest"], "--scheduler: unknown IPVS scheduler 'fastest'"),
        (["--node-ip", "10.0.0.300"], "--node-ip: '10.0.0.300' is not a valid IPv4 or IPv6 address"),
        (["--proxy-mode", "iptables"], "--proxy-mode: 'iptables' is not supported"),
        (["--ipvs-scheduler", "fastest"], "unknown IPVS scheduler 'fastest'"),
        (["--v=-1"], "-v: -1 is below 0"),
        (["--http-max-connections", "0"], "--http-max-connections: 0 is below 1"),
        (["--http-max-connections", "many"], "--http-max-connections"),
        (["--http-request-timeout", "0s"], "--http-request-timeout: 0s is not above 0"),
        (["--http-request-timeout", "5"], "--http-request-timeout"),
    ])
    func badFlagsAreUsageErrors(_ arguments: [String], _ message: String) throws {
        let error = try #require(throws: (any Error).self) { try IPVSProxyCommand.parseAsRoot(["run"] + arguments) }
        #expect(IPVSProxyCommand.exitCode(for: error) == .validationFailure)
        #expect(IPVSProxyCommand.fullMessage(for: error).contains(message))
    }

    /// kube-proxy's names for the same settings, as its DaemonSets and unit files pass them.
    @Test func kubeProxysFlagNamesSetTheSameSettings() throws {
        let settings = try RunCommand.parse([
            "-f", "/tmp", "--ipvs-scheduler", "lc", "--hostname-override", " Node-A.Example ", "--ipvs-sync-period",
            "45s", "--ipvs-min-sync-period", "2s", "--ipvs-strict-arp", "--ipvs-tcp-timeout", "10m",
            "--ipvs-tcpfin-timeout", "20s", "--ipvs-udp-timeout", "5s", "--proxy-mode", "ipvs", "--v=4",
            "--master", "https://10.0.0.1:6443",
        ]).settings()
        #expect(settings.loop.scheduler == .leastConnection)
        #expect(settings.loop.nodeName == "node-a.example")
        #expect(GoDuration(settings.loop.syncPeriod).description == "45s")
        #expect(GoDuration(settings.loop.minSyncPeriod).description == "2s")
        #expect(settings.kernel.strictARP)
        #expect(settings.kernel.tcpTimeout == .seconds(600))
        #expect(GoDuration(settings.kernel.tcpFinTimeout).description == "20s")
        #expect(GoDuration(settings.kernel.udpTimeout).description == "5s")
        #expect(settings.logLevel == .debug)
        #expect(try RunCommand.parse(["-f", "/tmp", "-v", "2"]).settings().logLevel == .info)
        #expect(try RunCommand.parse(["-f", "/tmp", "--log-level", "warning"]).settings().logLevel == .warning)
        #expect(
            try SyncCommand.parse(["-f", "/tmp", "--ipvs-scheduler", "sh"]).node.validatedScheduler == .sourceHashing)
    }

    /// kube-proxy's default node name: the host name, whole and lower-cased.
    @Test func theNodeNameIsTheLowerCasedHostName() {
        #expect(DaemonSettings.nodeName(override: nil, hostName: "Worker-1.Cluster.Local") == "worker-1.cluster.local")
        #expect(DaemonSettings.nodeName(override: "", hostName: "worker-1") == "worker-1")
    }

    /// `--master` takes the place of the kubeconfig's server; alone, it is the server, without credentials.
    @Test func masterReplacesTheServer() throws {
        try withTemporaryFolder("master") { folder in
            let kubeconfig = (folder as NSString).appendingPathComponent("kubeconfig")
            try Data(
                """
                apiVersion: v1
                kind: Config
                clusters: [{name: c, cluster: {server: "https://cp.example:6443"}}]
                users: [{name: u, user: {token: secret}}]
                contexts: [{name: x, context: {cluster: c, user: u}}]
                current-context: x
                """.utf8
            ).write(to: URL(fileURLWithPath: kubeconfig))
            func server(_ arguments: [String]) throws -> APIServerConfiguration? {
                guard case .api(let file, let context, let master) = try RunCommand.parse(arguments).settings().source
                else { return nil }
                return try Daemon.apiServer(kubeconfig: file, context: context, master: master)
            }
            let viaFile = try server(["--kubeconfig", kubeconfig, "--master", "https://10.0.0.1:6443"])
            #expect(viaFile?.server == "https://10.0.0.1:6443")
            #expect(viaFile?.bearerToken == "secret")
            #expect(try server(["--kubeconfig", kubeconfig])?.server == "https://cp.example:6443")
        }
    }

    @Test func hostPortsAcceptIPv6InBrackets() throws {
        let endpoint = try #require(HostPort("[::1]:10249"))
        #expect(endpoint.host == "::1")
        #expect(endpoint.port == 10249)
        #expect(HostPort("10249") == nil)
        #expect(HostPort("127.0.0.1:70000") == nil)
    }
}

@Suite("Conntrack sizing", .timeLimit(.minutes(2)))
struct ConntrackSizingTests {
    @Test func theTableIsSizedPerCPUWithAFloorAndTheHashToAQuarter() {
        let sizing = ConntrackSizing()
        #expect(sizing.maximum(cpus: 2) == 131072)
        #expect(sizing.maximum(cpus: 8) == 262144)
        #expect(
            sizing.sizeSettings(cpus: 8, currentHashSize: 16384).map { "\($0.0)=\($0.1)" } == [
                "net/netfilter/nf_conntrack_max=262144", "/sys/module/nf_conntrack/parameters/hashsize=65536",
            ])
        // A hash already large enough is left alone; 0 per core leaves the size alone altogether.
        #expect(sizing.sizeSettings(cpus: 8, currentHashSize: 70000).count == 1)
        #expect(ConntrackSizing(maxPerCore: 0).sizeSettings(cpus: 8, currentHashSize: 1).isEmpty)
        #expect(
            sizing.timeoutSysctls.map { "\($0.0)=\($0.1)" } == [
                "net/netfilter/nf_conntrack_tcp_timeout_established=86400",
                "net/netfilter/nf_conntrack_tcp_timeout_close_wait=3600",
            ])
        #expect(ConntrackSizing(tcpEstablishedTimeout: .zero, tcpCloseWaitTimeout: .zero).timeoutSysctls.isEmpty)
    }
}

@Suite("Following the node's addresses", .timeLimit(.minutes(2)))
struct NodeAddressWatchTests {
    @Test func onlyChangesOffTheDummyLinkOrLostAnnouncementsConcernTheNode() {
        #expect(!NodeAddressWatch.concernsTheNode(.changed(links: [7, 7, 7]), dummyLinkIndex: 7))
        #expect(NodeAddressWatch.concernsTheNode(.changed(links: [7, 2]), dummyLinkIndex: 7))
        // No dummy link yet: every change is the node's.
        #expect(NodeAddressWatch.concernsTheNode(.changed(links: [7]), dummyLinkIndex: nil))
        #expect(NodeAddressWatch.concernsTheNode(.lost, dummyLinkIndex: 7))
    }

    @Test func aChangeIsTheNodesWhenLinksCannotBeRead() {
        let interrupted = KernelCallError(operation: "list links", reason: .dumpInterrupted)
        #expect(NodeAddressWatch.concernsTheNode(.changed(links: [7]), dummyLink: .failure(interrupted)))
        #expect(!NodeAddressWatch.concernsTheNode(.changed(links: [7]), dummyLink: .success(7)))
        #expect(NodeAddressWatch.concernsTheNode(.changed(links: [7]), dummyLink: .success(nil)))
    }
}

@Suite("The daemon's heap", .timeLimit(.minutes(1)))
struct HeapMemoryTests {
    /// The settings reach glibc's malloc (through <malloc.h>; the symbols looked up at run time could go missing
    /// without a word, and a shim built without glibc's feature macros answers 0), and a trim runs.
    @Test func glibcTakesTheSettings() {
        #expect(heap_memory_set_arena_max(2) == 1)
        #expect(heap_memory_set_mmap_threshold(128 * 1024) == 1)
        #expect(heap_memory_set_trim_threshold(32 * 1024 * 1024) == 1)
        let trimmed = heap_memory_trim()
        #expect(trimmed == 0 || trimmed == 1)
    }
}
