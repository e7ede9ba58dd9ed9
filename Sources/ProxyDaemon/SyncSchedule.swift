/// When the daemon syncs, and how: its pacing rules as a value, on any clock.
///
/// - A change is synced as soon as ``SyncLoopConfiguration/minSyncPeriod`` has passed since the last sync, so
///   changes that arrive closer together are applied together. A change whose sync failed is still a change:
///   it is tried again at the same pace.
/// - A full resync (reading the whole kernel state, repairing what others changed) comes at the latest
///   ``SyncLoopConfiguration/syncPeriod`` after the last one started, or, after a failed sync, five minimum
///   periods later; a request (SIGHUP) makes the next sync full.
/// - While real servers drain at weight 0, an incremental sync every
///   ``SyncLoopConfiguration/drainCheckPeriod`` looks at their connections and deletes those that are done.
/// - Nothing is synced before the source has delivered its first snapshot.
struct SyncSchedule<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    var syncPeriod: Duration
    var minSyncPeriod: Duration
    var drainCheckPeriod: Duration

    private var lastSync: Instant?
    private var nextFull: Instant?
    private var nextDrainCheck: Instant?

    init(_ configuration: SyncLoopConfiguration) {
        syncPeriod = configuration.syncPeriod
        minSyncPeriod = configuration.minSyncPeriod
        drainCheckPeriod = configuration.drainCheckPeriod
    }

    /// What the loop does next.
    enum Step: Equatable {
        case sync(full: Bool)
        /// Wait until then, or until something changes.
        case wait(until: Instant)
    }

    /// - Parameters:
    ///   - changed: Whether a snapshot arrived that the kernel does not have yet.
    ///   - fullRequested: Whether a full resync was asked for.
    ///   - hasSnapshot: Whether the source has delivered anything yet.
    func next(now: Instant, changed: Bool, fullRequested: Bool, hasSnapshot: Bool) -> Step {
        guard hasSnapshot else { return .wait(until: now.advanced(by: .seconds(3600))) }
        // The first sync is a full one, at once.
        guard let nextFull else { return .sync(full: true) }
        let paced = lastSync.map { $0.advanced(by: minSyncPeriod) } ?? now
        var due = nextFull
        if let nextDrainCheck { due = min(due, nextDrainCheck) }
        if changed || fullRequested { due = min(due, paced) }
        guard now >= due else { return .wait(until: due) }
        return .sync(full: fullRequested || now >= nextFull)
    }

    /// Records a sync that started at `started` and ended at `finished`.
    /// - Parameter draining: Whether real servers are left draining.
    mutating func record(full: Bool, started: Instant, finished: Instant, succeeded: Bool, draining: Bool) {
        lastSync = finished
        if !succeeded {
            nextFull = finished.advanced(by: minSyncPeriod * 5)
        } else if full || nextFull == nil {
            nextFull = started.advanced(by: syncPeriod)
        }
        nextDrainCheck = succeeded && draining ? finished.advanced(by: drainCheckPeriod) : nil
    }
}
