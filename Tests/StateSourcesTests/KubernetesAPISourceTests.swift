import FakeAPIServer
import Foundation
import KubernetesModel
import Logging
import NIOHTTP1
import Synchronization
import Testing

@testable import StateSources

/// kube-proxy's label selector (no `service-proxy-name`, no `headless` label), as it goes on the wire.
let labelSelector =
    "labelSelector=%21service.kubernetes.io%2Fservice-proxy-name%2C%21service.kubernetes.io%2Fheadless"
/// The first list of Services.
let serviceList = "/api/v1/services?\(labelSelector)&limit=500"

/// The server's answers for a normal cluster: the recorded lists, the hand-written Node and ServiceCIDRs, and
/// watches that stay open.
@Sendable func recordedCluster(_ uri: String, _ count: Int) -> FakeResponse {
    switch FakeAPIServer.kind(of: uri) {
    case "/api/v1/services": .full(status: .ok, body: recorded("list-services.json"))
    case "/apis/discovery.k8s.io/v1/endpointslices": .full(status: .ok, body: recorded("list-endpointslices.json"))
    case "/api/v1/nodes": .full(status: .ok, body: handWritten("list-nodes.json"))
    case "/apis/networking.k8s.io/v1/servicecidrs": .full(status: .ok, body: handWritten("list-servicecidrs.json"))
    default: .hold(lines: [])
    }
}

/// The updates a source delivered.
final class Updates: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [ClusterUpdate] = []

    func withLock<Result>(_ body: (inout [ClusterUpdate]) -> Result) -> Result {
        lock.withLock { body(&values) }
    }
}

/// What a source said, in order.
final class Said: Sendable {
    let values = Mutex<[Bool]>([])
}

/// Runs a source against a fake server and collects its updates.
final class Harness: @unchecked Sendable {
    let server: FakeAPIServer
    let client: KubernetesAPIClient
    let updates = Updates()
    /// What the source said of its view, in order: `false` stale (a request failed), `true` current again.
    let reachability = Said()
    private var task: Task<Void, any Error>?

    init(caFile: String = "tls/ca.pem", respond: @escaping @Sendable (String, Int) -> FakeResponse) throws {
        server = FakeAPIServer(respond: respond)
        try server.start()
        var configuration = APIServerConfiguration(
            server: server.url,
            certificateAuthorityPEM: Array(try Data(contentsOf: URL(fileURLWithPath: fixture(caFile)))))
        configuration.bearerToken = "test-token"
        client = try KubernetesAPIClient(configuration: configuration)
    }

    func run(pageSize: Int = 500, logger: Logger = Logger(label: "test")) {
        var source = KubernetesAPISource(client: client, nodeName: "node-a", logger: logger)
        source.pageSize = pageSize
        source.initialBackoff = .milliseconds(10)
        let reachability = reachability
        let updates = updates
        task = Task {
            try await source.run(
                update: { update in updates.withLock { $0.append(update) } },
                condition: { condition in reachability.values.withLock { $0.append(condition == .current) } })
        }
    }

