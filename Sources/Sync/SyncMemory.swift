import ProxyRules

/// What a syncer knows of the kernel after its last sync, so that the next one can plan without reading.
///
/// The one rule: a syncer holds a memory only after a sync in which every part's batch was applied in full,
/// with nothing refused. A full sync does not use it; an incremental sync uses it and replaces it. A sync that
/// fails, is refused anything, or cannot tell what it applied leaves none, so the next sync reads the kernel.
///
/// It keeps the desired state the kernel was brought to only after a sync that looked at everything. After a sync
/// that planned only what a derivation touched it keeps its revision alone: the next derived state says what it
/// changed, and the daemon's live translation then changes its state in place rather than copying what the memory
/// would share. Such a memory serves only a sync of a state derived from that revision.
struct SyncMemory: Sendable {
    /// The revision of the desired state the kernel was brought to.
    var revision: DesiredState.Revision?
    /// That desired state, when kept.
    var desired: DesiredState?
    /// Each part's state.
    var states: PartValues

    /// Takes the states out, leaving none, so that whoever takes them holds them alone.
    mutating func takeStates() -> PartValues {
        var taken = PartValues()
        swap(&taken, &states)
        return taken
    }
}
