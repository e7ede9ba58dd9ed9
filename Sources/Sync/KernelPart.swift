import IPVSModel
import ProxyRules

/// One part of the kernel that a sync programs and a cleanup removes: the IPVS table (``IPVSTablePart``), the
/// service addresses on the dummy link (``ServiceAddressPart``), ipvs-proxy's nftables tables (``NFTablesPart``)
/// and stale flows in conntrack (``ConntrackPart``).
///
/// Every part has the same shape, and ``Syncer`` takes each of them through it in this order:
///
/// 1. ``read(report:)`` reads what the kernel holds, or ``recall(_:previous:for:scope:report:)`` trusts what the
///    last sync left and reads only what memory cannot know;
/// 2. ``plan(_:observed:owned:scope:)`` works out the changes, touching only what ipvs-proxy owns (pure: no
///    kernel); ``report(_:into:)`` tells what it planned, and ``check(_:)`` has the kernel check it without
///    applying it (a dry run ends here);
/// 3. the syncer records the ownership of ``PartChanges/owned(during:)`` before anything changes;
/// 4. ``apply(_:)`` sends the changes as one batch, where ``stage`` says;
/// 5. ``follow(_:outcome:state:owned:report:)`` works out what the part holds now without reading it, and
///    what ipvs-proxy owns.
///
/// A cleanup reads what a part would remove with ``removal(owned:)``, then ``remove(_:owned:)`` removes it.
///
/// Memory is brought up to date in place (`inout`): at 10,000 Services a copy of the table costs more than the
/// rest of an endpoint change. A part reads and writes only through its own connection, which it keeps to itself,
/// so a fake connection tests it without a kernel.
///
/// To add a part: write it in a file of its own (its state, changes, outcome, report, removal and the steps), and
/// add it to the list in ``Syncer/init(ipvs:interfaces:nftables:conntrack:store:linkName:netfilter:)``.
package protocol KernelPart: Sendable {
    /// What the part holds in the kernel, as far as a sync needs to know it.
    associatedtype State: Sendable
    /// The changes a sync makes to the part.
    associatedtype Changes: PartChanges
    /// What applying the changes came to.
    associatedtype Outcome: Sendable
    /// What the part tells about a sync.
    associatedtype Report: PartReport
    /// What a cleanup removes of the part, and what the kernel refused of it.
    associatedtype Removal: PartReport = NothingToRemove

    /// Where the part's batch goes in a sync.
    var stage: PartStage { get }
    /// The names of the part's steps in a sync's timings (`sync --timings`); a step without one is not timed.
    var phases: PartPhases { get }

    /// Reads the part's state from the kernel. This repairs whatever others changed.
    func read(report: inout Report) throws -> State

    /// Brings the part's state as the last sync left it up to date by reading only what memory cannot know (what
    /// changed outside ipvs-proxy's control, such as connection counts).
    /// - Parameter previous: The desired state the last sync brought the kernel to, when the memory kept it.
    func recall(
        _ state: inout State, previous: DesiredState?, for desired: DesiredState, scope: SyncScope,
        report: inout Report
    ) throws

    /// The changes that bring `observed` to `desired`, touching only what `owned` holds, and looking only at what
    /// `scope` says may differ.
    func plan(_ desired: DesiredState, observed: State, owned: OwnershipRecord, scope: SyncScope) -> Changes

    /// Adds the planned changes to the report.
    func report(_ changes: Changes, into report: inout Report)

    /// Has the kernel check the changes without applying any (a dry run's last step).
    func check(_ changes: Changes) throws

    /// Sends the changes to the kernel as one batch.
    /// - Throws: When the outcome is unknown: any part of the batch may have been applied.
    func apply(_ changes: Changes) throws -> Outcome

    /// Brings `state` to what the part holds after the batch, or says `false` (leaving it as it was) when only a
    /// read can tell; updates what is owned, and reports what the kernel refused.
    func follow(
        _ changes: Changes, outcome: Outcome, state: inout State, owned: inout OwnershipRecord, report: inout Report
    ) -> Bool

    /// Whether the kernel changed under the plan, so that reading the part again and planning again can succeed
    /// (another writer made or removed what the batch touched).
    func raced(_ outcome: Outcome) -> Bool

    /// Reads what a cleanup would remove: what ipvs-proxy owns of the part, and nothing else.
    func removal(owned: OwnershipRecord) throws -> Removal

    /// Removes it, notes what the kernel refused, and takes what went out of `owned`.
    func remove(_ removal: inout Removal, owned: inout OwnershipRecord) throws
}

