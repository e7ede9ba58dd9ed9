import Translation

/// One part of the kernel that a sync programs: the IPVS table (``IPVSTablePart``), the service addresses on
/// the dummy link (``ServiceAddressPart``), and more to come.
///
/// Every part has the same shape, and ``Syncer`` takes each of them through it in this order:
///
/// 1. ``read(report:)`` reads what the kernel holds, or ``recall(_:for:report:)`` trusts what the last sync
///    left and reads only what memory cannot know;
/// 2. ``plan(_:observed:owned:)`` works out the changes, touching only what ipvs-proxy owns (pure: no kernel);
///    and ``report(_:into:)`` tells what it planned (a dry run ends here);
/// 3. the syncer records the ownership of ``PartChanges/owned(during:)`` before anything changes;
/// 4. ``apply(_:)`` sends the changes as one batch;
/// 5. ``follow(_:outcome:observed:owned:report:)`` works out what the part holds now without reading it, and
///    what ipvs-proxy owns.
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

    /// The part's state as the last sync left it, brought up to date by reading only what memory cannot know
    /// (what changed outside ipvs-proxy's control, such as connection counts).
    func recall(
        _ remembered: Remembered<State>, for desired: DesiredState, scope: SyncScope, report: inout Report
    ) throws -> State

    /// The changes that bring `observed` to `desired`, touching only what `owned` holds, and looking only at what
    /// `scope` says may differ.
    func plan(_ desired: DesiredState, observed: State, owned: OwnershipRecord, scope: SyncScope) -> Changes

    /// Adds the planned changes to the report.
    func report(_ changes: Changes, into report: inout Report)

    /// Sends the changes to the kernel as one batch.
    /// - Throws: When the outcome is unknown: any part of the batch may have been applied.
    func apply(_ changes: Changes) throws -> Outcome

    /// The part's state after the batch, or `nil` when only a read can tell; updates what is owned, and reports
    /// what the kernel refused.
    func follow(
        _ changes: Changes, outcome: Outcome, observed: State, owned: inout OwnershipRecord, report: inout Report
    ) -> State?
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
    /// Only what `touched` names may differ between `previous`, the desired state the remembered kernel state was
    /// brought to, and the desired state now: the rest is in the kernel as wanted.
    case touched(DesiredChanges, previous: DesiredState)
}

/// A part's state as the last sync left it, with the desired state that sync brought the kernel to.
package struct Remembered<State: Sendable>: Sendable {
    package var state: State
    package var desired: DesiredState
}
