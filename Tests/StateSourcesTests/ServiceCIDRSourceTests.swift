import FakeAPIServer
import Foundation
import KubernetesModel
import Logging
import NIOHTTP1
import Synchronization
import Testing

@testable import StateSources

private let serviceCIDRPath = "/apis/networking.k8s.io/v1/servicecidrs"

/// `list-servicecidrs.json` (resource version 412: `kubernetes` and `extra`) with `edit` applied to its items and
/// another resource version: a response in the API server's shape for faults no fixture holds.
private func serviceCIDRList(resourceVersion: String, _ edit: (inout [[String: Any]]) -> Void) -> String {
    var list =
        try! JSONSerialization.jsonObject(with: Data(handWritten("list-servicecidrs.json").utf8)) as! [String: Any]
    var items = list["items"] as! [[String: Any]]
    edit(&items)
    list["items"] = items
    list["metadata"] = ["resourceVersion": resourceVersion]
    return String(decoding: try! JSONSerialization.data(withJSONObject: list), as: UTF8.self)
}

/// A ServiceCIDR list item (no `kind`, as the API server writes them).
private func item(_ name: String, version: String, cidrs: [String]) -> [String: Any] {
    ["metadata": ["name": name, "resourceVersion": version], "spec": ["cidrs": cidrs]]
}

private func setting(cidrs: [String], of name: String) -> (inout [[String: Any]]) -> Void {
    { items in
        let index = items.firstIndex { (($0["metadata"] as? [String: Any])?["name"] as? String) == name }!
        items[index]["spec"] = ["cidrs": cidrs]
    }
}

/// Each ServiceCIDR of a view, by name, with its ranges.
private func ranges(_ set: ManifestSet) -> [String: [String]] {
    Dictionary(
        uniqueKeysWithValues: set.serviceCIDRs.map { ($0.object.metadata.name ?? "", $0.object.spec?.cidrs ?? []) })
}

/// A log handler that keeps what was logged, for tests that check what the source says and how often.
struct CapturedLog: LogHandler {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    final class Entries: Sendable {
        let values = Mutex<[Entry]>([])
    }

    let entries: Entries
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        entries.values.withLock {
            $0.append(Entry(level: event.level, message: "\(event.message)", metadata: event.metadata ?? [:]))
        }
    }
}

/// The kinds of request a fake server was asked, and whether the scripted events were sent.
private final class Asked: Sendable {
    struct State {
        var kinds: Set<String> = []
        var sent = false
    }
    let kinds = Mutex(State())
}

extension Harness {
    /// The problems the source's updates carried, once `condition` holds for them (waits up to 10 s).
    func problems(until condition: ([ManifestProblem]) -> Bool) async throws -> [ManifestProblem] {
        for _ in 0..<200 {
            if condition(updates.withLock { $0.flatMap(\.problems) }) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        return updates.withLock { $0.flatMap(\.problems) }
    }
}

@Suite("The API source's ServiceCIDRs", .serialized, .timeLimit(.minutes(2)))
struct ServiceCIDRSourceTests {
    /// Listed with the rest, then followed: an ADDED one, its MODIFIED status, a DELETED one, each handed out as a
    /// change of its own after the first update; the next watch starts at the bookmark.
    @Test func theServiceCIDRsAreListedAndTheirChangesFollowed() async throws {
        // The events are sent once every other kind is watched (each is watched only after its list was taken, so
        // the first update is out): sent earlier, they could be folded into the first update.
        let others: Set = [
            "/api/v1/services watch", "/apis/discovery.k8s.io/v1/endpointslices watch", "/api/v1/nodes watch",
        ]
        let asked = Asked()
        let harness = try Harness { uri, count in
            let kind = FakeAPIServer.kind(of: uri)
            let (othersWatched, sent) = asked.kinds.withLock { state in
                state.kinds.insert(kind)
                let ready = state.kinds.isSuperset(of: others)
                defer { if ready, kind == "\(serviceCIDRPath) watch" { state.sent = true } }
                return (ready, state.sent)
            }
            guard kind == "\(serviceCIDRPath) watch" else { return recordedCluster(uri, count) }
            // Not yet: a watch that ends at once, asked again from the same version.
            guard othersWatched else { return .stream(lines: []) }
            return sent ? .hold(lines: []) : .stream(lines: handWrittenLines("watch-servicecidrs.jsonl"))
        }
        harness.run()
        let last = try #require(
            try await harness.latest { set in
                ranges(set)["more"] != nil && ranges(set)["extra"] == nil
                    && set.serviceCIDRs.contains { $0.object.metadata.name == "more" && $0.object.isReady }
            })
        #expect(ranges(last) == ["kubernetes": ["10.96.0.0/12", "fd00:10:96::/108"], "more": ["10.113.0.0/24"]])

