import Foundation
import IPVSModel
import Metrics
import Prometheus
import Sync
import Translation

/// The daemon's metrics, with kube-proxy's names where kube-proxy has one, served as Prometheus text.
package final class ProxyMetrics: Sendable {
    package let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    let syncDuration: Metrics.Timer
    let networkProgrammingDuration: Metrics.Timer
    let lastSyncTimestamp: Metrics.Gauge
    let lastQueuedTimestamp: Metrics.Gauge
    let serviceChanges: Metrics.Counter
    let endpointChanges: Metrics.Counter
    let invalidObjects: Metrics.Counter
    let virtualServers: Metrics.Gauge
    let realServers: Metrics.Gauge
    let drainingRealServers: Metrics.Gauge
    let blockedVirtualServers: Metrics.Gauge

    package init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // kube-proxy's buckets: 1 ms doubling to about 16 s.
        let syncBuckets = (0..<15).map { Duration.microseconds(1000 << $0) }
        factory.durationHistogramBuckets = [
            "kubeproxy_sync_proxy_rules_duration_seconds": syncBuckets,
            "kubeproxy_network_programming_duration_seconds": syncBuckets,
        ]
        self.factory = factory
        syncDuration = Metrics.Timer(label: "kubeproxy_sync_proxy_rules_duration_seconds", factory: factory)
        networkProgrammingDuration = Metrics.Timer(
            label: "kubeproxy_network_programming_duration_seconds", factory: factory)
        lastSyncTimestamp = Metrics.Gauge(label: "kubeproxy_sync_proxy_rules_last_timestamp_seconds", factory: factory)
        lastQueuedTimestamp = Metrics.Gauge(
            label: "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", factory: factory)
        serviceChanges = Metrics.Counter(label: "kubeproxy_sync_proxy_rules_service_changes_total", factory: factory)
        endpointChanges = Metrics.Counter(label: "kubeproxy_sync_proxy_rules_endpoint_changes_total", factory: factory)
        invalidObjects = Metrics.Counter(label: "ipvs_proxy_invalid_objects_total", factory: factory)
        virtualServers = Metrics.Gauge(label: "ipvs_proxy_virtual_servers", factory: factory)
        realServers = Metrics.Gauge(label: "ipvs_proxy_real_servers", factory: factory)
        drainingRealServers = Metrics.Gauge(label: "ipvs_proxy_real_servers_draining", factory: factory)
        blockedVirtualServers = Metrics.Gauge(label: "ipvs_proxy_virtual_servers_blocked", factory: factory)
    }

    /// Counts a sync that completed: its kind, every kernel operation it sent (over all its attempts) by kind
    /// and result, its reads, and what is draining and blocked. A sync with refused operations counts as an
    /// error. The sync itself is counted last, so that a scrape that sees it counted sees all of it.
    func recordSync(_ report: SyncReport, full: Bool) {
        defer { syncCounter(full: full, failed: report.hasFailures).increment() }
        Metrics.Counter(label: "ipvs_proxy_table_reads_total", factory: factory).increment(by: report.table.fullReads)
        Metrics.Counter(label: "ipvs_proxy_real_server_reads_total", factory: factory)
            .increment(by: report.table.realServerReads)
        for result in report.operationResults {
            if result.succeeded > 0 { operationCounter(result.kind, "success").increment(by: result.succeeded) }
            if result.refused > 0 { operationCounter(result.kind, "error").increment(by: result.refused) }
        }
        drainingRealServers.record(report.table.draining.count)
        blockedVirtualServers.record(report.table.blocked.count)
        let nftables = report.nftables
        if !nftables.transactions.isEmpty {
            Metrics.Counter(
                label: "ipvs_proxy_nftables_transactions_total",
                dimensions: [("result", nftables.failures.isEmpty ? "success" : "error")], factory: factory
            ).increment(by: nftables.transactions.count)
        }
        if nftables.failures.isEmpty {
            for (operation, count) in [("add", nftables.elementsAdded), ("delete", nftables.elementsDeleted)]
            where count > 0 {
                Metrics.Counter(
                    label: "ipvs_proxy_nftables_elements_total", dimensions: [("operation", operation)],
                    factory: factory
                ).increment(by: count)
            }
        }
        if nftables.listed {
            Metrics.Counter(label: "ipvs_proxy_nftables_reads_total", factory: factory).increment()
        }
        Metrics.Counter(label: "ipvs_proxy_conntrack_flows_deleted_total", factory: factory)
            .increment(by: report.flows.deleted)
    }

    /// What translation found: the Services with a traffic policy `Local` that have endpoints but none on this
    /// node, by policy (kube-proxy's gauge, despite its `_total` name).
    func recordTranslation(_ desired: DesiredState) {
        for policy in TrafficPolicyKind.allCases {
            Metrics.Gauge(
                label: "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                dimensions: [("traffic_policy", policy.rawValue)], factory: factory
            ).record(desired.servicesWithoutLocalEndpoints[policy]?.count ?? 0)
        }
    }

    /// Counts a health-check node port that could not be opened (it is tried again at the next sync).
    func recordHealthCheckPortFailure() {
        Metrics.Counter(label: "ipvs_proxy_health_check_port_failures_total", factory: factory).increment()
    }

    /// Counts a sync that failed before it could report (the kernel or the ownership record failed).
    func recordFailedSync(full: Bool) {
        syncCounter(full: full, failed: true).increment()
    }

    private func syncCounter(full: Bool, failed: Bool) -> Metrics.Counter {
        Metrics.Counter(
            label: "ipvs_proxy_syncs_total",
            dimensions: [("mode", full ? "full" : "incremental"), ("result", failed ? "error" : "success")],
            factory: factory)
    }

    private func operationCounter(_ kind: String, _ result: String) -> Metrics.Counter {
        Metrics.Counter(
            label: "ipvs_proxy_kernel_operations_total", dimensions: [("operation", kind), ("result", result)],
            factory: factory)
    }

    /// Every metric in the Prometheus text format.
    package func render() -> String {
        registry.emitToString()
    }
}
