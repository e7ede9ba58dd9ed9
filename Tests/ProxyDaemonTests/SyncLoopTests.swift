import FakeKernel
import Foundation
import IPVSModel
import KubernetesModel
import Logging
import ProxyRules
import StateSources
import Sync
import TestSupport
import Testing
import Translation

@testable import ProxyDaemon

/// A source that delivers what the test sends it, and says what the test tells it to.
final class FakeSource: ClusterSource {
    private enum Event {
        case update(ClusterUpdate)
        case condition(SourceCondition)
    }
    private let updates: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation

    init() {
        (updates, continuation) = AsyncStream.makeStream()
    }

    /// Delivers `count` ClusterIP Services (10.96.0.1, ...), each with one slice of `endpoints`.
    func send(services count: Int, endpoints: [String] = ["10.244.0.1", "10.244.0.2"], triggeredAt: [Date] = []) {
        send(json: generated(services: count, endpoints: endpoints), changes: count, triggeredAt: triggeredAt)
    }

    /// Delivers the objects of a JSON manifest.
    func send(json: String, changes: Int = 1, triggeredAt: [Date] = []) {
        var set = ManifestSet()
        var problems: [ManifestProblem] = []
        ManifestLoader.decode(json, file: "test", into: &set, problems: &problems)
        precondition(problems.isEmpty, "\(problems)")
        continuation.yield(
            .update(
                ClusterUpdate(
                    changes: [.everything(set)], serviceChanges: changes, endpointChanges: changes,
                    lastChangeTriggerTimes: triggeredAt)))
    }

    /// Says the source's view is current, or stale.
    func say(_ condition: SourceCondition) {
        continuation.yield(.condition(condition))
    }

    func run(
        update: @escaping @Sendable (ClusterUpdate) async -> Void,
        condition: @escaping @Sendable (SourceCondition) -> Void
    ) async throws {
        for await next in updates {
            switch next {
            case .update(let next): await update(next)
            case .condition(let said): condition(said)
            }
        }
    }

    private func generated(services count: Int, endpoints: [String]) -> String {
        let items = (0..<count).flatMap { index in
            [
                #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc-\#(index)","namespace":"gen"},"spec":{"clusterIP":"10.96.0.\#(index + 1)","ports":[{"name":"http","port":80,"targetPort":8080}]}}"#,
                #"{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"svc-\#(index)-a","namespace":"gen","labels":{"kubernetes.io/service-name":"svc-\#(index)"}},"addressType":"IPv4","ports":[{"name":"http","port":8080}],"endpoints":[\#(endpoints.map { #"{"addresses":["\#($0)"],"conditions":{"ready":true}}"# }.joined(separator: ","))]}"#,
            ]
        }
        return #"{"apiVersion":"v1","kind":"List","items":["# + items.joined(separator: ",") + "]}"
    }
}

/// A sync loop over fake kernel connections and a fake source, on a manual clock.
struct LoopHarness {
    let clock = ManualClock()
    let ipvs = FakeIPVSTable()
    let interfaces = FakeInterfaces()
    let source = FakeSource()
    let metrics = ProxyMetrics()
    let health: HealthState
    let loop: SyncLoop<ManualClock>

    init(stateFolder: String) {
        var configuration = SyncLoopConfiguration(nodeName: "node-a")
        configuration.syncPeriod = .seconds(30)
        configuration.minSyncPeriod = .seconds(1)
        configuration.drainCheckPeriod = .seconds(5)
        let clock = clock
        health = HealthState(timeout: configuration.syncPeriod * 2, currentTime: { clock.date })
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        loop = SyncLoop(
            syncer: Syncer(
                ipvs: ipvs, interfaces: interfaces, nftables: FakeNFTables(), conntrack: FakeConntrack(),
                store: OwnershipStore(directory: stateFolder)),
            source: source, configuration: configuration, metrics: metrics, health: health, logger: logger,
            clock: clock)
    }

    /// The value of a metric line (`name{labels}`), or 0 when it is not there.
    func metric(_ line: String) -> Double {
        for text in metrics.render().split(separator: "\n") where text.hasPrefix(line + " ") {
            return Double(text.dropFirst(line.count + 1)) ?? .nan
        }
        return 0
    }

