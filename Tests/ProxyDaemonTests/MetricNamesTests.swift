import Foundation
import NIOHTTP1
import Testing

@testable import ProxyDaemon

/// What a scrape shows of the metrics, less their values: each family's `# HELP` and `# TYPE` line, and each
/// series as `name{label="value",...}`; sorted, since the order is the registry's own.
private func exportedShape(_ text: String) -> [String] {
    text.split(separator: "\n").map { line in
        guard !line.hasPrefix("#"), let space = line.lastIndex(of: " ") else { return String(line) }
        return String(line[..<space])
    }.sorted()
}

/// The shape of the first scrape as the daemon exported it before ProxyMetrics moved to swift-prometheus's
/// descriptor API (Tests/Fixtures/metrics/README.md).
private func recordedShape() throws -> [String] {
    let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/metrics/exported-series.txt")
    return try String(contentsOf: file, encoding: .utf8).split(separator: "\n").map(String.init)
}

/// Dashboards, alerts and kube-proxy's documentation query these names, so a change of library or of how the
/// metrics are made must not move one.
@Suite("Metric names as dashboards know them", .timeLimit(.minutes(2)))
struct MetricNamesTests {
    @Test func theFirstScrapeHasTheRecordedNamesLabelsAndHelp() throws {
        expectSame(exportedShape(ProxyMetrics().render()), try recordedShape())
    }

    /// A probe answered with a code other than 200 or 503 gets a series of its own in the same family.
    @Test func aProbeAnswerOfAnotherCodeJoinsItsFamily() throws {
        let metrics = ProxyMetrics()
        _ = metrics.counting(
            EndpointResponse(status: .internalServerError, contentType: "text/plain", body: ""), probe: .healthz)
        let series = #"kubeproxy_proxy_healthz_total{code="500"}"#
        expectSame(exportedShape(metrics.render()), (try recordedShape() + [series]).sorted())
    }

    /// Names the lines that differ, rather than print two lists of 200.
    private func expectSame(
        _ exported: [String], _ recorded: [String], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let unrecorded = exported.filter { !recorded.contains($0) }
        let missing = recorded.filter { !exported.contains($0) }
        #expect(unrecorded == [], "exported, not recorded", sourceLocation: sourceLocation)
        #expect(missing == [], "recorded, not exported", sourceLocation: sourceLocation)
        #expect(exported.count == recorded.count, "a line twice", sourceLocation: sourceLocation)
    }
}