extension KernelPart {
    package func check(_ changes: Changes) throws {}

    package func raced(_ outcome: Outcome) -> Bool { false }
}

extension KernelPart where Removal == NothingToRemove {
    package func removal(owned: OwnershipRecord) throws -> NothingToRemove { NothingToRemove() }

    package func remove(_ removal: inout NothingToRemove, owned: inout OwnershipRecord) throws {}
}

/// Where a part's batch goes in a sync.
package enum PartStage: Sendable {
    /// On the sync's own thread, while the other parts' batches go alongside. A race sends the sync back to read
    /// the part again and plan every part again (the IPVS table).
    case lead
    /// On a thread of its own, alongside the lead's batch: the kernel takes other locks for it.
    case alongside
    /// Once the others are settled, with everything they did known (stale flows: no new flow can then go to an
    /// endpoint just cleaned up after).
    case last
}

/// The names a part's steps have in a sync's timings; `nil`: not timed.
package struct PartPhases: Sendable {
    package var read: String?
    package var recall: String?
    package var plan: String?
    package var check: String?
    /// For a part applied alongside, the wait for its batch after the lead's.
    package var apply: String?
    package var follow: String?

    package init(
        read: String? = nil, recall: String? = nil, plan: String? = nil, check: String? = nil, apply: String? = nil,
        follow: String? = nil
    ) {
        self.read = read
        self.recall = recall
        self.plan = plan
        self.check = check
        self.apply = apply
        self.follow = follow
    }
}

/// The changes a part plans.
package protocol PartChanges: Sendable {
    /// Whether there is nothing to send.
    var isEmpty: Bool { get }
    /// What ipvs-proxy owns while the changes are applied: what it owned, and everything they may create, so
    /// that a crash half-way leaves nothing it made unaccounted for.
    func owned(during owned: OwnershipRecord) -> OwnershipRecord
}

/// What a part tells of a sync or a cleanup, merged into ``SyncReport`` or ``Syncer/CleanupReport``.
package protocol PartReport: Sendable {
    /// Nothing done yet.
    init()
    /// Every refusal that stands, in words.
    var failureDescriptions: [String] { get }
    /// Every kernel operation sent, by kind, with how many the kernel accepted and refused (for the metrics).
    var operationResults: [(kind: String, succeeded: Int, refused: Int)] { get }
}

extension PartReport {
    package var operationResults: [(kind: String, succeeded: Int, refused: Int)] { [] }
}

/// The removal of a part that a cleanup has nothing to remove of.
package struct NothingToRemove: PartReport {
    package init() {}
    package var failureDescriptions: [String] { [] }
}

/// What a sync looks at.
package enum SyncScope: Sendable {
    /// Everything: the kernel was read, or memory cannot say what changed.
    case everything
    /// Only what the changes name may differ between the desired state the remembered kernel state was brought to
    /// and the desired state now (the changes say what that one had there): the rest is in the kernel as wanted.
    case touched(DesiredChanges)

    /// The desired virtual servers a recall looks at, each with what the desired state the remembered kernel state
    /// was brought to had at its key: every one, or only the touched ones and `also` (which, untouched, had the
    /// same as now).
    /// - Parameter previous: That earlier desired state, when the memory kept it (needed for ``everything``).
    func virtualServers(
        of desired: DesiredState, previous: DesiredState?, also: Set<VirtualServerKey> = []
    ) -> [(key: VirtualServerKey, wanted: DesiredVirtualServer, had: DesiredVirtualServer?)] {
        switch self {
        case .everything:
            return desired.virtualServers.map { ($0.key, $0.value, previous?.virtualServers[$0.key]) }
        case .touched(let touched):
            return Set(touched.virtualServers.keys).union(also).compactMap { key in
                guard let wanted = desired.virtualServers[key] else { return nil }
                return (key, wanted, touched.virtualServers[key] != nil ? touched.previous(key) : wanted)
            }
        }
    }
}
