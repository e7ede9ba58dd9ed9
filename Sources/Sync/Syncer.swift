import IPVSModel
import Synchronization
import Translation

/// How a sync goes.
package struct SyncOptions: Sendable {
    /// Read every part from the kernel instead of trusting what the last sync left: this repairs what others
    /// changed. An incremental sync (`false`) reads only what memory cannot know.
    package var full: Bool
    /// Plan only: change nothing, not even the ownership record.
    package var dryRun: Bool
    /// Let an input without any Service delete everything ipvs-proxy owns.
    package var allowEmpty: Bool

    package init(full: Bool = true, dryRun: Bool = false, allowEmpty: Bool = false) {
        self.full = full
        self.dryRun = dryRun
        self.allowEmpty = allowEmpty
    }
}

/// A sync the syncer refused before touching anything.
package enum SyncError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The input holds no Service, so syncing it would delete every virtual server ipvs-proxy owns.
    case emptyInput(ownedVirtualServers: Int)

    package var description: String {
        switch self {
        case .emptyInput(let owned):
            "the input holds no Service: syncing it would delete all \(owned) virtual servers ipvs-proxy owns"
        }
    }
}

/// Every part read in full before the desired state is known, so that a one-shot sync reads the kernel while
/// it parses its input.
package struct KernelObservation: Sendable {
    var table: IPVSTablePart.State
    var addresses: ServiceAddressPart.State
    var report: SyncReport
}