        let updates = harness.updates.withLock { $0 }
        guard case .everything(let first) = updates.first?.changes.first else {
            Issue.record("the first update is not everything")
            return
        }
        #expect(ranges(first) == ["kubernetes": ["10.96.0.0/12", "fd00:10:96::/108"], "extra": ["10.112.0.0/24"]])
        #expect(first.serviceCIDRs.first { $0.object.metadata.name == "extra" }?.object.isBeingDeleted == true)
        #expect(first.serviceCIDRs.first?.location.file == serviceCIDRPath)
        #expect(updates.first?.serviceCIDRChanges == 2)
        let later = updates.dropFirst().flatMap(\.changes).compactMap { change -> String? in
            guard case .serviceCIDR(let name, let located) = change else { return nil }
            return "\(name.name) \(located?.object.metadata.resourceVersion ?? "deleted")"
        }
        #expect(later == ["more 413", "more 414", "extra deleted"])
        #expect(updates.dropFirst().map(\.serviceCIDRChanges).reduce(0, +) == 3)

        // Listed whole (no selector), then watched from the list's version, and again from the bookmark's.
        let requests = try await harness.requests { requests in
            requests.contains { $0.contains("servicecidrs?watch=1") && $0.contains("=420&") }
        }
        #expect(requests.contains("\(serviceCIDRPath)?limit=500"))
        #expect(
            requests.contains(
                "\(serviceCIDRPath)?watch=1&allowWatchBookmarks=true&resourceVersion=412&timeoutSeconds=300"))
        #expect(
            requests.contains(
                "\(serviceCIDRPath)?watch=1&allowWatchBookmarks=true&resourceVersion=420&timeoutSeconds=300"))
        await harness.finish()
    }

    /// An API server older than 1.33 (404) or a ClusterRole without `servicecidrs` (403) holds back nothing: the
    /// Services flow, the source knows no ServiceCIDR, says once why, is not stale, and keeps asking.
    @Test(arguments: [
        (HTTPResponseStatus.notFound, "servicecidrs-not-found-404.json"),
        (HTTPResponseStatus.forbidden, "servicecidrs-forbidden-403.json"),
    ])
    func aServiceCIDRListThatIsRefusedOrMissingHoldsBackNothing(_ status: HTTPResponseStatus, _ body: String)
        async throws
    {
        let harness = try Harness { uri, count in
            FakeAPIServer.kind(of: uri) == serviceCIDRPath
                ? .full(status: status, body: handWritten(body)) : recordedCluster(uri, count)
        }
        let log = CapturedLog.Entries()
        harness.run(logger: Logger(label: "test") { _ in CapturedLog(entries: log) })
        let snapshot = try #require(try await harness.latest { $0.services.count == 10 && !$0.nodes.isEmpty })
        #expect(snapshot.serviceCIDRs.isEmpty)
        #expect(snapshot.endpointSlices.count == 10)
        #expect(try await harness.waitForRequests(serviceCIDRPath, count: 4), "the list is asked for again")
        #expect(!harness.reachability.values.withLock { $0.contains(false) }, "a refusal is not a stale view")

        let warnings = log.values.withLock { entries in
            entries.filter { $0.level >= .warning && $0.metadata["kind"] == "\(ResourceKind.serviceCIDR)" }
        }
        #expect(warnings.count == 1, "\(warnings.map(\.message))")
        #expect(warnings.first?.metadata["error"]?.description.contains("\(status.code)") == true)
        #expect(warnings.first?.metadata["meaning"]?.description.contains("servicecidrs") == true)
        await harness.finish()
    }

    /// Once listed, the ServiceCIDRs stay while a list after `410 Gone` answers 500; the list that then succeeds is
    /// taken (`extra` gone).
    @Test func aRelistThatFailsKeepsTheLastGoodServiceCIDRs() async throws {
        let relist = serviceCIDRList(resourceVersion: "430") { items in
            items.removeAll { (($0["metadata"] as? [String: Any])?["name"] as? String) == "extra" }
        }
        let harness = try Harness { uri, count in
            switch (FakeAPIServer.kind(of: uri), count) {
            case ("\(serviceCIDRPath) watch", 0): .stream(lines: recordedLines("watch-expired-410.json"))
            case (serviceCIDRPath, 1...3): .full(status: .internalServerError, body: "etcdserver: request timed out")
            case (serviceCIDRPath, 4...): .full(status: .ok, body: relist)
            default: recordedCluster(uri, count)
            }
        }
        harness.run()
        let converged = try #require(
            try await harness.latest { !$0.serviceCIDRs.isEmpty && ranges($0)["extra"] == nil })
        #expect(ranges(converged) == ["kubernetes": ["10.96.0.0/12", "fd00:10:96::/108"]])
        #expect(try await harness.waitForRequests(serviceCIDRPath, count: 5))
        for (index, view) in harness.history().enumerated() {
            #expect(ranges(view)["kubernetes"] != nil, "update \(index) lost the kubernetes ServiceCIDR")
        }
        #expect(harness.saidStaleThenCurrent)
        await harness.finish()
    }

    /// A ServiceCIDR whose `spec.cidrs` the API server would not have taken is a problem naming it and the field,
    /// as any invalid object is: skipped on the first list, its last good version kept on a watch and a relist.
    @Test func aServiceCIDRWithBadRangesIsSkippedAndTheLastGoodVersionKept() async throws {
        let first = serviceCIDRList(resourceVersion: "412") { items in
            items.append(item("host-bits", version: "300", cidrs: ["10.96.0.1/12"]))
        }
        // The watch: `kubernetes` changed to two IPv4 ranges, then the version expires.
        var twoIPv4 = try #require(
            try JSONSerialization.jsonObject(with: Data(handWritten("list-servicecidrs.json").utf8)) as? [String: Any])
        var kubernetes = try #require((twoIPv4["items"] as? [[String: Any]])?.first)
        kubernetes["spec"] = ["cidrs": ["10.96.0.0/12", "10.97.0.0/16"]]
        var metadata = try #require(kubernetes["metadata"] as? [String: Any])
        metadata["resourceVersion"] = "413"
        kubernetes["metadata"] = metadata
        twoIPv4 = ["type": "MODIFIED", "object": kubernetes]
        let modified = String(decoding: try JSONSerialization.data(withJSONObject: twoIPv4), as: UTF8.self)
        // The relist: `extra` not in canonical form.
        let relist = serviceCIDRList(resourceVersion: "440", setting(cidrs: ["10.112.0.000/24"], of: "extra"))
        let harness = try Harness { uri, count in
            switch (FakeAPIServer.kind(of: uri), count) {
            case (serviceCIDRPath, 0): .full(status: .ok, body: first)
            case (serviceCIDRPath, _): .full(status: .ok, body: relist)
            case ("\(serviceCIDRPath) watch", 0):
                .stream(lines: [modified] + recordedLines("watch-expired-410.json"))
            default: recordedCluster(uri, count)
            }
        }
        harness.run()
        let problems = try await harness.problems { problems in
            problems.contains { $0.location?.name == "extra" }
        }
        let byName = Dictionary(grouping: problems) { $0.location?.name ?? "" }
        #expect(byName["host-bits"]?.first?.field == "spec.cidrs[0]", "\(problems)")
        #expect(byName["host-bits"]?.first?.location?.kind == "ServiceCIDR")
        #expect(byName["kubernetes"]?.first?.field == "spec.cidrs", "\(problems)")
        #expect(byName["extra"]?.first?.field == "spec.cidrs[0]", "\(problems)")
        #expect(try await harness.waitForRequests(serviceCIDRPath, count: 2))
        for (index, view) in harness.history().enumerated() {
            #expect(
                ranges(view) == ["kubernetes": ["10.96.0.0/12", "fd00:10:96::/108"], "extra": ["10.112.0.0/24"]],
                "update \(index)")
        }
        await harness.finish()
    }
}