    /// The latest snapshot, once `condition` holds for it (waits up to 10 s).
    func latest(where condition: (ManifestSet) -> Bool) async throws -> ManifestSet? {
        for _ in 0..<200 {
            if let snapshot = updates.withLock({ folded($0) }), condition(snapshot) { return snapshot }
            try await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    /// The requests the server was asked, once `condition` holds for them (waits up to 10 s; then the requests as
    /// they are, for the test's expectations to name what is missing).
    func requests(until condition: ([String]) -> Bool) async throws -> [String] {
        for _ in 0..<200 {
            if condition(server.requests) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        return server.requests
    }

    /// What the source said of its view, once `condition` holds for it (waits up to 10 s).
    func said(until condition: ([Bool]) -> Bool) async throws -> [Bool] {
        for _ in 0..<200 {
            if condition(reachability.values.withLock({ $0 })) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        return reachability.values.withLock { $0 }
    }

    func finish() async {
        task?.cancel()
        server.stop()
        _ = await task?.result
        try? await client.shutdown()
    }
}

/// The objects a source's updates add up to (`nil` before the first), in name order.
func folded(_ updates: [ClusterUpdate]) -> ManifestSet? {
    guard !updates.isEmpty else { return nil }
    var services: [ObjectName: Located<Service>] = [:]
    var slices: [ObjectName: Located<EndpointSlice>] = [:]
    var nodes: [ObjectName: Located<Node>] = [:]
    var serviceCIDRs: [ObjectName: Located<ServiceCIDR>] = [:]
    for change in updates.flatMap(\.changes) {
        switch change {
        case .everything(let set):
            services = Dictionary(uniqueKeysWithValues: set.services.map { ($0.object.metadata.objectName, $0) })
            slices = Dictionary(uniqueKeysWithValues: set.endpointSlices.map { ($0.object.metadata.objectName, $0) })
            nodes = Dictionary(uniqueKeysWithValues: set.nodes.map { ($0.object.metadata.objectName, $0) })
            serviceCIDRs = Dictionary(
                uniqueKeysWithValues: set.serviceCIDRs.map { ($0.object.metadata.objectName, $0) })
        case .service(let name, let located): services[name] = located
        case .endpointSlice(let name, let located): slices[name] = located
        case .node(let name, let located): nodes[name] = located
        case .serviceCIDR(let name, let located): serviceCIDRs[name] = located
        }
    }
    var set = ManifestSet()
    set.services = services.sorted { $0.key < $1.key }.map(\.value)
    set.endpointSlices = slices.sorted { $0.key < $1.key }.map(\.value)
    set.nodes = nodes.sorted { $0.key < $1.key }.map(\.value)
    set.serviceCIDRs = serviceCIDRs.sorted { $0.key < $1.key }.map(\.value)
    return set
}

func service(_ set: ManifestSet, _ name: String) -> Service? {
    set.services.first { $0.object.metadata.name == name }?.object
}

func slice(_ set: ManifestSet, _ name: String) -> EndpointSlice? {
    set.endpointSlices.first { $0.object.metadata.name == name }?.object
}

/// Whether Services, and EndpointSlices, were watched from these resource versions.
private func watched(_ requests: [String], services: Int, endpointSlices: Int) -> (services: Bool, slices: Bool) {
    (
        requests.contains(
            "/api/v1/services?\(labelSelector)&watch=1&allowWatchBookmarks=true&resourceVersion=\(services)"
                + "&timeoutSeconds=300"),
        requests.contains {
            $0.hasPrefix("/apis/discovery.k8s.io/v1/endpointslices?\(labelSelector)&watch=1")
                && $0.contains("resourceVersion=\(endpointSlices)&")
        }
    )
}

/// Services and EndpointSlices were watched from these resource versions.
private func expectWatches(
    _ requests: [String], services: Int, endpointSlices: Int, sourceLocation: SourceLocation = #_sourceLocation
) {
    let watches = watched(requests, services: services, endpointSlices: endpointSlices)
    #expect(watches.services, sourceLocation: sourceLocation)
    #expect(watches.slices, sourceLocation: sourceLocation)
}

@Suite("The Kubernetes API source against a fake API server", .serialized, .timeLimit(.minutes(2)))
struct KubernetesAPISourceTests {
    @Test func initialListGivesEveryServiceAndSlice() async throws {
        let harness = try Harness(respond: recordedCluster)
        harness.run()
        let snapshot = try #require(
            try await harness.latest { $0.services.count == 10 && $0.endpointSlices.count == 10 })
        #expect(service(snapshot, "web")?.spec.clusterIPs == ["10.105.23.164"])
        #expect(harness.updates.withLock { $0.first?.serviceChanges } == 10)
        // Both were listed with the bearer token and then watched from the list's resource version.
        let requests = try await harness.requests { requests in
            let watches = watched(requests, services: 225, endpointSlices: 225)
            return watches.services && watches.slices
        }
        #expect(requests.contains(serviceList))
        expectWatches(requests, services: 225, endpointSlices: 225)
        await harness.finish()
    }

    @Test func watchEventsAddModifyDeleteAndBookmarksMoveTheResourceVersion() async throws {
        // The recorded bookmarks repeat the last event's version (232), so the stream ends with one of them moved
        // on to 240: only a bookmark can say where the next watch starts.
        let services = recordedLines("watch-services.jsonl")
        let laterBookmark = try #require(services.last?.replacingOccurrences(of: #""232""#, with: #""240""#))
        #expect(laterBookmark.contains(#""type":"BOOKMARK""#) && laterBookmark.contains(#""240""#))
        let harness = try Harness { uri, count in
            switch (FakeAPIServer.kind(of: uri), count) {
            case ("/api/v1/services watch", 0): .stream(lines: services + [laterBookmark])
            case ("/apis/discovery.k8s.io/v1/endpointslices watch", 0):
                .stream(lines: recordedLines("watch-endpointslices.jsonl"))
            default: recordedCluster(uri, count)
            }
        }
        harness.run()
        let snapshot = try #require(
            try await harness.latest { set in
                service(set, "checkout")?.spec.externalIPs == ["192.0.2.10", "192.0.2.11"]
                    && slice(set, "web-7xk2p")?.endpoints?.contains { $0.addresses == ["10.244.1.9"] } == true
                    && service(set, "promo") == nil && slice(set, "promo-w3j5d") == nil
            })
        #expect(snapshot.services.count == 10)
        // (Whether an update showed promo between its ADDED and DELETED depends on how the stream was cut into
        // reads: both may be applied before one update. aDroppedConnectionResumesTheWatchWhereItStopped sees it.)
        // After the stream ended, the next watch starts at the last bookmark.
        let requests = try await harness.requests { requests in
            let watches = watched(requests, services: 240, endpointSlices: 234)
            return watches.services && watches.slices
        }
        expectWatches(requests, services: 240, endpointSlices: 234)
        await harness.finish()
    }

    @Test func anExpiredResourceVersionMeansAFreshList() async throws {
        let harness = try Harness { uri, count in
            switch (FakeAPIServer.kind(of: uri), count) {
            case ("/api/v1/services watch", 0): .stream(lines: recordedLines("watch-expired-410.json"))
            default: recordedCluster(uri, count)
            }
        }
        harness.run()
        _ = try #require(try await harness.latest { $0.services.count == 10 })
        let requests = try await harness.requests { $0.filter { $0 == serviceList }.count >= 2 }
        #expect(requests.filter { $0 == serviceList }.count == 2)
        await harness.finish()
    }

    @Test func aDroppedConnectionResumesTheWatchWhereItStopped() async throws {
        let lines = recordedLines("watch-services.jsonl")
        let harness = try Harness { uri, count in
            switch (FakeAPIServer.kind(of: uri), count) {
            // ADDED promo (228), then the connection drops mid-response.
            case ("/api/v1/services watch", 0): .dropAfter(lines: Array(lines.prefix(1)))
            default: recordedCluster(uri, count)
            }
        }
        harness.run()
        _ = try #require(try await harness.latest { service($0, "promo") != nil })
        let requests = try await harness.requests { $0.contains { $0.contains("resourceVersion=228") } }
        #expect(
            requests.contains(
                "/api/v1/services?\(labelSelector)&watch=1&allowWatchBookmarks=true&resourceVersion=228"
                    + "&timeoutSeconds=300"))
        // Resumed, not relisted.
        #expect(requests.filter { $0 == serviceList }.count == 1)
        await harness.finish()
    }

    @Test func aChunkedListWhoseContinueExpiredStartsOver() async throws {
        let page1 = recorded("list-services-chunked-page1.json")
        let page2 = recorded("list-services-chunked-page2.json")
        let harness = try Harness { uri, count in
            guard FakeAPIServer.kind(of: uri) == "/api/v1/services" else { return recordedCluster(uri, count) }
            if !uri.contains("continue=") && count == 0 { return .full(status: .ok, body: page1) }
            if uri.contains("continue=") && count == 1 { return .full(status: .ok, body: page2) }
            if uri.contains("continue=") {
                return .full(status: .gone, body: recorded("list-continue-expired-410.json"))
            }
            return .full(status: .ok, body: recorded("list-services.json"))
        }
        harness.run(pageSize: 3)
        let snapshot = try #require(try await harness.latest { $0.services.count == 10 })
        #expect(snapshot.services.count == 10)
        let lists = harness.server.requests.filter { FakeAPIServer.kind(of: $0) == "/api/v1/services" }
        #expect(lists.count == 4)
        #expect(lists[0] == "/api/v1/services?\(labelSelector)&limit=3")
        #expect(lists[1].hasPrefix("/api/v1/services?\(labelSelector)&limit=3&continue="))
        #expect(lists[3] == "/api/v1/services?\(labelSelector)&limit=3")
        await harness.finish()
    }

    @Test func theOwnNodeIsListedByNameAndItsChangesFollowed() async throws {
        let harness = try Harness { uri, count in
            switch (FakeAPIServer.kind(of: uri), count) {
            case ("/api/v1/nodes watch", 0): .stream(lines: handWrittenLines("watch-nodes.jsonl"))
            default: recordedCluster(uri, count)
            }
        }
        harness.run()
        let first = try #require(try await harness.latest { !$0.nodes.isEmpty })
        #expect(first.node(named: "node-a")?.zone == "zone-a")
        #expect(first.node(named: "node-a")?.spec?.podCIDRs == ["10.244.1.0/24", "fd00:244:1::/64"])
        let tainted = try #require(
            try await harness.latest { $0.node(named: "node-a")?.spec?.taints?.isEmpty == false })
        #expect(tainted.node(named: "node-a")?.spec?.taints?.first?.key == Node.autoscalerDeletionTaint)
        #expect(harness.server.requests.contains("/api/v1/nodes?fieldSelector=metadata.name%3Dnode-a&limit=500"))
        await harness.finish()
    }

