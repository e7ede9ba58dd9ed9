import Foundation
import IPVSModel
import KubernetesModel
import Logging
import NIOPosix
import ProxyRules
import ServiceLifecycle
import StateSources
import Sync
import Synchronization
import Translation

/// How many object changes make a sync hand freed memory back to the kernel.
private let largeChange = 100

/// How the daemon paces its work.
package struct SyncLoopConfiguration: Sendable {
    /// A full resync (reading the whole kernel state, repairing outside changes) at least this often.
    package var syncPeriod: Duration = .seconds(30)
    /// Changes are coalesced: no two syncs closer than this.
    package var minSyncPeriod: Duration = .seconds(1)
    /// How often real servers draining at weight 0 are checked for their last connection.
    package var drainCheckPeriod: Duration = .seconds(5)
    /// This node's name (for traffic policy Local).
    package var nodeName: String
    /// The node's addresses that take node ports; by default every address of its interfaces.
    package var nodePortAddresses = NodePortAddressSelection()
    package var scheduler: Scheduler = .roundRobin

    package init(nodeName: String) {
        self.nodeName = nodeName
    }
}

/// The daemon's heart: receives snapshots from a source, and keeps the kernel in step with them, paced by a
/// ``SyncSchedule`` on its clock.
///
/// Between full resyncs a sync plans against what the syncer remembers, so an endpoint change costs only its
/// own kernel operations. Until a source has delivered its first snapshot nothing is synced, and a source that
/// loses its connection delivers nothing: the kernel keeps the last good state, never flushed. Translating and
/// syncing block on the kernel, so they run on NIO's thread pool, not on Swift's cooperative one.
package final class SyncLoop<LoopClock: Clock>: ServiceLifecycle.Service, Sendable
where LoopClock.Duration == Duration {
    private struct Pending {
        /// Changes received and not yet translated.
        var changes: [ClusterChange] = []
        /// Whether the source has delivered its first update.
        var received = false
        var version = 0
        var fullRequested = false
        /// The node's addresses changed: the next sync reads them again.
        var addressesChanged = false
        /// Changes received and not yet in the kernel (kube-proxy's `*_changes_pending`).
        var serviceChanges = 0
        var endpointChanges = 0
        /// When the changes not yet in the kernel were made, by the endpoint slices' trigger-time annotations.
        var triggerTimes: [Date] = []
        /// The resource version of the last object event received, for the log.
        var resourceVersion: String?
        /// Whether a source listed everything again since (much was decoded and let go).
        var listed = false

        /// Whether the changes are large: a sync after them hands freed heap back to the kernel.
        var isLarge: Bool {
            listed || changes.count >= largeChange
                || changes.contains { if case .everything = $0 { true } else { false } }
        }
    }

    let syncer: Syncer
    let source: any ClusterSource
    let configuration: SyncLoopConfiguration
    let metrics: ProxyMetrics
    let health: HealthState
    let logger: Logger
    let clock: LoopClock
    let threadPool: NIOThreadPool
    /// Opened and closed as translation finds health-check node ports.
    let healthCheckPorts: HealthCheckPorts?
    private let pending = Mutex(Pending())
    /// Since when the source's view is stale (a read fails), if it is.
    private let stale = Mutex<LoopClock.Instant?>(nil)
    private let doorbell = Doorbell()
    /// The desired state, kept up to date change by change; used by one sync at a time.
    private let translation: Mutex<LiveTranslation>

    package init(
        syncer: Syncer, source: any ClusterSource, configuration: SyncLoopConfiguration, metrics: ProxyMetrics,
        health: HealthState, logger: Logger, clock: LoopClock, threadPool: NIOThreadPool = .singleton,
        healthCheckPorts: HealthCheckPorts? = nil
    ) {
        self.healthCheckPorts = healthCheckPorts
        self.syncer = syncer
        self.source = source
        self.configuration = configuration
        self.metrics = metrics
        self.health = health
        self.logger = logger
        self.clock = clock
        self.threadPool = threadPool
        translation = Mutex(
            LiveTranslation(
                node: NodeContext(
                    nodeName: configuration.nodeName, nodeAddresses: [], scheduler: configuration.scheduler)))
    }

    /// Asks for a full resync as soon as the pacing allows (SIGHUP).
    package func requestFullSync() {
        pending.withLock { $0.fullRequested = true }
        doorbell.ring()
    }

    /// Says that the node's addresses changed: the next sync, as soon as the pacing allows, reads them again
    /// (node ports follow them).
    package func nodeAddressesChanged() {
        pending.withLock { $0.addressesChanged = true }
        doorbell.ring()
    }

    package func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await self.source.run(
                            update: { update in self.receive(update) },
                            condition: { condition in self.follow(condition) })
                    }
                    group.addTask { await self.loop() }
                    try await group.next()
                    group.cancelAll()
                }
            }
        } catch is CancellationError {
            // A graceful shutdown cancels the source mid-wait: that is how it is meant to end.
        }
        healthCheckPorts?.stop()
        logger.info("stopped; the kernel's rules stay in place")
    }

    /// Says when the source starts keeping its last good view because a read fails, and when it reads again; counts
    /// every failed read. `/healthz` turns unhealthy once the view has been stale longer than the health timeout.
    private func follow(_ condition: SourceCondition) {
        let now = clock.now
        let (was, reason) = stale.withLock { since -> (LoopClock.Instant?, String?) in
            let was = since
            switch condition {
            case .current: since = nil
            case .stale(let reason):
                if since == nil { since = now }
                return (was, reason)
            }
            return (was, nil)
        }
        if let reason {
            metrics.sourceReadFailures.increment()
            guard was == nil else { return }
            metrics.sourceStale.set(Int64(1))
            health.sourceCurrent(false)
            logger.warning(
                "the source cannot read; the kernel keeps the last good view until it can",
                metadata: ["reason": "\(reason)"])
        } else if let was {
            metrics.sourceStale.set(Int64(0))
            health.sourceCurrent(true)
            logger.notice(
                "the source reads again; its view is current", metadata: ["staleFor": "\(was.duration(to: now))"])
        }
    }

    private func receive(_ update: ClusterUpdate) {
        for problem in update.problems {
            logger.error("skipped an invalid object", metadata: ["problem": "\(problem)"])
        }
        metrics.invalidObjects.increment(by: Int64(update.problems.count))
        metrics.serviceChanges.increment(by: Int64(update.serviceChanges))
        metrics.endpointChanges.increment(by: Int64(update.endpointChanges))
        metrics.lastQueuedTimestamp.set(Date().timeIntervalSince1970)
        health.queued()
        let (services, endpoints) = pending.withLock {
            $0.changes += update.changes
            $0.received = true
            $0.version += 1
            if let version = update.resourceVersion { $0.resourceVersion = version }
            if update.followsList { $0.listed = true }
            $0.serviceChanges += update.serviceChanges
            $0.endpointChanges += update.endpointChanges
            $0.triggerTimes += update.lastChangeTriggerTimes
            return ($0.serviceChanges, $0.endpointChanges)
        }
        metrics.serviceChangesPending.set(Int64(services))
        metrics.endpointChangesPending.set(Int64(endpoints))
        doorbell.ring()
    }

    private func loop() async {
        var schedule = SyncSchedule<LoopClock.Instant>(configuration)
        var syncedVersion = 0
        var nodeAddresses: NodeAddresses?
        var trimDue = false
        while !Task.isCancelled {
            // After a large change the objects it replaced, and the scratch of decoding and translating it, are
            // freed by now (the last round's values are gone), but glibc keeps freed heap for reuse: tens of MB
            // at 10,000 Services. Handing it back walks the heap, so a small change (a watch event) leaves it.
            if trimDue {
                HeapMemory.returnToKernel()
                trimDue = false
            }
            let peeked = pending.withLock { ($0.version, $0.addressesChanged, $0.fullRequested, $0.received) }
            let changed = peeked.0 != syncedVersion || peeked.1
            let step = schedule.next(
                now: clock.now, changed: changed, fullRequested: peeked.2, hasSnapshot: peeked.3)
            guard case .sync(let full) = step else {
                if case .wait(let deadline) = step { await doorbell.wait(until: deadline, on: clock) }
                continue
            }
            var queued = pending.withLock { state -> Pending in
                let taken = state
                // Taken now: the translation has them whatever becomes of the sync.
                state.changes = []
                state.resourceVersion = nil
                state.listed = false
                if full { state.fullRequested = false }
                // Cleared before the sync reads the addresses: a change during it asks for another.
                state.addressesChanged = false
                return taken
            }
            if queued.addressesChanged { nodeAddresses = nil }
            trimDue = full || queued.isLarge
            let started = clock.now
            // Applied here, and let go before the sync: a first list's objects are the translation's from now on,
            // not a second copy held while the kernel is programmed.
            do {
                let changes = queued.changes
                queued.changes = []
                translation.withLock { $0.apply(changes) }
            }
            var draining = false
            var succeeded = false
            do {
                let known = full ? nil : nodeAddresses
                let version = queued.resourceVersion
                let result = try await threadPool.runIfActive { [self] in
                    try sync(full: full, nodeAddresses: known, resourceVersion: version)
                }
                nodeAddresses = result.nodeAddresses
                draining = !result.report.table.draining.isEmpty
                succeeded = true
                syncedVersion = queued.version
                // What this sync carried is in the kernel; what arrived during it is still pending.
                let stillPending = pending.withLock { state -> Pending in
                    state.serviceChanges -= queued.serviceChanges
                    state.endpointChanges -= queued.endpointChanges
                    state.triggerTimes.removeFirst(queued.triggerTimes.count)
                    return state
                }
                metrics.lastSyncTimestamp.set(Date().timeIntervalSince1970)
                recordProgrammed(queued, stillPending: stillPending)
                if stillPending.version == queued.version { health.synced() }
            } catch {
                logger.error("sync failed; retrying at the next full resync", metadata: ["error": "\(error)"])
            }
            let finished = clock.now
            schedule.record(
                full: full, started: started, finished: finished, succeeded: succeeded, draining: draining)
            metrics.syncDuration.record(started.duration(to: finished))
        }
    }

    /// After a successful sync: what is still pending, and for each change it carried that says when it was
    /// made, the time from then to now (kube-proxy's network programming latency, measured as kube-proxy
    /// measures it: from the EndpointSlice's trigger time, on the API server's clock, to the rules' sync).
    private func recordProgrammed(_ carried: Pending, stillPending: Pending) {
        metrics.serviceChangesPending.set(Int64(stillPending.serviceChanges))
        metrics.endpointChangesPending.set(Int64(stillPending.endpointChanges))
        let now = Date()
        for triggered in carried.triggerTimes {
            metrics.networkProgrammingDuration.record(.milliseconds(Int64(now.timeIntervalSince(triggered) * 1000)))
        }
    }

    private struct SyncResult: Sendable {
        var report: SyncReport
        var nodeAddresses: NodeAddresses
    }

    /// Translates what changed and syncs the result: blocking work, for the thread pool.
    private func sync(full: Bool, nodeAddresses known: NodeAddresses?, resourceVersion: String?) throws -> SyncResult {
        let nodeAddresses =
            try known ?? syncer.part(ServiceAddressPart.self)?.nodeAddresses()
            ?? NodeAddresses(nodePortAddresses: [], localAddresses: [])
        let selection = configuration.nodePortAddresses
        var context = NodeContext(
            nodeName: configuration.nodeName, nodeAddresses: [], localAddresses: nodeAddresses.localAddresses,
            scheduler: configuration.scheduler)
        let (desired, skipped) = translation.withLock { translation in
            let ownNode = translation.node(named: configuration.nodeName)
            context.nodeAddresses = selection.select(from: nodeAddresses.nodePortAddresses, node: ownNode)
            context.follow(ownNode)
            health.follow(ownNode)
            translation.update(node: context)
            return (translation.takeDesired(), translation.takeNewProblems())
        }
        for problem in skipped { logger.error("skipped an invalid Service", metadata: ["problem": "\(problem)"]) }
        metrics.invalidObjects.increment(by: Int64(skipped.count))
        metrics.recordTranslation(desired)
        healthCheckPorts?.update(desired.healthChecks, on: selection.selectsAll ? nil : context.nodeAddresses)
        let report: SyncReport
        do {
            report = try syncer.sync(desired, options: SyncOptions(full: full, allowEmpty: true))
        } catch {
            metrics.recordFailedSync(full: full)
            throw error
        }
        metrics.recordSync(report, full: full)
        metrics.virtualServers.set(Int64(desired.virtualServers.count - report.table.blocked.count))
        metrics.realServers.set(Int64(desired.realServerCount))
        log(report, full: full, desired: desired, resourceVersion: resourceVersion)
        return SyncResult(report: report, nodeAddresses: nodeAddresses)
    }

    private func log(_ report: SyncReport, full: Bool, desired: DesiredState, resourceVersion: String?) {
        var metadata: Logger.Metadata = [
            "mode": "\(full ? "full" : "incremental")", "operations": "\(report.table.operations.count)",
            "virtualServers": "\(desired.virtualServers.count)", "draining": "\(report.table.draining.count)",
            "addressesBound": "\(report.addresses.bound.count)",
            "addressesUnbound": "\(report.addresses.unbound.count)",
        ]
        if !report.table.blocked.isEmpty { metadata["blocked"] = "\(report.table.blocked.count)" }
        // Which API changes the kernel now has: the resource version of the last object event the sync carried.
        if let resourceVersion { metadata["resourceVersion"] = "\(resourceVersion)" }
        logger.log(level: report.table.operations.isEmpty ? .debug : .info, "synced", metadata: metadata)
        for (key, service) in report.table.blocked {
            logger.warning(
                "virtual server held by something else; left alone",
                metadata: ["virtualServer": "\(key)", "service": "\(service)"])
        }
        for failure in report.table.failures.prefix(10) {
            logger.error("kernel refused an operation", metadata: ["error": "\(failure.error)"])
        }
        for failure in report.addresses.failures.prefix(10) {
            logger.error("kernel refused an address change", metadata: ["error": "\(failure.error)"])
        }
    }
}
