import Foundation
import IPVS
import KubernetesModel
import Logging
import ServiceLifecycle
import StateSources
import Sync
import Synchronization
import Translation

#if canImport(Glibc)
    import Glibc
#endif

/// How the daemon paces its work.
public struct SyncLoopConfiguration: Sendable {
    /// A full resync (reading the whole kernel table, repairing outside changes) at least this often.
    public var syncPeriod: Duration = .seconds(30)
    /// Changes are coalesced: no two syncs closer than this.
    public var minSyncPeriod: Duration = .seconds(1)
    /// How often real servers draining at weight 0 are checked for their last connection.
    public var drainCheckPeriod: Duration = .seconds(5)
    /// This node's name (for traffic policy Local).
    public var nodeName: String
    /// Addresses for NodePort services; empty means every address of the node's interfaces.
    public var nodeIPs: [IPAddress] = []
    public var scheduler: Scheduler = .roundRobin

    public init(nodeName: String) {
        self.nodeName = nodeName
    }
}

/// The daemon's heart: receives snapshots from a source, and keeps the kernel in step with them.
///
/// Changes trigger a sync, coalesced by ``SyncLoopConfiguration/minSyncPeriod``. Between full resyncs
/// (every ``SyncLoopConfiguration/syncPeriod``, or on demand) a sync plans against the table the syncer
/// remembers, so an endpoint change costs only its own kernel operations. Until a source has delivered its
/// first snapshot nothing is synced, and a source that loses its connection delivers nothing: the kernel
/// keeps the last good state, never flushed.
public final class SyncLoop: ServiceLifecycle.Service, @unchecked Sendable {
    private struct Pending {
        var snapshot: ManifestSet?
        var version = 0
        var queuedAt: ContinuousClock.Instant?
        var fullRequested = false
    }

    let syncer: Syncer
    let source: any ClusterSource
    let configuration: SyncLoopConfiguration
    let metrics: ProxyMetrics
    let health: HealthState
    let logger: Logger
    private let pending = Mutex(Pending())
    private let doorbell = Doorbell()

    public init(
        syncer: Syncer, source: any ClusterSource, configuration: SyncLoopConfiguration, metrics: ProxyMetrics,
        health: HealthState, logger: Logger
    ) {
        self.syncer = syncer
        self.source = source
        self.configuration = configuration
        self.metrics = metrics
        self.health = health
        self.logger = logger
    }

