import IPVSModel
import InterfaceModel
import ProxyRules
import SystemPackage

/// The service addresses bound to the dummy link (`kube-ipvs0`), so that the node accepts traffic for them.
///
/// Only addresses ipvs-proxy bound are ever unbound. The link is made, and set up, when the first address
/// needs it (IPv6 addresses on a link that is down stay tentative and get no local route).
package struct ServiceAddressPart: KernelPart {
    private let connection: any InterfaceConnection
    /// The dummy link that holds service addresses.
    package let linkName: String

    package init(connection: any InterfaceConnection, linkName: String) {
        self.connection = connection
        self.linkName = linkName
    }

    /// Its batch goes on a thread of its own: binding thousands of addresses is a sync's slowest kernel work.
    package var stage: PartStage { .alongside }
    package var phases: PartPhases { PartPhases(read: "read addresses", apply: "wait for addresses") }

    /// The node's own addresses (every link's but the dummy link's), for node ports.
    package func nodeAddresses() throws -> NodeAddresses {
        try NodeAddresses.discover(connection, excludingLink: linkName)
    }

    /// The dummy link's index, when there is one: its addresses are ipvs-proxy's, not the node's.
    package func linkIndex() throws -> Int32? {
        try connection.link(named: linkName)?.index
    }

    /// The dummy link and the addresses on it. Known exactly after a batch, refused changes included.
    package struct State: Sendable, Hashable {
        /// The link's index, or `nil` when there is no such link.
        package var linkIndex: Int32?
        package var addresses: Set<IPAddress>
    }

    /// What a sync did to the link's addresses, or (in a dry run) would do.
    package struct Report: PartReport {
        /// The addresses planned to be bound and unbound, over all attempts.
        package var bound: [IPAddress] = []
        package var unbound: [IPAddress] = []
        /// Every change the kernel refused, over all attempts, leaving an address other than as wanted.
        package var refused: [AddressChangeFailure] = []
        /// The refusals of the last attempt: what the sync could not do.
        package var failures: [AddressChangeFailure] = []

        package init() {}

        package var failureDescriptions: [String] { failures.map(\.error.description) }

        package var operationResults: [(kind: String, succeeded: Int, refused: Int)] {
            let counts = counts
            return [
                ("bind-address", counts.bound, counts.refusedBinds),
                ("unbind-address", counts.unbound, counts.refusedUnbinds),
            ]
        }

        /// How many binds and unbinds succeeded (or, in a dry run, are planned) and were refused.
        package var counts: (bound: Int, unbound: Int, refusedBinds: Int, refusedUnbinds: Int) {
            let refusedBinds = refused.filter { if case .bind = $0.change { true } else { false } }.count
            let refusedUnbinds = refused.count - refusedBinds
            return (bound.count - refusedBinds, unbound.count - refusedUnbinds, refusedBinds, refusedUnbinds)
        }
    }

    /// What the kernel made of a batch.
    package struct Outcome: Sendable {
        /// The link the addresses went to.
        package var linkIndex: Int32?
        /// The changes it refused, except those that leave the address as wanted anyway: a bind of an address
        /// bound meanwhile by someone else (`EEXIST`), an unbind of one already gone (`EADDRNOTAVAIL`).
        package var failures: [AddressChangeFailure]
    }

    /// What a cleanup unbinds: the addresses ipvs-proxy bound; and the dummy link, when nothing else is on it.
    package struct Removal: PartReport {
        package var unbound: [IPAddress] = []
        package var deletesLink = false
        /// The unbinds the kernel refused (an address already gone is not refused).
        package var failures: [AddressChangeFailure] = []
        fileprivate var link: Int32?
        fileprivate var ours: [InterfaceAddress] = []

        package init() {}

        package var failureDescriptions: [String] { failures.map(\.error.description) }
    }

    package func read(report: inout Report) throws -> State {
        guard let link = try connection.link(named: linkName) else { return State(linkIndex: nil, addresses: []) }
        let addresses = try connection.addresses().filter { $0.linkIndex == link.index }.map(\.address)
        return State(linkIndex: link.index, addresses: Set(addresses))
    }

    /// Addresses change only by ipvs-proxy's own hand between full syncs: memory is enough.
    package func recall(
        _ state: inout State, previous: DesiredState?, for desired: DesiredState, scope: SyncScope,
        report: inout Report
    ) {}

    package func plan(_ desired: DesiredState, observed: State, owned: OwnershipRecord, scope: SyncScope) -> AddressPlan
    {
        var only: Set<IPAddress>?
        if case .touched(let touched) = scope { only = Set(touched.serviceAddresses.keys) }
        return AddressPlan(
            desired: desired.serviceAddresses, onLink: observed.addresses, owned: owned.addresses,
            linkIndex: observed.linkIndex, only: only)
    }

    package func report(_ changes: AddressPlan, into report: inout Report) {
        report.bound += changes.bind
        report.unbound += changes.unbind
    }

    package func apply(_ changes: AddressPlan) throws -> Outcome {
        guard !changes.isEmpty else { return Outcome(linkIndex: changes.linkIndex, failures: []) }
        let linkIndex = try changes.linkIndex ?? makeLink()
        let batch =
            changes.bind.map { AddressChange.bind(InterfaceAddress(linkIndex: linkIndex, address: $0)) }
            + changes.unbind.map { AddressChange.unbind(InterfaceAddress(linkIndex: linkIndex, address: $0)) }
        let failures = try connection.apply(batch).filter {
            switch ($0.change, $0.error.errno) {
            case (.bind, .fileExists?), (.unbind, .addressNotAvailable?): false
            default: true
            }
        }
        return Outcome(linkIndex: linkIndex, failures: failures)
    }

    package func removal(owned: OwnershipRecord) throws -> Removal {
        var removal = Removal()
        guard let link = try connection.link(named: linkName) else { return removal }
        let onLink = try connection.addresses().filter { $0.linkIndex == link.index }
        removal.link = link.index
        removal.ours = onLink.filter { owned.addresses.contains($0.address) }
        removal.unbound = removal.ours.map(\.address).sorted()
        let othersRemain = onLink.contains { !owned.addresses.contains($0.address) && !$0.address.isLinkLocal }
        removal.deletesLink = link.kind == "dummy" && !othersRemain
        return removal
    }

    package func remove(_ removal: inout Removal, owned: inout OwnershipRecord) throws {
        removal.failures = try connection.apply(removal.ours.map(AddressChange.unbind))
            .filter { $0.error.errno != .addressNotAvailable }
        let notUnbound = Set(removal.failures.map(\.change.address.address))
        owned.addresses = owned.addresses.filter { notUnbound.contains($0) }
        if removal.deletesLink, removal.failures.isEmpty, let link = removal.link {
            try connection.deleteLink(index: link)
        }
    }

    private func makeLink() throws -> Int32 {
        let index = try connection.addDummyLink(named: linkName)
        try connection.setLinkUp(index: index)
        return index
    }

    package func follow(
        _ changes: AddressPlan, outcome: Outcome, state: inout State, owned: inout OwnershipRecord,
        report: inout Report
    ) -> Bool {
        report.refused += outcome.failures
        report.failures = outcome.failures
        state.linkIndex = outcome.linkIndex
        guard !changes.isEmpty else { return true }
        let failed = Set(outcome.failures.map(\.change.address.address))
        let bound = changes.bind.filter { !failed.contains($0) }
        let unbound = changes.unbind.filter { !failed.contains($0) }
        owned.addresses.formUnion(bound)
        // A refused bind made nothing, even where the record (wrongly) held the address.
        for address in changes.bind where failed.contains(address) { owned.addresses.remove(address) }
        owned.addresses.subtract(unbound)
        state.addresses.formUnion(bound)
        state.addresses.subtract(unbound)
        return true
    }
}

extension AddressPlan: PartChanges {
    package func owned(during owned: OwnershipRecord) -> OwnershipRecord {
        var during = owned
        if !bind.isEmpty { during.addresses.formUnion(bind) }
        return during
    }
}

extension SyncReport {
    /// The service addresses bound and unbound, and the refusals.
    package var addresses: ServiceAddressPart.Report { self[ServiceAddressPart.self] }
}

extension Syncer.CleanupReport {
    /// The addresses a cleanup unbound, or would unbind.
    package var unboundAddresses: [IPAddress] { self[ServiceAddressPart.self].unbound }
    /// Whether it deleted the dummy link (nothing else was on it), or would.
    package var deletedLink: Bool { self[ServiceAddressPart.self].deletesLink }
    /// The unbinds the kernel refused.
    package var addressFailures: [AddressChangeFailure] { self[ServiceAddressPart.self].failures }
}
