import Foundation
import KubernetesModel
import Synchronization

/// What `/healthz` and `/livez` report, as kube-proxy does: when rules were last synced, and unhealthy
/// (503) once a queued change has waited longer than the health timeout, or the source's view has been stale that
/// long (the API server out of reach, a folder that cannot be read). `/healthz` also answers 503 while the
/// node is not eligible for load-balancer traffic (pkg/proxy/healthcheck/proxy_health.go, Kubernetes 1.34).
package final class HealthState: Sendable {
    private struct State {
        var lastUpdated: Date?
        var queuedSince: Date?
        var nodeEligible = true
        /// Since when the source's view is stale: the API server out of reach, a folder that cannot be read.
        var staleSince: Date?
    }

    private let state = Mutex(State())
    package let timeout: Duration
    /// The wall clock (a test's own clock in tests).
    private let currentTime: @Sendable () -> Date

    package init(timeout: Duration, currentTime: @escaping @Sendable () -> Date = { Date() }) {
        self.timeout = timeout
        self.currentTime = currentTime
    }

    /// A change arrived that is not yet in the kernel.
    func queued(at date: Date? = nil) {
        let date = date ?? currentTime()
        state.withLock { if $0.queuedSince == nil { $0.queuedSince = date } }
    }

    /// Everything queued up to now is in the kernel.
    func synced(at date: Date? = nil) {
        let date = date ?? currentTime()
        state.withLock {
            $0.lastUpdated = date
            $0.queuedSince = nil
        }
    }

    /// Follows whether the source's view is current. While it is stale (the API server out of reach, a folder
    /// that cannot be read), no change can be queued, so the health timeout runs from the first failure instead:
    /// kube-proxy's rule, for a proxy that cannot hear of changes.
    package func sourceCurrent(_ current: Bool, at date: Date? = nil) {
        let date = date ?? currentTime()
        state.withLock {
            if current {
                $0.staleSince = nil
            } else if $0.staleSince == nil {
                $0.staleSince = date
            }
        }
    }

    /// Follows the proxy's own Node: not eligible while it is being deleted or carries the cluster autoscaler's
    /// deletion taint; eligible when there is no Node to go by.
    package func follow(_ node: Node?) {
        let eligible =
            node.map { node in
                node.metadata.deletionTimestamp == nil
                    && !(node.spec?.taints ?? []).contains { $0.key == Node.autoscalerDeletionTaint }
            } ?? true
        state.withLock { $0.nodeEligible = eligible }
    }

    /// Whether every queued change reached the kernel within the health timeout (what a health-check node
    /// port reports as `serviceProxyHealthy`; the node's eligibility is not part of it).
    package func isHealthy(now: Date? = nil) -> Bool {
        let now = now ?? currentTime()
        let waitingSince = state.withLock { state in
            [state.queuedSince, state.staleSince].compactMap { $0 }.min()
        }
        let limit = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        return waitingSince.map { now.timeIntervalSince($0) <= limit } ?? true
    }

    /// The response of `/healthz` (with `nodeEligible`, which it also answers by) or `/livez`.
    package func response(now: Date? = nil, includeNodeEligible: Bool) -> EndpointResponse {
        let now = now ?? currentTime()
        let (lastUpdated, nodeEligible) = state.withLock { ($0.lastUpdated, $0.nodeEligible) }
        var healthy = isHealthy(now: now)
        var body =
            "{\"lastUpdated\": \"\(Self.goTime(lastUpdated ?? Date(timeIntervalSince1970: 0)))\", "
            + "\"currentTime\": \"\(Self.goTime(now))\""
        if includeNodeEligible {
            body += ", \"nodeEligible\": \(nodeEligible)"
            healthy = healthy && nodeEligible
        }
        body += "}"
        return EndpointResponse(
            status: healthy ? .ok : .serviceUnavailable, contentType: "application/json", body: body)
    }

    /// A time as Go prints `time.Time` in UTC, which is what kube-proxy's health JSON carries:
    /// `2026-11-25 16:10:00.123456789 +0000 UTC`.
    static func goTime(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let nanoseconds = Int(((interval - Double(seconds)) * 1e9).rounded())
        var fraction = ""
        if nanoseconds > 0 {
            fraction = String(nanoseconds)
            fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
            while fraction.hasSuffix("0") { fraction.removeLast() }
            fraction = "." + fraction
        }
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))\(fraction) +0000 UTC"
    }
}
