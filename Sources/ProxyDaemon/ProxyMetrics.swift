import Foundation
import IPVS
import Metrics
import Prometheus
import Sync

/// The daemon's metrics, with kube-proxy's names where kube-proxy has one, served as Prometheus text.
public final class ProxyMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
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

    public init() {
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

    /// Counts a sync's kernel operations by kind and result, and its kind (full or incremental).
    func recordSync(_ report: SyncReport, full: Bool, failed: Bool) {
        Metrics.Counter(
            label: "ipvs_proxy_syncs_total",
            dimensions: [("mode", full ? "full" : "incremental"), ("result", failed ? "error" : "success")],
            factory: factory
        ).increment()
        if report.fullDump {
            Metrics.Counter(label: "ipvs_proxy_table_reads_total", factory: factory).increment()
        }
        Metrics.Counter(label: "ipvs_proxy_real_server_reads_total", factory: factory)
            .increment(by: report.realServerReads)
        let failedIndexes = Set(report.failures.map(\.index))
        var counts: [String: (success: Int, error: Int)] = [:]
        for (index, operation) in report.operations.enumerated() {
            let failed = failedIndexes.contains(index)
            counts[operation.kind.rawValue, default: (0, 0)].success += failed ? 0 : 1
            counts[operation.kind.rawValue, default: (0, 0)].error += failed ? 1 : 0
        }
        let addressFailures = report.addressFailures.count
        counts["bind-address", default: (0, 0)].success += report.addressesBound.count
        counts["unbind-address", default: (0, 0)].success += report.addressesUnbound.count
        counts["bind-address", default: (0, 0)].error += addressFailures
        for (kind, count) in counts {
            if count.success > 0 { operationCounter(kind, "success").increment(by: count.success) }
            if count.error > 0 { operationCounter(kind, "error").increment(by: count.error) }
        }
        drainingRealServers.record(report.draining)
        blockedVirtualServers.record(report.blocked.count)
    }

    private func operationCounter(_ kind: String, _ result: String) -> Metrics.Counter {
        Metrics.Counter(
            label: "ipvs_proxy_kernel_operations_total", dimensions: [("operation", kind), ("result", result)],
            factory: factory)
    }

    /// Every metric in the Prometheus text format.
    public func render() -> String {
        registry.emitToString()
    }
}
