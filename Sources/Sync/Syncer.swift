import IPVSModel
import NetfilterModel
import ProxyRules
import Synchronization

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
    var states: PartStates
    var report: SyncReport
}

/// The netfilter half's settings.
package struct NetfilterSettings: Sendable {
    /// The masquerade mark and how traffic from inside the cluster is told apart.
    package var rules: MasqueradeRules
    /// Whether stale UDP and SCTP flows are deleted after endpoints change.
    package var cleansStaleFlows: Bool

    package init(rules: MasqueradeRules = MasqueradeRules(), cleansStaleFlows: Bool = true) {
        self.rules = rules
        self.cleansStaleFlows = cleansStaleFlows
    }
}

/// Brings the kernel to a desired state, one part at a time through the same steps (``KernelPart``): observe,
/// plan, record ownership, apply, follow. The parts: the IPVS table, the service addresses on the dummy link,
/// ipvs-proxy's nftables tables, and stale UDP and SCTP flows in conntrack.
///
/// A syncer remembers what its last sync left (``SyncMemory``), so an incremental sync reads only what memory
/// cannot know. A virtual server that appeared or vanished under a plan is a race with another writer: the
/// table is read again and planned again. One sync runs at a time.
package final class Syncer: Sendable {
    package let table: IPVSTablePart
    package let addresses: ServiceAddressPart
    package let nftables: NFTablesPart
    package let flows: ConntrackPart

    /// How many times a sync plans, when races with other writers refuse its batches.
    static let maximumAttempts = 3

    struct Locked {
        var ownership: OwnershipLedger
        var memory: SyncMemory?
    }

    let locked: Mutex<Locked>

    package init(
        ipvs: any IPVSTableConnection, interfaces: any InterfaceConnection, nftables: any NFTablesConnection,
        conntrack: any ConntrackConnection, store: OwnershipStore, linkName: String = "kube-ipvs0",
        netfilter: NetfilterSettings = NetfilterSettings()
    ) {
        table = IPVSTablePart(connection: ipvs)
        addresses = ServiceAddressPart(connection: interfaces, linkName: linkName)
        self.nftables = NFTablesPart(
            connection: nftables, rules: netfilter.rules, ledger: NFTablesLedger(directory: store.directory))
        flows = ConntrackPart(connection: conntrack, isEnabled: netfilter.cleansStaleFlows)
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
        let states = try read(into: &report, stopwatch: &stopwatch)
        report.timings = stopwatch.timings
        return KernelObservation(states: states, report: report)
    }

    private func read(into report: inout SyncReport, stopwatch: inout Stopwatch) throws -> PartStates {
        // nftables first: a kernel without it fails the sync here, before anything has changed.
        let nftables = try stopwatch.time("read nftables") { try self.nftables.read(report: &report.nftables) }
        let addresses = try stopwatch.time("read addresses") { try self.addresses.read(report: &report.addresses) }
        let table = try stopwatch.time("read table") { try self.table.read(report: &report.table) }
        return PartStates(
            table: table, addresses: addresses, nftables: nftables, flows: flows.read(report: &report.flows))
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
        var memory = options.full ? nil : locked.memory
        if !options.dryRun { locked.memory = nil }
        let scope = Self.scope(of: desired, from: memory)
        // A memory without its desired state serves only a derived one.
        if case .everything = scope, memory?.desired == nil { memory = nil }

        // 1. Observe: read each part, or recall what the last sync left.
        var states: PartStates
        if let observed, memory == nil {
            states = observed.states
        } else if var remembered = memory {
            // Taken out of the memory, so that bringing them up to date changes them in place.
            memory = nil
            states = remembered.takeStates()
            let previous = remembered.desired
            try stopwatch.time("read changed real servers") {
                try table.recall(
                    &states.table, previous: previous, for: desired, scope: scope, report: &report.table)
            }
            addresses.recall(
                &states.addresses, previous: previous, for: desired, scope: scope, report: &report.addresses)
            nftables.recall(
                &states.nftables, previous: previous, for: desired, scope: scope, report: &report.nftables)
            flows.recall(&states.flows, previous: previous, for: desired, scope: scope, report: &report.flows)
        } else {
            states = try read(into: &report, stopwatch: &stopwatch)
        }

        while true {
            report.attempts += 1
            // 2. Plan: pure, touching only what ipvs-proxy owns.
            // A race's second attempt has read the table again: it looks at everything.
            let scope = report.attempts == 1 ? scope : .everything
            let tableChanges = stopwatch.time("plan") {
                table.plan(desired, observed: states.table, owned: owned, scope: scope)
            }
            let addressChanges = addresses.plan(desired, observed: states.addresses, owned: owned, scope: scope)
            let nftablesChanges = stopwatch.time("plan nftables") {
                nftables.plan(desired, observed: states.nftables, owned: owned, scope: scope)
            }
            table.report(tableChanges, into: &report.table)
            addresses.report(addressChanges, into: &report.addresses)
            nftables.report(nftablesChanges, into: &report.nftables)
            if options.dryRun {
                try stopwatch.time("check nftables") { try nftables.check(nftablesChanges) }
                report.timings += stopwatch.timings
                return report
            }

            // 3. Record ownership before anything changes: a crash half-way must leave nothing unowned.
            try locked.ownership.record(tableChanges.owned(during: addressChanges.owned(during: owned)))

            // 4. Apply. The nftables transaction and the addresses go on threads of their own alongside the IPVS
            // batch: nftables, rtnetlink and IPVS take different locks in the kernel, and binding thousands of
            // addresses is the slowest of the three.
            let filtering = Concurrently { [nftables] in try nftables.apply(nftablesChanges) }
            let binding =
                addressChanges.isEmpty ? nil : Concurrently { [addresses] in try addresses.apply(addressChanges) }
            let tableOutcome = stopwatch.time("apply") { Result { try table.apply(tableChanges) } }
            let addressOutcome = stopwatch.time("wait for addresses") {
                Result { try binding?.result() ?? addresses.apply(addressChanges) }
            }
            let nftablesOutcome = stopwatch.time("wait for nftables") { Result { try filtering.result() } }

            // 5. Follow each part's batch, and record what is owned now.
            // Each is followed, whatever the others' outcome.
            let addressesKnown = follow(
                addresses, addressChanges, addressOutcome, state: &states.addresses, owned: &owned,
                report: &report.addresses)
            let nftablesKnown = follow(
                nftables, nftablesChanges, nftablesOutcome, state: &states.nftables, owned: &owned,
                report: &report.nftables)
            let tableKnown = stopwatch.time("follow") {
                follow(table, tableChanges, tableOutcome, state: &states.table, owned: &owned, report: &report.table)
            }
            try stopwatch.time("record ownership") { try locked.ownership.record(owned) }
            _ = try tableOutcome.get()
            _ = try addressOutcome.get()
            _ = try nftablesOutcome.get()

            // The table changed under the plan: read it again and plan again.
            if case .success(let outcome) = tableOutcome, outcome.isRace, report.attempts < Self.maximumAttempts {
                states.table = try stopwatch.time("read table") { try table.read(report: &report.table) }
                continue
            }

            // 6. Last, once IPVS sends no new flow to a removed endpoint: the stale flows.
            let flowChanges = flows.plan(desired, observed: states.flows, owned: owned, scope: .everything)
            let flowOutcome = try stopwatch.time("delete stale flows") { try flows.apply(flowChanges) }
            let flowsKnown = flows.follow(
                flowChanges, outcome: flowOutcome, state: &states.flows, owned: &owned, report: &report.flows)

            if tableKnown, addressesKnown, nftablesKnown, flowsKnown, !report.hasFailures {
                let lookedAtEverything = if case .everything = scope { true } else { false }
                locked.memory = SyncMemory(
                    revision: desired.revision, desired: lookedAtEverything ? desired : nil, states: states)
            }
            report.timings += stopwatch.timings
            return report
        }
    }

    /// Follows a part's batch in place. When its outcome is unknown, what the batch may have made stays owned.
    private func follow<Part: KernelPart>(
        _ part: Part, _ changes: Part.Changes, _ outcome: Result<Part.Outcome, any Error>, state: inout Part.State,
        owned: inout OwnershipRecord, report: inout Part.Report
    ) -> Bool {
        switch outcome {
        case .success(let outcome):
            return part.follow(changes, outcome: outcome, state: &state, owned: &owned, report: &report)
        case .failure:
            owned = changes.owned(during: owned)
            return false
        }
    }

    /// What a sync may look at only: what the desired state's derivation says changed since the state the memory
    /// brought the kernel to.
    static func scope(of desired: DesiredState, from memory: SyncMemory?) -> SyncScope {
        guard let memory, let base = memory.revision, let derivation = desired.derivation, derivation.base == base,
            let touched = derivation.touched
        else { return .everything }
        return .touched(touched)
    }
}