    /// Without the RBAC to read Nodes, Services are still proxied (and the Node list is retried).
    @Test func aNodeListThatIsRefusedDoesNotHoldBackTheServices() async throws {
        let harness = try Harness { uri, count in
            FakeAPIServer.kind(of: uri) == "/api/v1/nodes"
                ? .full(status: .forbidden, body: recorded("forbidden-403.json")) : recordedCluster(uri, count)
        }
        harness.run()
        let snapshot = try #require(try await harness.latest { $0.services.count == 10 })
        #expect(snapshot.nodes.isEmpty)
        let requests = try await harness.requests { $0.filter { $0.hasPrefix("/api/v1/nodes") }.count >= 2 }
        #expect(requests.filter { $0.hasPrefix("/api/v1/nodes") }.count >= 2)
        await harness.finish()
    }

    /// The health endpoint hears when the Services cannot be read, and when they can again.
    @Test func refusedServiceRequestsAreReportedUntilOneSucceeds() async throws {
        let harness = try Harness { uri, count in
            FakeAPIServer.kind(of: uri) == "/api/v1/services" && count <= 2
                ? .full(status: .internalServerError, body: recorded("forbidden-403.json"))
                : recordedCluster(uri, count)
        }
        harness.run()
        _ = try #require(try await harness.latest { $0.services.count == 10 })
        // Said after the update that the list made (the informer hands it out first).
        let said = try await harness.said { $0.last == true }
        // Refusals, then the list succeeds: reachable again once, at the end (the slices' own success, while the
        // Services still failed, did not say so).
        #expect(said.first == false, "\(said)")
        #expect(said.filter { $0 } == [true], "\(said)")
        #expect(said.last == true, "\(said)")
        await harness.finish()
    }

