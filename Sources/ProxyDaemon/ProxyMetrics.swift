import Foundation
import IPVSModel
import Prometheus
import ProxyRules
import Sync
import Translation

/// The daemon's metrics, with kube-proxy's names and meanings where kube-proxy has one (pkg/proxy/metrics,
/// Kubernetes 1.34), served as Prometheus text.
///
/// Every metric is registered with its help text when the daemon starts, and every series whose labels are known
/// in advance is created then, so that the first scrape shows all of them (counters and gauges at 0).
package final class ProxyMetrics: Sendable {
    package let registry = PrometheusCollectorRegistry()

    let syncDuration: DurationHistogram
    let networkProgrammingDuration: DurationHistogram
    let lastSyncTimestamp: Gauge
    let lastQueuedTimestamp: Gauge
    let serviceChanges: Counter
    let endpointChanges: Counter
    let serviceChangesPending: Gauge
    let endpointChangesPending: Gauge
    let invalidObjects: Counter
    let virtualServers: Gauge
    let realServers: Gauge
    let drainingRealServers: Gauge
    let blockedVirtualServers: Gauge
    let tableReads: Counter
    let realServerReads: Counter
    let nftablesReads: Counter
    let flowsDeleted: Counter
    let healthCheckPortFailures: Counter
    let sourceStale: Gauge
    let sourceReadFailures: Counter
    private let syncs: [String: Counter]
    private let operations: [String: Counter]
    private let nftablesTransactions: [String: Counter]
    private let nftablesElements: [String: Counter]
    private let noLocalEndpoints: [TrafficPolicyKind: Gauge]
    private let probes: [String: Counter]
    private let connectionsRefused: [HTTPEndpointKind: Counter]
    private let connectionsTimedOut: [HTTPEndpointKind: Counter]
    private let acceptFailures: [HTTPEndpointKind: Counter]
    private let openConnections: [HTTPEndpointKind: Gauge]

    /// kube-proxy's buckets for a sync: 1 ms doubling to about 16 s (`ExponentialBuckets(0.001, 2, 15)`).
    static let syncBuckets = (0..<15).map { Duration.microseconds(1000 << $0) }
    /// kube-proxy's buckets for network programming: 0.25 s and 0.5 s, then every second to 59 s, every 5 s to
    /// 115 s, every 30 s to 5 min.
    static let networkProgrammingBuckets: [Duration] =
        [.milliseconds(250), .milliseconds(500)] + (1...59).map { .seconds($0) }
        + (0..<12).map { .seconds(60 + 5 * $0) } + (0..<7).map { .seconds(120 + 30 * $0) }

    /// The kernel operations counted by kind.
    static let operationKinds = TableOperation.Kind.allCases.map(\.rawValue) + ["bind-address", "unbind-address"]

    package init() {
        let registry = registry
        func counter(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Counter {
            registry.makeCounter(descriptor: Self.descriptor(name, help), labels: labels)
        }
        func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Gauge {
            registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels)
        }
        syncDuration = registry.makeDurationHistogram(
            descriptor: Self.descriptor(
                "kubeproxy_sync_proxy_rules_duration_seconds", "SyncProxyRules latency in seconds"),
            buckets: Self.syncBuckets)
        networkProgrammingDuration = registry.makeDurationHistogram(
            descriptor: Self.descriptor(
                "kubeproxy_network_programming_duration_seconds", "In Cluster Network Programming Latency in seconds"),
            buckets: Self.networkProgrammingBuckets)
        lastSyncTimestamp = gauge(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds", "The last time proxy rules were successfully synced")
        lastQueuedTimestamp = gauge(
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", "The last time a sync of proxy rules was queued"
        )
        serviceChanges = counter(
            "kubeproxy_sync_proxy_rules_service_changes_total", "Cumulative proxy rules Service changes")
        endpointChanges = counter(
            "kubeproxy_sync_proxy_rules_endpoint_changes_total", "Cumulative proxy rules Endpoint changes")
        serviceChangesPending = gauge(
            "kubeproxy_sync_proxy_rules_service_changes_pending", "Pending proxy rules Service changes")
        endpointChangesPending = gauge(
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending", "Pending proxy rules Endpoint changes")
        noLocalEndpoints = Dictionary(
            uniqueKeysWithValues: TrafficPolicyKind.allCases.map {
                (
                    $0,
                    gauge(
                        "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                        "Number of services with a Local traffic policy and no endpoints",
                        [("traffic_policy", $0.rawValue)])
                )
            })
        probes = Dictionary(
            uniqueKeysWithValues: ["healthz", "livez"].flatMap { probe in
                ["200", "503"].map { code in
                    (
                        "\(probe) \(code)",
                        counter(
                            "kubeproxy_proxy_\(probe)_total", "Cumulative proxy \(probe) HTTP status", [("code", code)])
                    )
                }
            })
        invalidObjects = counter("ipvs_proxy_invalid_objects_total", "Objects skipped as invalid")
        virtualServers = gauge("ipvs_proxy_virtual_servers", "IPVS virtual servers programmed")
        realServers = gauge("ipvs_proxy_real_servers", "IPVS real servers wanted")
        drainingRealServers = gauge(
            "ipvs_proxy_real_servers_draining", "Real servers at weight 0 waiting for their last connection")
        blockedVirtualServers = gauge(
            "ipvs_proxy_virtual_servers_blocked", "Wanted virtual servers held by something ipvs-proxy does not own")
        tableReads = counter(
            "ipvs_proxy_table_reads_total", "Dumps of the whole IPVS table (full resyncs, retries after a race)")
        realServerReads = counter("ipvs_proxy_real_server_reads_total", "Reads of one virtual server's real servers")
        nftablesReads = counter("ipvs_proxy_nftables_reads_total", "Listings of ipvs-proxy's nftables tables")
        flowsDeleted = counter("ipvs_proxy_conntrack_flows_deleted_total", "Stale UDP and SCTP flows deleted")
        healthCheckPortFailures = counter(
            "ipvs_proxy_health_check_port_failures_total", "Health-check node ports that could not be opened")
        sourceStale = gauge(
            "ipvs_proxy_source_stale", "1 while the source keeps its last good view because a read fails, else 0")
        sourceReadFailures = counter(
            "ipvs_proxy_source_read_failures_total",
            "Reads of the source that failed (an API request, a folder listing, a file); the last good view stayed")
        func byEndpoint<Metric>(_ make: (_ labels: [(String, String)]) -> Metric) -> [HTTPEndpointKind: Metric] {
            Dictionary(uniqueKeysWithValues: HTTPEndpointKind.allCases.map { ($0, make([("endpoint", $0.rawValue)])) })
        }
        connectionsRefused = byEndpoint {
            counter(
                "ipvs_proxy_http_connections_refused_total",
                "HTTP connections closed at once: their server or the process had no room", $0)
        }
        connectionsTimedOut = byEndpoint {
            counter(
                "ipvs_proxy_http_connections_timed_out_total",
                "HTTP connections closed by the request timeout", $0)
        }
        acceptFailures = byEndpoint {
            counter("ipvs_proxy_http_accept_failures_total", "Failed accepts of HTTP connections", $0)
        }
        openConnections = byEndpoint { gauge("ipvs_proxy_http_connections", "HTTP connections open", $0) }
        var syncs: [String: Counter] = [:]
        for mode in ["full", "incremental"] {
            for result in ["success", "error"] {
                syncs["\(mode) \(result)"] = counter(
                    "ipvs_proxy_syncs_total", "Syncs by mode and result", [("mode", mode), ("result", result)])
            }
        }
        self.syncs = syncs
        var operations: [String: Counter] = [:]
        for kind in Self.operationKinds {
            for result in ["success", "error"] {
                operations["\(kind) \(result)"] = counter(
                    "ipvs_proxy_kernel_operations_total", "Kernel writes by kind and result",
                    [("operation", kind), ("result", result)])
            }
        }
        self.operations = operations
        nftablesTransactions = Dictionary(
            uniqueKeysWithValues: ["success", "error"].map {
                (
                    $0,
                    counter("ipvs_proxy_nftables_transactions_total", "nftables transactions sent", [("result", $0)])
                )
            })
        nftablesElements = Dictionary(
            uniqueKeysWithValues: ["add", "delete"].map {
                (
                    $0,
                    counter(
                        "ipvs_proxy_nftables_elements_total", "nftables set elements added and deleted",
                        [("operation", $0)])
                )
            })
    }

    /// Counts a sync that completed: its kind, every kernel operation it sent (over all its attempts) by kind
    /// and result, its reads, and what is draining and blocked. A sync with refused operations counts as an
    /// error. The sync itself is counted last, so that a scrape that sees it counted sees all of it.
    func recordSync(_ report: SyncReport, full: Bool) {
        defer { syncCounter(full: full, failed: report.hasFailures).increment() }
        tableReads.increment(by: Int64(report.table.fullReads))
        realServerReads.increment(by: Int64(report.table.realServerReads))
        for result in report.operationResults {
            operations["\(result.kind) success"]?.increment(by: Int64(result.succeeded))
            operations["\(result.kind) error"]?.increment(by: Int64(result.refused))
        }
        drainingRealServers.set(Int64(report.table.draining.count))
        blockedVirtualServers.set(Int64(report.table.blocked.count))
        let nftables = report.nftables
        if !nftables.transactions.isEmpty {
            nftablesTransactions[nftables.failures.isEmpty ? "success" : "error"]?
                .increment(by: Int64(nftables.transactions.count))
        }
        if nftables.failures.isEmpty {
            nftablesElements["add"]?.increment(by: Int64(nftables.elementsAdded))
            nftablesElements["delete"]?.increment(by: Int64(nftables.elementsDeleted))
        }
        if nftables.listed { nftablesReads.increment() }
        flowsDeleted.increment(by: Int64(report.flows.deleted))
    }

    /// What translation found: the Services with a traffic policy `Local` that have endpoints but none on this
    /// node, by policy (kube-proxy's gauge, despite its `_total` name).
    func recordTranslation(_ desired: DesiredState) {
        for (policy, gauge) in noLocalEndpoints {
            gauge.set(Int64(desired.servicesWithoutLocalEndpoints[policy]?.count ?? 0))
        }
    }

    /// Counts a health-check node port that could not be opened (it is tried again at the next sync).
    func recordHealthCheckPortFailure() {
        healthCheckPortFailures.increment()
    }

    /// Counts an HTTP connection refused, timed out, or an accept that failed.
    func recordConnection(_ event: ConnectionEvent, endpoint: HTTPEndpointKind) {
        switch event {
        case .refused: connectionsRefused[endpoint]?.increment()
        case .timedOut: connectionsTimedOut[endpoint]?.increment()
        case .acceptFailed: acceptFailures[endpoint]?.increment()
        }
    }

    func connectionOpened(endpoint: HTTPEndpointKind) { openConnections[endpoint]?.increment() }
    func connectionClosed(endpoint: HTTPEndpointKind) { openConnections[endpoint]?.decrement() }

    /// Counts a sync that failed before it could report (the kernel or the ownership record failed).
    func recordFailedSync(full: Bool) {
        syncCounter(full: full, failed: true).increment()
    }

    /// The probes kube-proxy counts by answer (`kubeproxy_proxy_healthz_total`, `kubeproxy_proxy_livez_total`).
    package enum Probe: String, Sendable {
        case healthz
        case livez
    }

    /// Counts a probe's answer by its status code, and passes the answer on.
    package func counting(_ response: EndpointResponse, probe: Probe) -> EndpointResponse {
        let code = "\(response.status.code)"
        let counter =
            probes["\(probe.rawValue) \(code)"]
            ?? registry.makeCounter(
                descriptor: Self.descriptor(
                    "kubeproxy_proxy_\(probe.rawValue)_total", "Cumulative proxy \(probe.rawValue) HTTP status"),
                labels: [("code", code)])
        counter.increment()
        return response
    }

    /// A metric's name, whole, and its help text. The names are kube-proxy's and the project's as they are
    /// documented and queried, so they are not cut into the descriptor's namespace, subsystem and unit parts: one
    /// string is what a reader greps for.
    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    private func syncCounter(full: Bool, failed: Bool) -> Counter {
        syncs["\(full ? "full" : "incremental") \(failed ? "error" : "success")"]!
    }

    /// Every metric in the Prometheus text format.
    package func render() -> String {
        registry.emitToString()
    }
}