    /// Asks for a full resync as soon as the pacing allows (SIGHUP).
    public func requestFullSync() {
        pending.withLock { $0.fullRequested = true }
        doorbell.ring()
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await self.source.run { update in self.receive(update) } }
                    group.addTask { await self.loop() }
                    try await group.next()
                    group.cancelAll()
                }
            }
        } catch is CancellationError {
            // A graceful shutdown cancels the source mid-wait: that is how it is meant to end.
        }
        logger.info("stopped; the kernel's rules stay in place")
    }

    private func receive(_ update: ClusterUpdate) {
        for problem in update.problems {
            logger.error("skipped an invalid object", metadata: ["problem": "\(problem)"])
        }
        metrics.invalidObjects.increment(by: update.problems.count)
        metrics.serviceChanges.increment(by: update.serviceChanges)
        metrics.endpointChanges.increment(by: update.endpointChanges)
        metrics.lastQueuedTimestamp.record(Date().timeIntervalSince1970)
        health.queued()
        pending.withLock {
            $0.snapshot = update.snapshot
            $0.version += 1
            if $0.queuedAt == nil { $0.queuedAt = .now }
        }
        doorbell.ring()
    }

    private func loop() async {
        let clock = ContinuousClock()
        var syncedVersion = 0
        var lastSync = clock.now - configuration.minSyncPeriod
        var nextFull = clock.now
        var nextDrainCheck: ContinuousClock.Instant?
        var nodeAddresses: NodeAddresses?
        while !Task.isCancelled {
            let (snapshot, version, queuedAt, fullRequested) = pending.withLock {
                ($0.snapshot, $0.version, $0.queuedAt, $0.fullRequested)
            }
            let changed = version != syncedVersion
            var due = nextFull
            if let drain = nextDrainCheck { due = min(due, drain) }
            if changed || fullRequested { due = min(due, lastSync + configuration.minSyncPeriod) }
            guard let snapshot, clock.now >= due else {
                await doorbell.wait(until: snapshot == nil ? clock.now + .seconds(3600) : due)
                continue
            }
            let full = fullRequested || clock.now >= nextFull
            if full { pending.withLock { $0.fullRequested = false } }
            let started = clock.now
            do {
                if full || nodeAddresses == nil {
                    nodeAddresses = try NodeAddresses.discover(syncer.interfaces, excludingLink: syncer.linkName)
                }
                try sync(snapshot, full: full, nodeAddresses: nodeAddresses!)
                syncedVersion = version
                let applied = clock.now
                pending.withLock { if $0.version == version { $0.queuedAt = nil } }
                if let queuedAt, changed {
                    metrics.networkProgrammingDuration.recordNanoseconds((applied - queuedAt).nanoseconds)
                }
                if pending.withLock({ $0.version == version }) { health.synced() }
                if full { nextFull = started + configuration.syncPeriod }
            } catch {
                logger.error("sync failed; retrying at the next full resync", metadata: ["error": "\(error)"])
                syncer.forgetTable()
                nextFull = clock.now + configuration.minSyncPeriod * 5
            }
            lastSync = clock.now
            // The objects replaced by this sync (the previous snapshot, its translation, the parse's scratch)
            // are freed by now, but glibc keeps freed heap for reuse: tens of MB at 10,000 Services.
            if changed { FreeMemory.returnToKernel() }
            let elapsed = lastSync - started
            metrics.syncDuration.recordNanoseconds(elapsed.nanoseconds)
            metrics.lastSyncTimestamp.record(Date().timeIntervalSince1970)
            nextDrainCheck = syncer.drainingVirtualServers.isEmpty ? nil : lastSync + configuration.drainCheckPeriod
        }
    }

    private func sync(_ snapshot: ManifestSet, full: Bool, nodeAddresses: NodeAddresses) throws {
        let context = NodeContext(
            nodeName: configuration.nodeName,
            nodeAddresses: configuration.nodeIPs.isEmpty ? nodeAddresses.nodePortAddresses : configuration.nodeIPs,
            localAddresses: nodeAddresses.localAddresses, scheduler: configuration.scheduler)
        let (desired, skipped) = Translator.translateSkippingInvalid(snapshot, node: context)
        for problem in skipped { logger.error("skipped an invalid Service", metadata: ["problem": "\(problem)"]) }
        metrics.invalidObjects.increment(by: skipped.count)
        let report = try syncer.sync(desired, full: full)
        let failed = !report.failures.isEmpty || !report.addressFailures.isEmpty
        metrics.recordSync(report, full: full, failed: failed)
        metrics.virtualServers.record(desired.virtualServers.count - report.blocked.count)
        metrics.realServers.record(desired.realServerCount)
        var metadata: Logger.Metadata = [
            "mode": "\(full ? "full" : "incremental")", "operations": "\(report.operations.count)",
            "virtualServers": "\(desired.virtualServers.count)", "draining": "\(report.draining)",
            "addressesBound": "\(report.addressesBound.count)", "addressesUnbound": "\(report.addressesUnbound.count)",
        ]
        if !report.blocked.isEmpty { metadata["blocked"] = "\(report.blocked.count)" }
        logger.log(level: report.operations.isEmpty ? .debug : .info, "synced", metadata: metadata)
        for (key, service) in report.blocked {
            logger.warning(
                "virtual server held by something else; left alone",
                metadata: ["virtualServer": "\(key)", "service": "\(service)"])
        }
        for failure in report.failures.prefix(10) {
            logger.error("kernel refused an operation", metadata: ["error": "\(failure.error)"])
        }
        if failed { syncer.forgetTable() }
    }
}

/// Gives the C heap's free pages back to the kernel.
enum FreeMemory {
    private typealias MallocTrim = @convention(c) (Int) -> Int32
    /// glibc's `malloc_trim` (malloc.h is not in the Glibc module); `nil` with another C library.
    private static let mallocTrim: MallocTrim? = {
        #if canImport(Glibc)
            dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim").map { unsafeBitCast($0, to: MallocTrim.self) }
        #else
            nil
        #endif
    }()

    static func returnToKernel() {
        _ = mallocTrim?(0)
    }
}

extension Duration {
    /// The duration in whole nanoseconds.
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
