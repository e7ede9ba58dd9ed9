import IPVSModel
import NetfilterModel
import ProxyRules

/// Stale UDP and SCTP flows in the kernel's connection tracking table: flows to a Service address and port whose
/// answers come from something that no longer serves it (an endpoint that is gone, or the Service address itself,
/// from a time the Service had no endpoint). kube-proxy's `CleanStaleEntries`, with its rule: a flow stays only
/// when its reply's source is a serving endpoint of the virtual server it was sent to.
///
/// IPVS itself drops the conntrack entries of its own connections to a real server it deletes (with
/// `expire_nodest_conn` and `vs/conntrack`); this part covers what that misses. A full sync looks at every UDP
/// and SCTP virtual server; an incremental one only at those whose real servers changed. TCP flows end with their
/// connection and are left alone.
package struct ConntrackPart: KernelPart {
    private let connection: any ConntrackConnection
    /// Whether stale flows are deleted at all.
    package let isEnabled: Bool

    package init(connection: any ConntrackConnection, isEnabled: Bool = true) {
        self.connection = connection
        self.isEnabled = isEnabled
    }

    /// Last: once the IPVS table is settled, no new flow can go to an endpoint just cleaned up after.
    package var stage: PartStage { .last }
    package var phases: PartPhases { PartPhases(apply: "delete stale flows") }

    /// Which virtual servers a sync looks at.
    package enum State: Sendable, Hashable {
        case every
        case only(Set<VirtualServerKey>)
    }

    /// The flows a sync deletes: for each UDP or SCTP Service address and port, the sources an answer may come
    /// from.
    package struct Changes: PartChanges {
        package var servingSources: [FlowDestination: Set<IPAddress>]

        package var isEmpty: Bool { servingSources.isEmpty }

        package func owned(during owned: OwnershipRecord) -> OwnershipRecord { owned }

        /// Whether a flow is stale: sent to a Service address and port looked at, answered from elsewhere.
        package func isStale(_ entry: ConntrackEntry) -> Bool {
            let destination = FlowDestination(
                transportProtocol: entry.transportProtocol, address: entry.original.destination,
                port: entry.original.destinationPort)
            guard let sources = servingSources[destination] else { return false }
            return !sources.contains(entry.reply.source)
        }
    }

    /// A Service address and port, as a flow's original destination.
    package struct FlowDestination: Sendable, Hashable {
        package var transportProtocol: UInt8
        package var address: IPAddress
        package var port: UInt16
    }

    package struct Report: PartReport {
        /// The UDP and SCTP Service addresses and ports whose flows were looked at.
        package var lookedAt = 0
        /// How many flows were deleted.
        package var deleted = 0
        /// Flows the kernel would not delete.
        package var failures: [NetfilterError] = []

        package init() {}

        package var failureDescriptions: [String] { failures.map(\.description) }
    }

    package struct Outcome: Sendable {
        package var deleted: Int
        package var failures: [NetfilterError]
    }

    static let protocols: Set<UInt8> = [UInt8(TransportProtocol.udp.rawValue), UInt8(TransportProtocol.sctp.rawValue)]

    /// Flows come and go every second: they are read when the changes are applied, right before the stale ones
    /// are deleted. What a sync knows of the part before that is which virtual servers it looks at.
    package func read(report: inout Report) -> State { .every }

    package func recall(
        _ state: inout State, previous: DesiredState?, for desired: DesiredState, scope: SyncScope,
        report: inout Report
    ) {
        var changed = Set<VirtualServerKey>()
        for (key, wanted, had) in scope.virtualServers(of: desired, previous: previous)
        where had?.realServers != wanted.realServers {
            changed.insert(key)
        }
        state = .only(changed)
    }

    package func plan(_ desired: DesiredState, observed: State, owned: OwnershipRecord, scope: SyncScope) -> Changes {
        guard isEnabled else { return Changes(servingSources: [:]) }
        var sources: [FlowDestination: Set<IPAddress>] = [:]
        let looked: [(VirtualServerKey, DesiredVirtualServer)] =
            switch observed {
            case .every: Array(desired.virtualServers)
            case .only(let keys): keys.compactMap { key in desired.virtualServers[key].map { (key, $0) } }
            }
        for (key, wanted) in looked {
            guard case .address(let transport, let address, let port) = key,
                Self.protocols.contains(UInt8(truncatingIfNeeded: transport.rawValue))
            else { continue }
            let destination = FlowDestination(
                transportProtocol: UInt8(truncatingIfNeeded: transport.rawValue), address: address, port: port)
            sources[destination] = Set(wanted.realServers.filter { $0.weight > 0 }.map(\.address))
        }
        return Changes(servingSources: sources)
    }

    package func report(_ changes: Changes, into report: inout Report) {
        report.lookedAt += changes.servingSources.count
    }

    /// Reads the UDP and SCTP flows of the families looked at, and deletes the stale ones in one batch.
    package func apply(_ changes: Changes) throws -> Outcome {
        guard !changes.isEmpty else { return Outcome(deleted: 0, failures: []) }
        let families = Set(changes.servingSources.keys.map(\.address.family))
        var stale: [ConntrackEntry] = []
        for family in families.sorted(by: { $0.rawValue < $1.rawValue }) {
            stale += try connection.entries(family: family, protocols: Self.protocols).filter(changes.isStale)
        }
        let failures = try connection.delete(stale)
        return Outcome(deleted: stale.count - failures.count, failures: failures.map(\.1))
    }

    package func follow(
        _ changes: Changes, outcome: Outcome, state: inout State, owned: inout OwnershipRecord, report: inout Report
    ) -> Bool {
        report.deleted += outcome.deleted
        report.failures = outcome.failures
        return true
    }
}

extension SyncReport {
    /// The stale UDP and SCTP flows deleted.
    package var flows: ConntrackPart.Report { self[ConntrackPart.self] }
}
