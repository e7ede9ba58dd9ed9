import IPVSModel
import ProxyRules

/// One part of the kernel that a sync programs: the IPVS table (``IPVSTablePart``), the service addresses on
/// the dummy link (``ServiceAddressPart``), and more to come.
///
/// Every part has the same shape, and ``Syncer`` takes each of them through it in this order:
///
/// 1. ``read(report:)`` reads what the kernel holds, or ``recall(_:previous:for:scope:report:)`` trusts what the
///    last sync left and reads only what memory cannot know;
/// 2. ``plan(_:observed:owned:)`` works out the changes, touching only what ipvs-proxy owns (pure: no kernel);
///    and ``report(_:into:)`` tells what it planned (a dry run ends here);
/// 3. the syncer records the ownership of ``PartChanges/owned(during:)`` before anything changes;
/// 4. ``apply(_:)`` sends the changes as one batch;
/// 5. ``follow(_:outcome:state:owned:report:)`` works out what the part holds now without reading it, and
///    what ipvs-proxy owns.
///
/// Memory is brought up to date in place (`inout`): at 10,000 Services a copy of the table costs more than the
/// rest of an endpoint change.
///
/// A part reads and writes only through its connection, so a fake connection tests it without a kernel.
package protocol KernelPart: Sendable {
    /// What the part holds in the kernel, as far as a sync needs to know it.
    associatedtype State: Sendable
    /// The changes a sync makes to the part.
    associatedtype Changes: PartChanges
    /// What applying the changes came to.
    associatedtype Outcome: Sendable
    /// What the part tells about a sync, merged into ``SyncReport``.
    associatedtype Report: Sendable

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

    /// Sends the changes to the kernel as one batch.
    /// - Throws: When the outcome is unknown: any part of the batch may have been applied.
    func apply(_ changes: Changes) throws -> Outcome

    /// Brings `state` to what the part holds after the batch, or says `false` (leaving it as it was) when only a
    /// read can tell; updates what is owned, and reports what the kernel refused.
    func follow(
        _ changes: Changes, outcome: Outcome, state: inout State, owned: inout OwnershipRecord, report: inout Report
    ) -> Bool
}

/// The changes a part plans.
package protocol PartChanges: Sendable {
    /// Whether there is nothing to send.
    var isEmpty: Bool { get }
    /// What ipvs-proxy owns while the changes are applied: what it owned, and everything they may create, so
    /// that a crash half-way leaves nothing it made unaccounted for.
    func owned(during owned: OwnershipRecord) -> OwnershipRecord
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
