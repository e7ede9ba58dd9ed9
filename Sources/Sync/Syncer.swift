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
    var states: PartValues
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
/// plan, record ownership, apply, follow; and removes what it made (``cleanup(dryRun:)``).
///
/// A syncer remembers what its last sync left (``SyncMemory``), so an incremental sync reads only what memory
/// cannot know. A part whose kernel state changed under a plan (a virtual server that appeared or vanished) is a
/// race with another writer: it is read again and every part planned again. One sync runs at a time.
package final class Syncer: Sendable {
    /// The parts, in the order they are read, planned, reported and removed.
    let parts: [any KernelPart]

    /// How many times a sync plans, when races with other writers refuse its batches.
    static let maximumAttempts = 3

    struct Locked {
        var ownership: OwnershipLedger
        var memory: SyncMemory?
    }

    let locked: Mutex<Locked>

    /// A syncer of these parts, recording what it owns in `store`.
    package init(parts: [any KernelPart], store: OwnershipStore) {
        self.parts = parts
        locked = Mutex(Locked(ownership: OwnershipLedger(store: store)))
    }

    /// A syncer of every part ipvs-proxy programs, over these connections: the one list of the parts.
    package convenience init(
        ipvs: any IPVSTableConnection, interfaces: any InterfaceConnection, nftables: any NFTablesConnection,
        conntrack: any ConntrackConnection, store: OwnershipStore, linkName: String = "kube-ipvs0",
        netfilter: NetfilterSettings = NetfilterSettings()
    ) {
        self.init(
            parts: [
                IPVSTablePart(connection: ipvs),
                ServiceAddressPart(connection: interfaces, linkName: linkName),
                NFTablesPart(
                    connection: nftables, rules: netfilter.rules, ledger: NFTablesLedger(directory: store.directory)),
                ConntrackPart(connection: conntrack, isEnabled: netfilter.cleansStaleFlows),
            ],
            store: store)
    }

    /// The part of this type, if the syncer has one.
    package func part<Part: KernelPart>(_ type: Part.Type) -> Part? {
        parts.lazy.compactMap { $0 as? Part }.first
    }

    /// What ipvs-proxy owns, from its record.
    package func ownership() throws -> OwnershipRecord {
        try locked.withLock { try $0.ownership.current() }
    }

    /// Reads every part in full.
    package func observe() throws -> KernelObservation {
        var report = newReport(dryRun: false)
        var stopwatch = Stopwatch()
        let states = try read(into: &report, stopwatch: &stopwatch)
        report.timings = stopwatch.timings
        return KernelObservation(states: states, report: report)
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
        var report = observed?.report ?? newReport(dryRun: options.dryRun)
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
        var states: PartValues
        if let observed, memory == nil {
            states = observed.states
        } else if var remembered = memory {
            // Taken out of the memory, so that bringing them up to date changes them in place.
            memory = nil
            states = remembered.takeStates()
            let previous = remembered.desired
            for part in parts {
                try recall(part, &states, previous: previous, for: desired, scope: scope, &report, &stopwatch)
            }
        } else {
            states = try read(into: &report, stopwatch: &stopwatch)
        }

        while true {
            report.attempts += 1
            // 2. Plan: pure, touching only what ipvs-proxy owns.
            // A race's second attempt has read the raced part again: it looks at everything.
            let scope = report.attempts == 1 ? scope : .everything
            report.lookedAtEverything = if case .everything = scope { true } else { false }
            var changes = PartValues()
            for part in parts where part.stage != .last {
                plan(part, desired, states, owned: owned, scope: scope, into: &changes, &report, &stopwatch)
            }
            if options.dryRun {
                for part in parts where part.stage != .last { try check(part, changes, &stopwatch) }
                report.timings += stopwatch.timings
                return report
            }

            // 3. Record ownership before anything changes: a crash half-way must leave nothing unowned.
            var during = owned
            for part in parts where part.stage != .last { during = ownedDuring(part, changes, owned: during) }
            try locked.ownership.record(during)

            // 4. Apply. The parts that go alongside send their batches on threads of their own while the lead's
            // goes on this one: nftables, rtnetlink and IPVS take different locks in the kernel, and binding
            // thousands of addresses is the slowest of the three.
            var pending: [(any KernelPart, Pending)] = []
            for part in parts where part.stage == .alongside { pending.append((part, start(part, changes))) }
            var outcomes = PartValues()
            for part in parts where part.stage == .lead { apply(part, changes, into: &outcomes, &stopwatch) }
            for (part, batch) in pending { wait(part, for: batch, into: &outcomes, &stopwatch) }

            // 5. Follow each part's batch, whatever the others' outcome, and record what is owned now.
            var known = true
            for part in parts where part.stage != .last {
                known = follow(part, changes, outcomes, &states, owned: &owned, &report, &stopwatch) && known
            }
            try stopwatch.time("record ownership") { try locked.ownership.record(owned) }
            var raced: [any KernelPart] = []
            for part in parts where part.stage != .last {
                if try settled(part, outcomes) { raced.append(part) }
            }

            // A part changed under the plan: read it again and plan again.
            if !raced.isEmpty, report.attempts < Self.maximumAttempts {
                for part in raced { try readAgain(part, into: &states, &report, &stopwatch) }
                continue
            }

            // 6. Last, once the others are settled: the parts that go last (stale flows, once IPVS sends no new
            // flow to a removed endpoint).
            for part in parts where part.stage == .last {
                known = try applyLast(part, desired, &states, owned: &owned, &report, &stopwatch) && known
            }

            if known, !report.hasFailures {
                locked.memory = SyncMemory(
                    revision: desired.revision, desired: report.lookedAtEverything ? desired : nil, states: states)
            }
            report.timings += stopwatch.timings
            return report
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

    /// A report with room for every part's, in the parts' order.
    func newReport(dryRun: Bool) -> SyncReport {
        var report = SyncReport(dryRun: dryRun)
        for part in parts { include(part, in: &report) }
        return report
    }

    // MARK: - Each step, for one part of its own type

    private func include<Part: KernelPart>(_ part: Part, in report: inout SyncReport) {
        report.include(Part.self)
    }

    private func read(into report: inout SyncReport, stopwatch: inout Stopwatch) throws -> PartValues {
        var states = PartValues()
        for part in parts { try readAgain(part, into: &states, &report, &stopwatch) }
        return states
    }

    private func readAgain<Part: KernelPart>(
        _ part: Part, into states: inout PartValues, _ report: inout SyncReport, _ stopwatch: inout Stopwatch
    ) throws {
        let state = try stopwatch.time(part.phases.read) { try report.modify(Part.self) { try part.read(report: &$0) } }
        states.set(state, for: Part.self)
    }

    private func recall<Part: KernelPart>(
        _ part: Part, _ states: inout PartValues, previous: DesiredState?, for desired: DesiredState,
        scope: SyncScope, _ report: inout SyncReport, _ stopwatch: inout Stopwatch
    ) throws {
        try stopwatch.time(part.phases.recall) {
            try report.modify(Part.self) { partReport in
                try states.modify(Part.self, initial: Self.unreachable(Part.State.self)) { state in
                    try part.recall(&state, previous: previous, for: desired, scope: scope, report: &partReport)
                }
            }
        }
    }

    private func plan<Part: KernelPart>(
        _ part: Part, _ desired: DesiredState, _ states: PartValues, owned: OwnershipRecord, scope: SyncScope,
        into changes: inout PartValues, _ report: inout SyncReport, _ stopwatch: inout Stopwatch
    ) {
        guard let state = states.get(Part.self, as: Part.State.self) else { return }
        let planned = stopwatch.time(part.phases.plan) {
            part.plan(desired, observed: state, owned: owned, scope: scope)
        }
        report.modify(Part.self) { part.report(planned, into: &$0) }
        changes.set(planned, for: Part.self)
    }

    private func check<Part: KernelPart>(_ part: Part, _ changes: PartValues, _ stopwatch: inout Stopwatch) throws {
        guard let planned = changes.get(Part.self, as: Part.Changes.self) else { return }
        try stopwatch.time(part.phases.check) { try part.check(planned) }
    }

    private func ownedDuring<Part: KernelPart>(
        _ part: Part, _ changes: PartValues, owned: OwnershipRecord
    ) -> OwnershipRecord {
        changes.get(Part.self, as: Part.Changes.self)?.owned(during: owned) ?? owned
    }

    /// A batch going on a thread of its own, or applied at once when it is empty (a thread costs more).
    private enum Pending {
        case running(Concurrently<any Sendable>)
        case done(Result<any Sendable, any Error>)
    }

    private func start<Part: KernelPart>(_ part: Part, _ changes: PartValues) -> Pending {
        guard let planned = changes.get(Part.self, as: Part.Changes.self) else {
            return .done(.failure(CancellationError()))
        }
        if planned.isEmpty { return .done(Result { try part.apply(planned) }) }
        return .running(Concurrently { try part.apply(planned) })
    }

    private func wait<Part: KernelPart>(
        _ part: Part, for batch: Pending, into outcomes: inout PartValues, _ stopwatch: inout Stopwatch
    ) {
        let outcome: Result<any Sendable, any Error> =
            switch batch {
            case .done(let result): result
            case .running(let running): stopwatch.time(part.phases.apply) { Result { try running.result() } }
            }
        outcomes.set(outcome.map { $0 as! Part.Outcome }, for: Part.self)
    }

    private func apply<Part: KernelPart>(
        _ part: Part, _ changes: PartValues, into outcomes: inout PartValues, _ stopwatch: inout Stopwatch
    ) {
        guard let planned = changes.get(Part.self, as: Part.Changes.self) else { return }
        let outcome = stopwatch.time(part.phases.apply) { Result { try part.apply(planned) } }
        outcomes.set(outcome, for: Part.self)
    }

    /// Follows a part's batch in place. When its outcome is unknown, what the batch may have made stays owned.
    private func follow<Part: KernelPart>(
        _ part: Part, _ changes: PartValues, _ outcomes: PartValues, _ states: inout PartValues,
        owned: inout OwnershipRecord, _ report: inout SyncReport, _ stopwatch: inout Stopwatch
    ) -> Bool {
        guard let planned = changes.get(Part.self, as: Part.Changes.self),
            let outcome = outcomes.get(Part.self, as: Result<Part.Outcome, any Error>.self)
        else { return false }
        return stopwatch.time(part.phases.follow) {
            switch outcome {
            case .success(let outcome):
                return report.modify(Part.self) { partReport in
                    states.modify(Part.self, initial: Self.unreachable(Part.State.self)) { state in
                        part.follow(planned, outcome: outcome, state: &state, owned: &owned, report: &partReport)
                    }
                }
            case .failure:
                owned = planned.owned(during: owned)
                return false
            }
        }
    }

    /// Whether a part's batch raced with another writer; throws its error when its outcome is unknown.
    private func settled<Part: KernelPart>(_ part: Part, _ outcomes: PartValues) throws -> Bool {
        guard let outcome = outcomes.get(Part.self, as: Result<Part.Outcome, any Error>.self) else { return false }
        return part.raced(try outcome.get())
    }

    /// Plans, applies and follows a part that goes last, on what the others made.
    private func applyLast<Part: KernelPart>(
        _ part: Part, _ desired: DesiredState, _ states: inout PartValues, owned: inout OwnershipRecord,
        _ report: inout SyncReport, _ stopwatch: inout Stopwatch
    ) throws -> Bool {
        guard let state = states.get(Part.self, as: Part.State.self) else { return false }
        let planned = part.plan(desired, observed: state, owned: owned, scope: .everything)
        report.modify(Part.self) { part.report(planned, into: &$0) }
        let outcome = try stopwatch.time(part.phases.apply) { try part.apply(planned) }
        return report.modify(Part.self) { partReport in
            states.modify(Part.self, initial: state) { state in
                part.follow(planned, outcome: outcome, state: &state, owned: &owned, report: &partReport)
            }
        }
    }

    /// A state that a part always has by the time it is asked for (read first, or kept in the memory).
    private static func unreachable<State>(_ type: State.Type) -> State {
        preconditionFailure("a part's state is read before its batch is followed")
    }
}