    var fullSyncs: Double { metric(#"ipvs_proxy_syncs_total{mode="full",result="success"}"#) }
    var incrementalSyncs: Double { metric(#"ipvs_proxy_syncs_total{mode="incremental",result="success"}"#) }
    var failedSyncs: Double {
        metric(#"ipvs_proxy_syncs_total{mode="full",result="error"}"#)
            + metric(#"ipvs_proxy_syncs_total{mode="incremental",result="error"}"#)
    }

    /// Runs the loop for the test's body, then stops it.
    func running(_ body: (inout Int) async throws -> Void) async throws {
        let task = Task { try await loop.run() }
        defer { task.cancel() }
        // The loop starts by waiting for the source's first snapshot.
        var sleeps = 0
        _ = try await clock.sleep(after: sleeps)
        sleeps += 1
        try await body(&sleeps)
    }

    /// Waits until the loop has done what it can and sleeps again; returns when it will wake.
    @discardableResult
    func settled(_ sleeps: inout Int) async throws -> ManualClock.Instant {
        defer { sleeps += 1 }
        return try await clock.sleep(after: sleeps)
    }

    /// Waits until the loop sleeps again, and expects it to wake at `deadline`.
    func settled(
        _ sleeps: inout Int, wakingAt deadline: ManualClock.Instant, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let wake = try await settled(&sleeps)
        #expect(wake == deadline, sourceLocation: sourceLocation)
    }
}

func seconds(_ value: Int) -> ManualClock.Instant { ManualClock.Instant(offset: .seconds(value)) }

@Suite("The daemon's sync loop, on a manual clock", .timeLimit(.minutes(2)))
struct SyncLoopTests {
    @Test func changesWithinTheMinimumPeriodAreAppliedTogether() async throws {
        try await withTemporaryFolder("coalescing") { folder in
            let node = LoopHarness(stateFolder: folder)
            try await node.running { sleeps in
                node.source.send(services: 2)
                // Synced at once, in full; next, the periodic full resync.
                try await node.settled(&sleeps, wakingAt: seconds(30))
                #expect(node.ipvs.current.count == 2)
                #expect(node.fullSyncs == 1)

                #expect(node.metric("kubeproxy_sync_proxy_rules_service_changes_pending") == 0)
                let lastSynced = node.metric("kubeproxy_sync_proxy_rules_last_timestamp_seconds")
                #expect(lastSynced > 0)

                // Changes made 2 s ago by their slices' trigger times (on the API server's clock).
                let triggered = Date().addingTimeInterval(-2)
                for count in 3...5 {
                    node.source.send(services: count, triggeredAt: [triggered])
                    // Not yet: the loop waits out the minimum period since the last sync.
                    try await node.settled(&sleeps, wakingAt: seconds(1))
                    #expect(node.ipvs.current.count == 2)
                }
                // Pending, as kube-proxy counts them: every change received and not yet in the kernel.
                #expect(node.metric("kubeproxy_sync_proxy_rules_service_changes_pending") == 12)
                #expect(node.metric("kubeproxy_sync_proxy_rules_endpoint_changes_pending") == 12)
                #expect(node.metric("kubeproxy_sync_proxy_rules_last_timestamp_seconds") == lastSynced)
                node.clock.advance(by: .seconds(1))
                try await node.settled(&sleeps, wakingAt: seconds(30))
                #expect(node.ipvs.current.count == 5)
                #expect(node.incrementalSyncs == 1)
                #expect(node.metric("kubeproxy_sync_proxy_rules_service_changes_pending") == 0)
                #expect(node.metric("kubeproxy_sync_proxy_rules_endpoint_changes_pending") == 0)
                // One observation per trigger time, each at least the 2 s since its change: none in the 1 s bucket
                // (and, however slowly the test ran, all within a minute).
                #expect(node.metric("kubeproxy_network_programming_duration_seconds_count") == 3)
                #expect(node.metric(#"kubeproxy_network_programming_duration_seconds_bucket{le="1.0"}"#) == 0)
                #expect(node.metric(#"kubeproxy_network_programming_duration_seconds_bucket{le="59.0"}"#) == 3)
            }
        }
    }

    @Test func aFullResyncEverySyncPeriodRepairsWhatOthersChanged() async throws {
        try await withTemporaryFolder("resync") { folder in
            let node = LoopHarness(stateFolder: folder)
            try await node.running { sleeps in
                node.source.send(services: 3)
                try await node.settled(&sleeps, wakingAt: seconds(30))
                let reads = node.ipvs.tableReads
                let tampered = VirtualServerKey.address(.tcp, IPAddress("10.96.0.2")!, port: 80)
                node.ipvs.modify { $0[tampered]?.realServers.removeAll() }

                node.clock.advance(by: .seconds(30))
                try await node.settled(&sleeps, wakingAt: seconds(60))
                #expect(node.fullSyncs == 2)
                #expect(node.ipvs.tableReads == reads + 1)
                #expect(node.ipvs.current[tampered]?.realServers.count == 2)
            }
        }
    }

    @Test func aFullResyncRequestComesAfterTheMinimumPeriod() async throws {
        try await withTemporaryFolder("sighup") { folder in
            let node = LoopHarness(stateFolder: folder)
            try await node.running { sleeps in
                node.source.send(services: 1)
                try await node.settled(&sleeps, wakingAt: seconds(30))
                node.loop.requestFullSync()
                try await node.settled(&sleeps, wakingAt: seconds(1))
                node.clock.advance(by: .seconds(1))
                try await node.settled(&sleeps, wakingAt: seconds(31))
                #expect(node.fullSyncs == 2)
            }
        }
    }

    /// A removed TCP endpoint with connections drains at weight 0; the loop looks at it every drain-check period
    /// and deletes it once its last connection has ended.
    @Test func drainingRealServersAreCheckedUntilTheirConnectionsEnd() async throws {
        try await withTemporaryFolder("drain") { folder in
            let node = LoopHarness(stateFolder: folder)
            let service = VirtualServerKey.address(.tcp, IPAddress("10.96.0.1")!, port: 80)
            let leaving = IPAddress("10.244.0.2")!
            func setConnections(_ count: UInt32) {
                node.ipvs.modify { table in
                    let index = table[service]!.realServers.firstIndex { $0.server.address == leaving }!
                    table[service]!.realServers[index].activeConnections = count
                }
            }
            try await node.running { sleeps in
                node.source.send(services: 1, endpoints: ["10.244.0.1", "10.244.0.2"])
                try await node.settled(&sleeps, wakingAt: seconds(30))
                setConnections(1)

                node.source.send(services: 1, endpoints: ["10.244.0.1"])
                try await node.settled(&sleeps, wakingAt: seconds(1))
                node.clock.advance(by: .seconds(1))
                // Draining: checked again in 5 s.
                try await node.settled(&sleeps, wakingAt: seconds(6))
                #expect(
                    node.ipvs.current[service]?.realServers.first { $0.server.address == leaving }?.server.weight == 0)

                node.clock.advance(by: .seconds(5))
                try await node.settled(&sleeps, wakingAt: seconds(11))
                #expect(node.ipvs.current[service]?.realServers.count == 2)

                setConnections(0)
                node.clock.advance(by: .seconds(5))
                // Gone, and nothing left to check until the full resync.
                try await node.settled(&sleeps, wakingAt: seconds(30))
                #expect(node.ipvs.current[service]?.realServers.map(\.server.address) == [IPAddress("10.244.0.1")!])
                #expect(node.incrementalSyncs == 3)
            }
        }
    }

    /// An address that appears on the node gets node ports at the next sync the pacing allows, without a full
    /// resync; the loop reads the node's addresses only when told they changed.
    @Test func aNodeAddressChangeIsFollowedWithinTheMinimumPeriod() async throws {
        try await withTemporaryFolder("addresses") { folder in
            let node = LoopHarness(stateFolder: folder)
            let service =
                #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"np","namespace":"gen"},"spec":{"type":"NodePort","clusterIP":"10.96.0.9","ports":[{"port":80,"nodePort":30080}]}}"#
            let newAddress = IPAddress("192.168.1.11")!
            try await node.running { sleeps in
                node.source.send(json: service)
                try await node.settled(&sleeps, wakingAt: seconds(30))
                let reads = node.interfaces.addressReads
                #expect(node.ipvs.current[.address(.tcp, IPAddress("192.168.1.10")!, port: 30080)] != nil)

                node.interfaces.add(newAddress)
                node.loop.nodeAddressesChanged()
                try await node.settled(&sleeps, wakingAt: seconds(1))
                node.clock.advance(by: .seconds(1))
                try await node.settled(&sleeps, wakingAt: seconds(30))
                #expect(node.ipvs.current[.address(.tcp, newAddress, port: 30080)] != nil)
                #expect(node.fullSyncs == 1)
                #expect(node.interfaces.addressReads > reads)
            }
        }
    }

    /// `/healthz` turns 503 once a change has waited longer than twice the sync period, as kube-proxy's does,
    /// and 200 again once it is in the kernel. A change that fails is retried at the pace of changes (reading the
    /// kernel in full each time: a failure leaves the syncer no memory).
    @Test func healthFailsWhileAChangeCannotBeAppliedAndRecovers() async throws {
        try await withTemporaryFolder("health") { folder in
            let node = LoopHarness(stateFolder: folder)
            try await node.running { sleeps in
                node.source.send(services: 1)
                try await node.settled(&sleeps, wakingAt: seconds(30))
                #expect(node.health.response(includeNodeEligible: true).status == .ok)

                node.ipvs.fail(with: .permissionDenied)
                node.source.send(services: 2)
                try await node.settled(&sleeps, wakingAt: seconds(1))
                node.clock.advance(by: .seconds(1))
                try await node.settled(&sleeps, wakingAt: seconds(2))
                #expect(node.failedSyncs == 1)
                while node.clock.now < seconds(61) {
                    #expect(node.health.response(includeNodeEligible: true).status == .ok)
                    node.clock.advance(by: .seconds(1))
                    try await node.settled(&sleeps)
                }
                #expect(node.health.response(includeNodeEligible: true).status == .serviceUnavailable)
                // One retry a second.
                #expect(node.failedSyncs == 61)

                node.ipvs.fail(with: nil)
                node.clock.advance(by: .seconds(1))
                try await node.settled(&sleeps)
                #expect(node.health.response(includeNodeEligible: true).status == .ok)
                #expect(node.ipvs.current.count == 2)
            }
        }
    }
}

extension SyncLoopTests {
    /// A source that cannot read keeps the kernel as it is, says so in the log and the metrics at once, and fails
    /// `/healthz` once its view has been stale longer than the health timeout (twice the sync period); all of it
    /// clears when it reads again.
    @Test func aStaleSourceIsToldCountedAndFailsHealthAfterTheTimeout() async throws {
        try await withTemporaryFolder("stale") { folder in
            let node = LoopHarness(stateFolder: folder)
            func eventually(_ condition: () -> Bool) async throws -> Bool {
                for _ in 0..<1000 {
                    if condition() { return true }
                    try await Task.sleep(for: .milliseconds(5))
                }
                return false
            }
            try await node.running { sleeps in
                node.source.send(services: 2)
                try await node.settled(&sleeps, wakingAt: seconds(30))
                #expect(node.metric("ipvs_proxy_source_stale") == 0)

                node.source.say(.stale("/etc/manifests: cannot read this folder: Too many open files"))
                node.source.say(.stale("/etc/manifests: cannot read this folder: Too many open files"))
                #expect(try await eventually { node.metric("ipvs_proxy_source_read_failures_total") == 2 })
                #expect(node.metric("ipvs_proxy_source_stale") == 1)
                #expect(node.health.response(includeNodeEligible: true).status == .ok, "not before the timeout")

                // Full resyncs at 30 s and 61 s: at 30 s still within the timeout, at 61 s past it.
                node.clock.advance(by: .seconds(30))
                try await node.settled(&sleeps, wakingAt: seconds(60))
                #expect(node.health.response(includeNodeEligible: true).status == .ok)
                node.clock.advance(by: .seconds(31))
                try await node.settled(&sleeps, wakingAt: seconds(91))
                #expect(node.health.response(includeNodeEligible: true).status == .serviceUnavailable)
                #expect(node.ipvs.current.count == 2, "the kernel keeps the last good view")

                node.source.say(.current)
                #expect(try await eventually { node.metric("ipvs_proxy_source_stale") == 0 })
                #expect(node.health.response(includeNodeEligible: true).status == .ok)
                #expect(node.metric("ipvs_proxy_source_read_failures_total") == 2)
            }
        }
    }
}

@Suite("Pacing", .timeLimit(.minutes(2)))
struct SyncScheduleTests {
    typealias Schedule = SyncSchedule<ManualClock.Instant>

    var schedule: Schedule {
        var configuration = SyncLoopConfiguration(nodeName: "node-a")
        configuration.syncPeriod = .seconds(30)
        configuration.minSyncPeriod = .seconds(2)
        configuration.drainCheckPeriod = .seconds(5)
        return Schedule(configuration)
    }

    @Test func nothingHappensBeforeTheFirstSnapshotAndTheFirstSyncIsFull() {
        #expect(
            schedule.next(now: seconds(0), changed: true, fullRequested: false, hasSnapshot: false)
                == .wait(until: seconds(3600)))
        #expect(
            schedule.next(now: seconds(0), changed: true, fullRequested: false, hasSnapshot: true)
                == .sync(full: true))
    }

    @Test func aFailedSyncIsRetriedInFullAfterFiveMinimumPeriods() {
        var schedule = schedule
        schedule.record(full: true, started: seconds(0), finished: seconds(1), succeeded: false, draining: false)
        #expect(
            schedule.next(now: seconds(1), changed: false, fullRequested: false, hasSnapshot: true)
                == .wait(until: seconds(11)))
        #expect(
            schedule.next(now: seconds(11), changed: false, fullRequested: false, hasSnapshot: true)
                == .sync(full: true))
    }

    @Test func theResyncPeriodCountsFromTheStartOfTheLastFullSync() {
        var schedule = schedule
        schedule.record(full: true, started: seconds(0), finished: seconds(4), succeeded: true, draining: false)
        schedule.record(full: false, started: seconds(10), finished: seconds(11), succeeded: true, draining: false)
        #expect(
            schedule.next(now: seconds(11), changed: false, fullRequested: false, hasSnapshot: true)
                == .wait(until: seconds(30)))
        #expect(
            schedule.next(now: seconds(12), changed: true, fullRequested: false, hasSnapshot: true)
                == .wait(until: seconds(13)))
        #expect(
            schedule.next(now: seconds(13), changed: true, fullRequested: false, hasSnapshot: true)
                == .sync(full: false))
    }
}

