import IPVSModel
import ProxyRules

/// What a sync will do to the IPVS table, worked out before anything is touched.
package struct Plan: Sendable {
    /// The operations, in order: per virtual server its add or edit, then its real servers; deletions of
    /// whole virtual servers last.
    package var operations: [TableOperation] = []
    /// Desired virtual servers whose key is held by a virtual server ipvs-proxy does not own: left alone.
    package var blocked: [VirtualServerKey: ServicePortName] = [:]
    /// Real servers no longer wanted that still have connections: set to weight 0 until they drain.
    package var draining: [(VirtualServerKey, RealServerKey)] = []
    /// The virtual servers the plan looked at (`nil`: all), and of those, what ipvs-proxy owns once every
    /// operation has succeeded.
    package var looked: Set<VirtualServerKey>?
    package var owning: [VirtualServerKey: ServicePortName] = [:]

    /// What ipvs-proxy owns once every operation has succeeded, from what it owned before.
    package func own(after owned: inout [VirtualServerKey: ServicePortName]) {
        guard let looked else {
            owned = owning
            return
        }
        // Changed only where it differs, so that an unchanged record stays the same storage (and compares at once).
        for key in looked where owning[key] == nil && owned[key] != nil { owned[key] = nil }
        own(during: &owned)
    }

    /// What ipvs-proxy owns while the operations are applied: everything it owned before and everything
    /// it is about to create, so that a crash half-way leaves nothing it made unaccounted for.
    package func own(during owned: inout [VirtualServerKey: ServicePortName]) {
        for (key, port) in owning where owned[key] != port { owned[key] = port }
    }
}

/// Works out the fewest operations that turn the observed table into the desired one, touching only
/// virtual servers that ipvs-proxy owns.
package enum Planner {
    /// - Parameters:
    ///   - desired: The virtual servers the node should have.
    ///   - observed: The kernel's table.
    ///   - owned: The virtual servers ipvs-proxy created (from its ownership record).
    ///   - only: The virtual servers to look at, when only they may differ from the desired state; `nil`: all.
    package static func plan(
        desired: DesiredState, observed: [VirtualServerKey: VirtualServerState],
        owned: [VirtualServerKey: ServicePortName], only: Set<VirtualServerKey>? = nil
    ) -> Plan {
        var plan = Plan()
        plan.looked = only
        let wantedKeys =
            only.map { $0.filter { desired.virtualServers[$0] != nil } } ?? Array(desired.virtualServers.keys)
        for key in wantedKeys.sorted() {
            let wanted = desired.virtualServers[key]!
            guard let current = observed[key] else {
                plan.operations.append(.addVirtualServer(wanted.server))
                for real in wanted.realServers { plan.operations.append(.addRealServer(real, to: key)) }
                plan.owning[key] = wanted.servicePort
                continue
            }
            guard owned[key] != nil else {
                plan.blocked[key] = wanted.servicePort
                continue
            }
            plan.owning[key] = wanted.servicePort
            if !current.server.hasSameSettings(as: wanted.server) {
                plan.operations.append(.editVirtualServer(wanted.server))
            }
            planRealServers(of: key, wanted: wanted.realServers, current: current, into: &plan)
        }
        let ownedKeys = only.map { $0.filter { owned[$0] != nil } } ?? Array(owned.keys)
        for key in ownedKeys.sorted() where desired.virtualServers[key] == nil && observed[key] != nil {
            // Deleting the virtual server deletes its real servers with it.
            plan.operations.append(.deleteVirtualServer(key))
        }
        return plan
    }

    private static func planRealServers(
        of key: VirtualServerKey, wanted: [RealServer], current: VirtualServerState, into plan: inout Plan
    ) {
        // Most virtual servers are unchanged: tell that without building a dictionary per virtual server.
        if wanted.count == current.realServers.count, wanted.count <= 32,
            wanted.allSatisfy({ real in current.realServers.contains { $0.server == real } })
        {
            return
        }
        var existing: [RealServerKey: RealServerState] = [:]
        for state in current.realServers { existing[state.server.key] = state }
        var wantedKeys = Set<RealServerKey>()
        for real in wanted {
            wantedKeys.insert(real.key)
            if let state = existing[real.key] {
                // This also gives a draining (weight 0) server that came back its weight.
                if state.server != real { plan.operations.append(.editRealServer(real, in: key)) }
            } else {
                plan.operations.append(.addRealServer(real, to: key))
            }
        }
        let drains = key.transportProtocol == .tcp
        for state in current.realServers.sorted(by: { $0.server.key < $1.server.key })
        where !wantedKeys.contains(state.server.key) {
            // A TCP server with connections drains at weight 0 (a later sync deletes it once they end); UDP
            // and SCTP flows to a removed server are dropped by the kernel anyway, so those go at once.
            if drains && state.hasConnections {
                plan.draining.append((key, state.server.key))
                if state.server.weight != 0 {
                    var quiesced = state.server
                    quiesced.weight = 0
                    plan.operations.append(.editRealServer(quiesced, in: key))
                }
            } else {
                plan.operations.append(.deleteRealServer(state.server.key, from: key))
            }
        }
    }
}