/// Brings the kernel to a desired state, one part at a time through the same steps (``KernelPart``):
/// observe, plan, record ownership, apply, follow. The IPVS table is one part, the service addresses on the
/// dummy link another.
///
/// A syncer remembers what its last sync left (``SyncMemory``), so an incremental sync reads only what memory
/// cannot know. A virtual server that appeared or vanished under a plan is a race with another writer: the
/// table is read again and planned again. One sync runs at a time.
package final class Syncer: Sendable {
    package let table: IPVSTablePart
    package let addresses: ServiceAddressPart

    /// How many times a sync plans, when races with other writers refuse its batches.
    static let maximumAttempts = 3

    struct Locked {
        var ownership: OwnershipLedger
        var memory: SyncMemory?
    }

    let locked: Mutex<Locked>

    package init(
        ipvs: any IPVSTableConnection, interfaces: any InterfaceConnection, store: OwnershipStore,
        linkName: String = "kube-ipvs0"
    ) {
        table = IPVSTablePart(connection: ipvs)
        addresses = ServiceAddressPart(connection: interfaces, linkName: linkName)
        locked = Mutex(Locked(ownership: OwnershipLedger(store: store)))
    }

    /// What ipvs-proxy owns, from its record.
    package func ownership() throws -> OwnershipRecord {
        try locked.withLock { try $0.ownership.current() }
    }

    /// Reads every part in full.
    package func observe() throws -> KernelObservation {
        var report = SyncReport(dryRun: false)
        var stopwatch = Stopwatch()
        let addresses = try stopwatch.time("read addresses") { try self.addresses.read(report: &report.addresses) }
        let table = try stopwatch.time("read table") { try self.table.read(report: &report.table) }
        report.timings = stopwatch.timings
        return KernelObservation(table: table, addresses: addresses, report: report)
    }

    /// Brings the kernel to `desired`.
    /// - Parameter observed: Every part as ``observe()`` read it just before; a full sync then reads nothing.
    /// - Throws: ``SyncError`` before anything is touched; a kernel or ownership record error otherwise, after
    ///   which what was planned stays owned and the next sync reads the kernel.
    package func sync(
        _ desired: DesiredState, options: SyncOptions = SyncOptions(), observed: KernelObservation? = nil
    ) throws -> SyncReport {
        try locked.withLock { locked in try sync(desired, options: options, observed: observed, locked: &locked) }
    }

    private func sync(
        _ desired: DesiredState, options: SyncOptions, observed: KernelObservation?, locked: inout Locked
    ) throws -> SyncReport {
        var report = observed?.report ?? SyncReport(dryRun: options.dryRun)
        report.dryRun = options.dryRun
        var stopwatch = Stopwatch()
        var owned = try locked.ownership.current()
        if desired.serviceCount == 0, !owned.virtualServers.isEmpty, !options.allowEmpty {
            throw SyncError.emptyInput(ownedVirtualServers: owned.virtualServers.count)
        }
        // The memory's one rule (see SyncMemory): an incremental sync uses it, and only a sync that applies
        // everything leaves a new one. A dry run changes nothing, its memory included.
        let memory = options.full ? nil : locked.memory
        if !options.dryRun { locked.memory = nil }

        // 1. Observe: read each part, or recall what the last sync left.
        var tableState: IPVSTablePart.State
        var addressState: ServiceAddressPart.State
        if let observed, memory == nil {
            (tableState, addressState) = (observed.table, observed.addresses)
        } else if let memory {
            addressState = addresses.recall(memory.rememberedAddresses, for: desired, report: &report.addresses)
            tableState = try stopwatch.time("read changed real servers") {
                try table.recall(memory.rememberedTable, for: desired, report: &report.table)
            }
        } else {
            addressState = try stopwatch.time("read addresses") { try addresses.read(report: &report.addresses) }
            tableState = try stopwatch.time("read table") { try table.read(report: &report.table) }
        }

        while true {
            report.attempts += 1
            // 2. Plan: pure, touching only what ipvs-proxy owns.
            let tableChanges = stopwatch.time("plan") { table.plan(desired, observed: tableState, owned: owned) }
            let addressChanges = addresses.plan(desired, observed: addressState, owned: owned)
            table.report(tableChanges, into: &report.table)
            addresses.report(addressChanges, into: &report.addresses)
            if options.dryRun {
                report.timings += stopwatch.timings
                return report
            }

            // 3. Record ownership before anything changes: a crash half-way must leave nothing unowned.
            try locked.ownership.record(tableChanges.owned(during: addressChanges.owned(during: owned)))

            // 4. Apply. Addresses go on a thread of their own alongside the IPVS batch: rtnetlink and IPVS take
            // different locks in the kernel, and binding thousands of addresses is the slower of the two.
            let binding =
                addressChanges.isEmpty ? nil : Concurrently { [addresses] in try addresses.apply(addressChanges) }
            let tableOutcome = stopwatch.time("apply") { Result { try table.apply(tableChanges) } }
            let addressOutcome = stopwatch.time("wait for addresses") {
                Result { try binding?.result() ?? addresses.apply(addressChanges) }
            }

            // 5. Follow each part's batch, and record what is owned now.
            let nextAddressState = follow(
                addresses, addressChanges, addressOutcome, observed: addressState, owned: &owned,
                report: &report.addresses)
            let nextTableState = follow(
                table, tableChanges, tableOutcome, observed: tableState, owned: &owned, report: &report.table)
            try locked.ownership.record(owned)
            _ = try tableOutcome.get()
            _ = try addressOutcome.get()

            // The table changed under the plan: read it again and plan again.
            if case .success(let outcome) = tableOutcome, outcome.isRace, report.attempts < Self.maximumAttempts {
                tableState = try stopwatch.time("read table") { try table.read(report: &report.table) }
                addressState = nextAddressState ?? addressState
                continue
            }
            if let nextTableState, let nextAddressState, !report.hasFailures {
                locked.memory = SyncMemory(desired: desired, table: nextTableState, addresses: nextAddressState)
            }
            report.timings += stopwatch.timings
            return report
        }
    }

    /// Follows a part's batch. When its outcome is unknown, what the batch may have made stays owned.
    private func follow<Part: KernelPart>(
        _ part: Part, _ changes: Part.Changes, _ outcome: Result<Part.Outcome, any Error>, observed: Part.State,
        owned: inout OwnershipRecord, report: inout Part.Report
    ) -> Part.State? {
        switch outcome {
        case .success(let outcome):
            return part.follow(changes, outcome: outcome, observed: observed, owned: &owned, report: &report)
        case .failure:
            owned = changes.owned(during: owned)
            return nil
        }
    }
}