@Suite("Metrics of a sync", .timeLimit(.minutes(2)))
struct SyncMetricsTests {
    /// A refused bind is an error of `bind-address` and not also a success; a refused unbind is an error of
    /// `unbind-address`, not of `bind-address`.
    @Test func refusedAddressChangesCountAsErrorsOfTheirOwnKind() throws {
        try withTemporaryFolder("metrics") { folder in
            let node = LoopHarness(stateFolder: folder)
            let syncer = node.loop.syncer
            let refusedBind = IPAddress("10.96.0.3")!
            node.interfaces.refuse(.permissionDenied) { $0.address.address == refusedBind }
            let first = try syncer.sync(cluster(3))
            node.metrics.recordSync(first, full: true)
            node.interfaces.refuse(.permissionDenied) { if case .unbind = $0 { true } else { false } }
            let second = try syncer.sync(cluster(1))
            node.metrics.recordSync(second, full: true)

            func operations(_ kind: String, _ result: String) -> Double {
                node.metric(#"ipvs_proxy_kernel_operations_total{operation="\#(kind)",result="\#(result)"}"#)
            }
            #expect(operations("bind-address", "success") == 2)
            #expect(operations("bind-address", "error") == 1)
            #expect(operations("unbind-address", "success") == 0)
            #expect(operations("unbind-address", "error") == 1)
            #expect(operations("add-virtual-server", "success") == 3)
            #expect(operations("delete-virtual-server", "success") == 2)
            #expect(node.metric(#"ipvs_proxy_syncs_total{mode="full",result="error"}"#) == 2)
            #expect(node.metric("ipvs_proxy_table_reads_total") == 2)
        }
    }

    /// Translated ClusterIP Services 10.96.0.1... without endpoints.
    private func cluster(_ count: Int) -> DesiredState {
        var state = DesiredState()
        state.serviceCount = count
        for index in 0..<count {
            let address = IPAddress("10.96.0.\(index + 1)")!
            let key = VirtualServerKey.address(.tcp, address, port: 80)
            state.virtualServers[key] = DesiredVirtualServer(
                server: VirtualServer(key), realServers: [],
                servicePort: ServicePortName(service: ServiceName(namespace: "gen", name: "svc-\(index)"), port: "80"))
            state.serviceAddresses.insert(address)
        }
        return state
    }
}
