import IPVSModel
import Translation

/// What a sync will do to the IPVS table, worked out before anything is touched.
package struct Plan: Sendable {
    /// The operations, in order: per virtual server its add or edit, then its real servers; deletions of
    /// whole virtual servers last.
    package var operations: [TableOperation] = []
    /// Desired virtual servers whose key is held by a virtual server ipvs-proxy does not own: left alone.
    package var blocked: [VirtualServerKey: ServicePortName] = [:]
    /// Real servers no longer wanted that still have connections: set to weight 0 until they drain.
    package var draining: [(VirtualServerKey, RealServerKey)] = []
    /// What ipvs-proxy owns once every operation has succeeded.
    package var ownedAfter: [VirtualServerKey: ServicePortName] = [:]

    /// What ipvs-proxy owns while the operations are applied: everything it owned before and everything
    /// it is about to create, so that a crash half-way leaves nothing it made unaccounted for.
    package func ownedDuring(before: [VirtualServerKey: ServicePortName]) -> [VirtualServerKey: ServicePortName] {
        before.merging(ownedAfter) { _, new in new }
    }
}

/// Works out the fewest operations that turn the observed table into the desired one, touching only
/// virtual servers that ipvs-proxy owns.
package enum Planner {
    /// - Parameters:
    ///   - desired: The virtual servers the node should have.
    ///   - observed: The kernel's table.
    ///   - owned: The virtual servers ipvs-proxy created (from its ownership record).
    package static func plan(
        desired: DesiredState, observed: [VirtualServerKey: VirtualServerState],
        owned: [VirtualServerKey: ServicePortName]
    ) -> Plan {
        var plan = Plan()
        for key in desired.virtualServers.keys.sorted() {
            let wanted = desired.virtualServers[key]!
            guard let current = observed[key] else {
                plan.operations.append(.addVirtualServer(wanted.server))
                for real in wanted.realServers { plan.operations.append(.addRealServer(real, to: key)) }
                plan.ownedAfter[key] = wanted.servicePort
                continue
            }
            guard owned[key] != nil else {
                plan.blocked[key] = wanted.servicePort
                continue
            }
            plan.ownedAfter[key] = wanted.servicePort
            if !current.server.hasSameSettings(as: wanted.server) {
                plan.operations.append(.editVirtualServer(wanted.server))
            }
            planRealServers(of: key, wanted: wanted.realServers, current: current, into: &plan)
        }
        for key in owned.keys.sorted() where desired.virtualServers[key] == nil && observed[key] != nil {
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
