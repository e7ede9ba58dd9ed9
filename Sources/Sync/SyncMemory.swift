import Translation

/// Every part's state at one moment.
struct PartStates: Sendable {
    var table: IPVSTablePart.State
    var addresses: ServiceAddressPart.State
    var nftables: NFTablesPart.State
    var flows: ConntrackPart.State
}

/// What a syncer knows of the kernel after its last sync, so that the next one can plan without reading.
///
/// The one rule: a syncer holds a memory only after a sync in which every part's batch was applied in full,
/// with nothing refused. A full sync does not use it; an incremental sync uses it and replaces it. A sync that
/// fails, is refused anything, or cannot tell what it applied leaves none, so the next sync reads the kernel.
struct SyncMemory: Sendable {
    /// The desired state the kernel was brought to.
    var desired: DesiredState
    var states: PartStates

    func remembered<State>(_ state: KeyPath<PartStates, State>) -> Remembered<State> {
        Remembered(state: states[keyPath: state], desired: desired)
    }
}
