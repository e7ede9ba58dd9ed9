import Foundation
import Synchronization

/// What `/healthz` and `/livez` report, as kube-proxy does: when rules were last synced, and unhealthy
/// (503) once a queued change has waited longer than the health timeout.
package final class HealthState: Sendable {
    private struct State {
        var lastUpdated: Date?
        var queuedSince: Date?
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

    /// The response of `/healthz` (with `nodeEligible`) or `/livez`.
    package func response(now: Date? = nil, includeNodeEligible: Bool) -> EndpointResponse {
        let now = now ?? currentTime()
        let (lastUpdated, queuedSince) = state.withLock { ($0.lastUpdated, $0.queuedSince) }
        let limit = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        let healthy = queuedSince.map { now.timeIntervalSince($0) <= limit } ?? true
        var body =
            "{\"lastUpdated\": \"\(Self.goTime(lastUpdated ?? Date(timeIntervalSince1970: 0)))\", "
            + "\"currentTime\": \"\(Self.goTime(now))\""
        if includeNodeEligible { body += ", \"nodeEligible\": true" }
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
