import ProxyRules

/// Every part's state at one moment.
struct PartStates: Sendable {
    var table: IPVSTablePart.State
    var addresses: ServiceAddressPart.State
    var nftables: NFTablesPart.State
    var flows: ConntrackPart.State

    static let empty = PartStates(
        table: IPVSTablePart.State(servers: [:]), addresses: ServiceAddressPart.State(linkIndex: nil, addresses: []),
        nftables: NFTablesPart.State(tables: [:], generation: nil), flows: .every)
}

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
    var states: PartStates

    /// Takes the states out, leaving empty ones, so that whoever takes them holds them alone.
    mutating func takeStates() -> PartStates {
        var taken = PartStates.empty
        swap(&taken, &states)
        return taken
    }
}