    @Test func aServerSignedByAnotherCAIsRefused() async throws {
        let harness = try Harness(caFile: "tls/other-ca.pem", respond: recordedCluster)
        await #expect(throws: (any Error).self) {
            _ = try await harness.client.listPage(
                "/api/v1/services", selector: labelSelector, limit: 10, continueToken: nil, itemKind: "Service")
        }
        #expect(harness.server.requests.isEmpty)
        await harness.finish()
    }

    @Test(arguments: [("unauthorized-401.json", 401, "Unauthorized"), ("forbidden-403.json", 403, "Forbidden")])
    func refusalsAreAPIErrorsWithTheServersMessage(_ file: String, _ status: Int, _ reason: String) async throws {
        let harness = try Harness { _, _ in .full(status: HTTPResponseStatus(statusCode: status), body: recorded(file))
        }
        let error = try await #require(throws: APIError.self) {
            _ = try await harness.client.listPage(
                "/api/v1/services", selector: labelSelector, limit: 10, continueToken: nil, itemKind: "Service")
        }
        #expect(error.status == status)
        #expect(error.reason == reason)
        #expect(!error.isExpired)
        await harness.finish()
    }
}

@Suite("The API source's trigger times", .timeLimit(.minutes(2)))
struct LastChangeTriggerTests {
    private func slice(_ name: String, triggeredAt time: String?) -> EndpointSlice {
        EndpointSlice(
            metadata: ObjectMeta(
                name: name, namespace: "default",
                annotations: time.map { [LastChangeTrigger.annotation: $0] }),
            addressType: "IPv4", endpoints: [], ports: [])
    }

