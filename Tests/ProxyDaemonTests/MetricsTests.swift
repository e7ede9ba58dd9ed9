import Foundation
import NIOHTTP1
import Testing

@testable import ProxyDaemon

/// The names kube-proxy 1.34 registers in IPVS mode (`RegisterMetrics` in pkg/proxy/metrics/metrics.go, less its
/// iptables-restore counter, which has nothing to count here), and ipvs-proxy's own (Docs/daemon.md).
private let kubeProxyMetrics = [
    ("kubeproxy_sync_proxy_rules_duration_seconds", "histogram"),
    ("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", "gauge"),
    ("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge"),
    ("kubeproxy_sync_proxy_rules_endpoint_changes_pending", "gauge"),
    ("kubeproxy_sync_proxy_rules_endpoint_changes_total", "counter"),
    ("kubeproxy_sync_proxy_rules_service_changes_pending", "gauge"),
    ("kubeproxy_sync_proxy_rules_service_changes_total", "counter"),
    ("kubeproxy_proxy_healthz_total", "counter"),
    ("kubeproxy_proxy_livez_total", "counter"),
    ("kubeproxy_network_programming_duration_seconds", "histogram"),
    ("kubeproxy_sync_proxy_rules_no_local_endpoints_total", "gauge"),
]
private let ownMetrics = [
    ("ipvs_proxy_kernel_operations_total", "counter"), ("ipvs_proxy_syncs_total", "counter"),
    ("ipvs_proxy_virtual_servers", "gauge"), ("ipvs_proxy_real_servers", "gauge"),
    ("ipvs_proxy_real_servers_draining", "gauge"), ("ipvs_proxy_virtual_servers_blocked", "gauge"),
    ("ipvs_proxy_invalid_objects_total", "counter"), ("ipvs_proxy_table_reads_total", "counter"),
    ("ipvs_proxy_real_server_reads_total", "counter"), ("ipvs_proxy_nftables_transactions_total", "counter"),
    ("ipvs_proxy_nftables_elements_total", "counter"), ("ipvs_proxy_nftables_reads_total", "counter"),
    ("ipvs_proxy_conntrack_flows_deleted_total", "counter"),
    ("ipvs_proxy_health_check_port_failures_total", "counter"),
    ("ipvs_proxy_http_connections_refused_total", "counter"),
    ("ipvs_proxy_http_connections_timed_out_total", "counter"),
    ("ipvs_proxy_http_accept_failures_total", "counter"), ("ipvs_proxy_http_connections", "gauge"),
]

@Suite("Metrics as kube-proxy names and means them", .timeLimit(.minutes(2)))
struct MetricsTests {
    @Test func everyMetricIsDescribedAndPresentFromTheFirstScrape() throws {
        let text = ProxyMetrics().render()
        let lines = text.split(separator: "\n").map(String.init)
        for (name, type) in kubeProxyMetrics + ownMetrics {
            #expect(lines.contains { $0.hasPrefix("# HELP \(name) ") }, "\(name) has no HELP")
            #expect(lines.contains("# TYPE \(name) \(type)"), "\(name) is not a \(type)")
            let sample = type == "histogram" ? "\(name)_count" : name
            #expect(
                lines.contains { $0.hasPrefix(sample + " ") || $0.hasPrefix(sample + "{") }, "\(name) has no sample")
        }
        // Nothing undescribed: every family that has a TYPE has a HELP.
        for line in lines where line.hasPrefix("# TYPE ") {
            let name = line.split(separator: " ")[2]
            #expect(lines.contains { $0.hasPrefix("# HELP \(name) ") }, "\(name)")
        }
        // Labelled series whose labels are known start at 0.
        let samples = Set(lines)
        #expect(samples.contains(#"kubeproxy_proxy_healthz_total{code="200"} 0"#))
        #expect(
            samples.contains(#"kubeproxy_sync_proxy_rules_no_local_endpoints_total{traffic_policy="internal"} 0.0"#))
        #expect(samples.contains(#"ipvs_proxy_syncs_total{mode="full",result="error"} 0"#))
        #expect(samples.contains(#"ipvs_proxy_kernel_operations_total{operation="bind-address",result="success"} 0"#))
        for endpoint in ["healthz", "metrics", "health-check-node-port"] {
            for counter in [
                "ipvs_proxy_http_connections_refused_total", "ipvs_proxy_http_connections_timed_out_total",
                "ipvs_proxy_http_accept_failures_total",
            ] {
                let present = samples.contains("\(counter){endpoint=\"\(endpoint)\"} 0")
                #expect(present, "\(counter) \(endpoint)")
            }
            let present = samples.contains("ipvs_proxy_http_connections{endpoint=\"\(endpoint)\"} 0.0")
            #expect(present, "ipvs_proxy_http_connections \(endpoint)")
        }
        // Not synced yet: kube-proxy's gauge stays at 0 until a sync succeeds.
        #expect(samples.contains("kubeproxy_sync_proxy_rules_last_timestamp_seconds 0.0"))
    }

    @Test func networkProgrammingHasKubeProxysBuckets() {
        let seconds = ProxyMetrics.networkProgrammingBuckets.map {
            Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18
        }
        // merge(LinearBuckets(0.25, 0.25, 2), LinearBuckets(1, 1, 59), LinearBuckets(60, 5, 12),
        // LinearBuckets(120, 30, 7)): 80 bounds, 0.25 s to 300 s.
        #expect(seconds.count == 80)
        #expect(Array(seconds.prefix(4)) == [0.25, 0.5, 1, 2])
        #expect(seconds.contains(59) && seconds.contains(115) && seconds.contains(150))
        #expect(seconds.last == 300)
        #expect(ProxyMetrics.syncBuckets.count == 15)
    }

    @Test func probesAreCountedByTheirAnswer() {
        let metrics = ProxyMetrics()
        let ok = EndpointResponse(contentType: "application/json", body: "{}")
        let unavailable = EndpointResponse(status: .serviceUnavailable, contentType: "application/json", body: "{}")
        _ = metrics.counting(ok, probe: .healthz)
        _ = metrics.counting(unavailable, probe: .healthz)
        _ = metrics.counting(unavailable, probe: .healthz)
        _ = metrics.counting(ok, probe: .livez)
        let text = metrics.render()
        #expect(text.contains(#"kubeproxy_proxy_healthz_total{code="200"} 1"#))
        #expect(text.contains(#"kubeproxy_proxy_healthz_total{code="503"} 2"#))
        #expect(text.contains(#"kubeproxy_proxy_livez_total{code="200"} 1"#))
        #expect(text.contains(#"kubeproxy_proxy_livez_total{code="503"} 0"#))
    }
}
