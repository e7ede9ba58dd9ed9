/// How a Service port's traffic is routed, as kube-proxy reads it from the Service for one address family.
struct TrafficPolicy {
    /// internalTrafficPolicy Local.
    var internalLocal: Bool
    /// externalTrafficPolicy Local, on a NodePort or LoadBalancer Service (the only types it applies to).
    var externalLocal: Bool
    /// Whether the port has a node port, an external IP or a load-balancer IP of the family.
    var externallyAccessible: Bool

    /// Whether some virtual server of the port uses endpoints on any node: every Service does but an
    /// internalTrafficPolicy Local one that cannot be reached from outside.
    var usesClusterEndpoints: Bool { !internalLocal || externallyAccessible }
    /// Whether some virtual server of the port prefers the endpoints on this node.
    var usesLocalEndpoints: Bool { internalLocal || (externalLocal && externallyAccessible) }
}

/// The node an endpoint selection is made for.
struct SelectingNode {
    var name: String
    /// The node's zone (its `topology.kubernetes.io/zone` label), when known.
    var zone: String?
}

/// The endpoints of a Service port sorted out as kube-proxy's `CategorizeEndpoints` does
/// (pkg/proxy/topology.go, Kubernetes 1.34, where hints for nodes are on by default).
struct EndpointCategories: Equatable {
    /// The endpoints for traffic routed to the whole cluster (topology applied); empty when the port uses none.
    var cluster: [BackendEndpoint] = []
    /// The endpoints on this node; empty when the port does not use them or the node has none.
    var local: [BackendEndpoint] = []
    /// Whether the port has a usable endpoint anywhere in the cluster.
    var hasAnyEndpoints = false

    /// Which hints narrow the cluster endpoints.
    enum TopologyMode: Equatable {
        case none
        case sameZone
        case sameNode
    }

    /// Usable means ready; when no endpoint is ready, serving while terminating (separately for cluster and
    /// local endpoints).
    init(_ endpoints: [BackendEndpoint], policy: TrafficPolicy, node: SelectingNode) {
        guard !endpoints.isEmpty else { return }
        if policy.usesClusterEndpoints {
            let mode = Self.topologyMode(endpoints, node: node)
            cluster = endpoints.filter { $0.isReady && Self.isAvailable($0, for: mode, node: node) }
            // Topology never empties a list that has ready endpoints (the mode falls back first), so an empty one
            // means that none is ready anywhere.
            if cluster.isEmpty { cluster = endpoints.filter { $0.isServing && $0.isTerminating } }
            hasAnyEndpoints = !cluster.isEmpty
        }
        guard policy.usesLocalEndpoints else { return }
        let onNode = endpoints.filter { $0.nodeName == node.name }
        local = onNode.filter(\.isReady)
        if local.isEmpty { local = onNode.filter { $0.isServing && $0.isTerminating } }
        hasAnyEndpoints = hasAnyEndpoints || endpoints.contains { $0.isReady || ($0.isServing && $0.isTerminating) }
    }

    /// Node hints when every ready endpoint has some and one names this node; else zone hints when every ready
    /// endpoint has some and one names this node's zone; else none.
    static func topologyMode(_ endpoints: [BackendEndpoint], node: SelectingNode) -> TopologyMode {
        let ready = endpoints.filter(\.isReady)
        guard !ready.isEmpty else { return .none }
        if ready.allSatisfy({ !$0.nodeHints.isEmpty }) && ready.contains(where: { $0.nodeHints.contains(node.name) }) {
            return .sameNode
        }
        if let zone = node.zone, ready.allSatisfy({ !$0.zoneHints.isEmpty }),
            ready.contains(where: { $0.zoneHints.contains(zone) })
        {
            return .sameZone
        }
        return .none
    }

    private static func isAvailable(_ endpoint: BackendEndpoint, for mode: TopologyMode, node: SelectingNode) -> Bool {
        switch mode {
        case .none: true
        case .sameNode: endpoint.nodeHints.contains(node.name)
        case .sameZone: node.zone.map { endpoint.zoneHints.contains($0) } ?? false
        }
    }

    /// The real servers of a virtual server: with its traffic policy `Local`, the endpoints on this node, or the
    /// cluster's when the node has none (kube-proxy's IPVS mode keeps local clients working that way; an
    /// internal-only Service gets none then, so its traffic is dropped).
    func realServers(local preferLocal: Bool) -> [BackendEndpoint] {
        preferLocal && !local.isEmpty ? local : cluster
    }
}