    @Test func aChangeMadeAfterTheStartIsTimedAndAnOlderOrDeletedOneIsNot() throws {
        let store = ObjectStore()
        store.replace(.service, with: Listing<Service>(), problems: [])
        store.replace(.node, with: Listing<Node>(), problems: [])
        store.replace(.serviceCIDR, with: Listing<ServiceCIDR>(), problems: [])
        let old = slice("old", triggeredAt: "2020-01-01T00:00:00Z")
        store.replace(.endpointSlice, with: Listing([old.metadata.objectName: old]), problems: [])
        #expect(store.takeUpdate()?.lastChangeTriggerTimes == [])

        let later = Date().addingTimeInterval(1)
        let text = later.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        store.upsert(.endpointSlice, slice("new", triggeredAt: text), resourceVersion: nil)
        let times = try #require(store.takeUpdate()?.lastChangeTriggerTimes)
        #expect(times.count == 1)
        #expect(abs((times.first ?? .distantPast).timeIntervalSince(later)) < 0.001)

        store.remove(.endpointSlice, ObjectName(namespace: "default", name: "new"), resourceVersion: nil)
        #expect(store.takeUpdate()?.lastChangeTriggerTimes == [])
    }

    @Test func kubernetesSpellingsParse() {
        #expect(LastChangeTrigger.time(of: slice("a", triggeredAt: "2024-05-01T10:20:30Z")) != nil)
        #expect(LastChangeTrigger.time(of: slice("a", triggeredAt: "2024-05-01T10:20:30.123456789Z")) != nil)
        #expect(LastChangeTrigger.time(of: slice("a", triggeredAt: "yesterday")) == nil)
        #expect(LastChangeTrigger.time(of: slice("a", triggeredAt: nil)) == nil)
    }
}

@Suite("The API source's updates", .timeLimit(.minutes(2)))
struct ObjectStoreTests {
    private func slice(_ name: String, endpoint: String, version: String) -> EndpointSlice {
        EndpointSlice(
            metadata: ObjectMeta(
                name: name, namespace: "default", labels: [EndpointSlice.serviceNameLabel: "web"],
                resourceVersion: version),
            addressType: "IPv4", endpoints: [Endpoint(addresses: [endpoint])], ports: [])
    }

    private func names(_ changes: [ClusterChange]) -> [String] {
        changes.map { change in
            switch change {
            case .everything(let set): "everything(\(set.endpointSlices.count) slices)"
            case .service(let name, let object): "service \(name) \(object == nil ? "deleted" : "set")"
            case .endpointSlice(let name, let object): "slice \(name) \(object == nil ? "deleted" : "set")"
            case .node(let name, let object): "node \(name) \(object == nil ? "deleted" : "set")"
            case .serviceCIDR(let name, let object): "serviceCIDR \(name.name) \(object == nil ? "deleted" : "set")"
            }
        }
    }

    /// The first update holds everything; after it, a watch event is handed out as its one object, and a list
    /// after an expired watch as the objects that differ from what was known.
    @Test func afterTheFirstUpdateOnlyTheChangedObjectsAreHandedOut() throws {
        let store = ObjectStore()
        let slices = (1...3).map { slice("s\($0)", endpoint: "10.0.0.\($0)", version: "\($0)") }
        store.replace(.service, with: Listing<Service>(), problems: [])
        store.replace(
            .endpointSlice,
            with: Listing(Dictionary(uniqueKeysWithValues: slices.map { ($0.metadata.objectName, $0) })),
            problems: [])
        store.replace(.serviceCIDR, with: Listing<ServiceCIDR>(), problems: [])
        #expect(store.takeUpdate() == nil, "the Node was not listed yet")
        store.replace(.node, with: Listing<Node>(), problems: [])
        #expect(names(try #require(store.takeUpdate()).changes) == ["everything(3 slices)"])

        store.upsert(.endpointSlice, slice("s2", endpoint: "10.0.0.22", version: "7"), resourceVersion: "7")
        store.upsert(.endpointSlice, slice("s3", endpoint: "10.0.0.3", version: "3"), resourceVersion: "8")
        let event = try #require(store.takeUpdate())
        #expect(names(event.changes) == ["slice default/s2 set"], "s3's version is the one known")
        #expect(event.resourceVersion == "8")
        #expect(event.endpointChanges == 1)

        let relisted = [
            slice("s1", endpoint: "10.0.0.1", version: "1"), slice("s2", endpoint: "10.0.0.2", version: "9"),
        ]
        store.replace(
            .endpointSlice,
            with: Listing(Dictionary(uniqueKeysWithValues: relisted.map { ($0.metadata.objectName, $0) })),
            problems: [])
        let relist = try #require(store.takeUpdate())
        #expect(names(relist.changes).sorted() == ["slice default/s2 set", "slice default/s3 deleted"])
        #expect(relist.followsList)
        #expect(!event.followsList)
        #expect(store.takeUpdate() == nil)
    }
}
