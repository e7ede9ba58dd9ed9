import FakeAPIServer
import Foundation
import KubernetesModel
import NIOHTTP1
import Testing

@testable import StateSources

extension Harness {
    /// The view after each update the source delivered, in order.
    func history() -> [ManifestSet] {
        let all = updates.withLock { $0 }
        return all.indices.compactMap { folded(Array(all[...$0])) }
    }

    /// Waits until the server was asked `count` requests of one kind (`FakeAPIServer.kind(of:)`), up to 10 s.
    func waitForRequests(_ kind: String, count: Int) async throws -> Bool {
        for _ in 0..<200 {
            if server.requests.filter({ FakeAPIServer.kind(of: $0) == kind }).count >= count { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Whether the source said its view was stale, and then current again.
    var saidStaleThenCurrent: Bool {
        let said = reachability.values.withLock { $0 }
        guard let stale = said.firstIndex(of: false) else { return false }
        return said[stale...].contains(true)
    }
}

/// The recorded Services list (ServiceList, resourceVersion 225, 10 Services) with `edit` applied to its items: a
/// response in the API server's shape for faults no recording holds.
private func servicesList(resourceVersion: String = "300", _ edit: (inout [[String: Any]]) -> Void) -> String {
    var list = try! JSONSerialization.jsonObject(with: Data(recorded("list-services.json").utf8)) as! [String: Any]
    var items = list["items"] as! [[String: Any]]
    edit(&items)
    list["items"] = items
    var metadata = list["metadata"] as! [String: Any]
    metadata["resourceVersion"] = resourceVersion
    list["metadata"] = metadata
    return String(decoding: try! JSONSerialization.data(withJSONObject: list), as: UTF8.self)
}

private func named(_ name: String) -> ([String: Any]) -> Bool {
    { (($0["metadata"] as? [String: Any])?["name"] as? String) == name }
}

/// Every view after the first holds these Services.
private func expectNothingLost(
    _ history: [ManifestSet], services names: [String], sourceLocation: SourceLocation = #_sourceLocation
) {
    for (index, view) in history.enumerated() {
        let missing = names.filter { service(view, $0) == nil }
        #expect(missing.isEmpty, "update \(index) lost \(missing)", sourceLocation: sourceLocation)
    }
}

@Suite("The API source: a failed read is never an empty one", .serialized, .timeLimit(.minutes(2)))
struct APISourceFaultTests {
    /// A relist after 410 Gone holding one Service that does not decode keeps that Service's last good version, as a
    /// watch would, and takes the rest of the list (here: `checkout` deleted).
    @Test func aRelistKeepsTheLastGoodVersionOfAnObjectThatDoesNotDecode() async throws {
        let relist = servicesList { items in
            items.removeAll(where: named("checkout"))
            let web = items.firstIndex(where: named("web"))!
            var spec = items[web]["spec"] as! [String: Any]
            spec["ports"] = [["name": "http", "port": "eighty"]]
            items[web]["spec"] = spec
        }
        let harness = try Harness { uri, count in
            switch (FakeAPIServer.kind(of: uri), count) {
            case ("/api/v1/services watch", 0): .stream(lines: recordedLines("watch-expired-410.json"))
            case ("/api/v1/services", 1...): .full(status: .ok, body: relist)
            default: recordedCluster(uri, count)
            }
        }
        harness.run()
        let relisted = try #require(try await harness.latest { service($0, "checkout") == nil })
        #expect(service(relisted, "web")?.spec.ports?.first?.port == 80, "web keeps its last good version")
        #expect(relisted.services.count == 9)
        let problems = harness.updates.withLock { $0.flatMap(\.problems) }
        #expect(problems.contains { $0.location?.name == "shop/web" && $0.field?.contains("port") == true })
        expectNothingLost(harness.history(), services: ["web", "edge", "dns"])
        await harness.finish()
    }

    /// On a relist, an object whose name cannot be read fails the whole list: it is read again until it can be
    /// taken whole.
    @Test func aRelistWithAnObjectWithoutAReadableNameIsNotTaken() async throws {
        let unnamed = servicesList { items in
            items.removeAll(where: named("checkout"))
            items.append(["metadata": "not an object", "spec": [:]])
        }
        let harness = try Harness { uri, count in
            switch (FakeAPIServer.kind(of: uri), count) {
            case ("/api/v1/services watch", 0): .stream(lines: recordedLines("watch-expired-410.json"))
            case ("/api/v1/services", 1...2): .full(status: .ok, body: unnamed)
            case ("/api/v1/services", 3...):
                .full(status: .ok, body: servicesList { $0.removeAll(where: named("edge")) })
            default: recordedCluster(uri, count)
            }
        }
        harness.run()
        let converged = try #require(try await harness.latest { service($0, "edge") == nil })
        #expect(service(converged, "checkout") != nil, "the unreadable relists were not taken")
        #expect(harness.server.requests.filter { FakeAPIServer.kind(of: $0) == "/api/v1/services" }.count == 4)
        #expect(harness.saidStaleThenCurrent)
        await harness.finish()
    }

    /// A 200 answer that is not the list asked for is an error, not an empty list: `{}`, a `Status`, a list of
    /// another kind, a list without `items`.
    @Test(arguments: [
        ("{}", "an object without a kind"),
        (recorded("forbidden-403.json"), "API server answered 403 Forbidden"),
        (recorded("list-endpointslices.json"), "kind EndpointSliceList where a ServiceList was asked for"),
        (#"{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"9"}}"#, "without items"),
    ])
    func anAnswerThatIsNotTheListAskedForIsAnError(_ body: String, _ message: String) async throws {
        let harness = try Harness { uri, count in
            switch (FakeAPIServer.kind(of: uri), count) {
            case ("/api/v1/services watch", 0): .stream(lines: recordedLines("watch-expired-410.json"))
            case ("/api/v1/services", 1...3): .full(status: .ok, body: body)
            case ("/api/v1/services", 4...):
                .full(status: .ok, body: servicesList { $0.removeAll(where: named("edge")) })
            default: recordedCluster(uri, count)
            }
        }
        harness.run()
        _ = try #require(try await harness.latest { service($0, "edge") == nil })
        expectNothingLost(harness.history(), services: ["web", "checkout", "dns"])
        #expect(harness.saidStaleThenCurrent)
        await harness.finish()

        let direct = try Harness { _, _ in .full(status: .ok, body: body) }
        let thrown = await #expect(throws: (any Error).self) {
            _ = try await direct.client.listPage(
                "/api/v1/services", selector: labelSelector, limit: 10, continueToken: nil, itemKind: "Service")
        }
        #expect(thrown.map { "\($0)" }?.contains(message) == true, "\(thrown.map { "\($0)" } ?? "")")
        await direct.finish()
    }

    /// A relist split in pages whose second page fails is not taken: the first page alone would delete the rest.
    @Test func aPagedRelistWhoseSecondPageFailsIsNotTaken() async throws {
        let page1 = recorded("list-services-chunked-page1.json")
        let harness = try Harness { uri, count in
            switch (FakeAPIServer.kind(of: uri), count) {
            case ("/api/v1/services watch", 0): .stream(lines: recordedLines("watch-expired-410.json"))
            case ("/api/v1/services", 0): recordedCluster(uri, count)
            case ("/api/v1/services", 1): .full(status: .ok, body: page1)
            case ("/api/v1/services", 2): .full(status: .internalServerError, body: "etcd is down")
            case ("/api/v1/services", _): .full(status: .ok, body: servicesList { $0.removeAll(where: named("edge")) })
            default: recordedCluster(uri, count)
            }
        }
        harness.run(pageSize: 3)
        _ = try #require(try await harness.latest { service($0, "edge") == nil })
        expectNothingLost(harness.history(), services: ["web", "checkout", "dns", "legacy-db", "api-v6"])
        await harness.finish()
    }

    /// The Node, listed once, stays when a list after 410 Gone fails: node ports on its primary addresses and its
    /// pod CIDRs stay programmed.
    @Test func aNodeListThatFailsAfterAnExpiredWatchKeepsTheNode() async throws {
        let harness = try Harness { uri, count in
            switch (FakeAPIServer.kind(of: uri), count) {
            case ("/api/v1/nodes watch", 0): .stream(lines: recordedLines("watch-expired-410.json"))
            case ("/api/v1/nodes", 1...3): .full(status: .internalServerError, body: "timeout")
            case ("/api/v1/nodes", 4...): .full(status: .forbidden, body: recorded("forbidden-403.json"))
            default: recordedCluster(uri, count)
            }
        }
        harness.run()
        _ = try #require(try await harness.latest { !$0.nodes.isEmpty })
        #expect(try await harness.waitForRequests("/api/v1/nodes", count: 6))
        for (index, view) in harness.history().enumerated() {
            #expect(view.node(named: "node-a") != nil, "update \(index) lost the Node")
        }
        await harness.finish()
    }

    /// A first Node list that fails for a reason other than a refusal (a timeout, a 500) holds back the first
    /// update: without the Node, node ports on its primary addresses would be deleted. Once it is listed, all goes.
    @Test func aFirstNodeListThatFailsHoldsBackTheFirstUpdate() async throws {
        let harness = try Harness { uri, count in
            switch (FakeAPIServer.kind(of: uri), count) {
            case ("/api/v1/nodes", 0...2): .full(status: .gatewayTimeout, body: #"{"kind":"Status","code":504}"#)
            default: recordedCluster(uri, count)
            }
        }
        harness.run()
        _ = try #require(try await harness.latest { !$0.nodes.isEmpty && $0.services.count == 10 })
        #expect(harness.history().allSatisfy { !$0.nodes.isEmpty }, "no update went out without the Node")
        #expect(harness.saidStaleThenCurrent)
        await harness.finish()
    }
}
