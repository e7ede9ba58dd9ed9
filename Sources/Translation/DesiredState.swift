import IPVSModel
import KubernetesModel

/// A Service port, as kube-proxy names it: `namespace/name:port`, where the port is its name, or its number
/// when unnamed.
package struct ServicePortName: Sendable, Hashable, Comparable, CustomStringConvertible {
    package var service: ObjectName
    package var port: String

    package init(service: ObjectName, port: String) {
        self.service = service
        self.port = port
    }

    /// Parses `namespace/name:port`.
    package init?(_ text: String) {
        guard let slash = text.firstIndex(of: "/"), let colon = text.lastIndex(of: ":"), slash < colon else {
            return nil
        }
        service = ObjectName(
            namespace: String(text[..<slash]), name: String(text[text.index(after: slash)..<colon]))
        port = String(text[text.index(after: colon)...])
    }

    package var description: String { "\(service):\(port)" }

    package static func < (lhs: ServicePortName, rhs: ServicePortName) -> Bool {
        (lhs.service, lhs.port) < (rhs.service, rhs.port)
    }
}

/// Which address of a Service a virtual server listens on.
package enum ServiceAddressKind: Sendable, Hashable {
    case clusterIP
    case externalIP
    case loadBalancerIP
    case nodePort
}

/// A virtual server the node should have, with its real servers and the Service port it serves.
package struct DesiredVirtualServer: Sendable, Hashable {
    package var server: VirtualServer
    package var realServers: [RealServer]
    package var servicePort: ServicePortName
    package var kind: ServiceAddressKind
    /// Whether its clients keep their address (externalTrafficPolicy Local, for external, load-balancer and node
    /// port traffic): its traffic is not masqueraded.
    package var keepsClientAddress: Bool
    /// For a load-balancer IP with `loadBalancerSourceRanges`: the only sources let in.
    package var sourceRanges: [IPNetwork]
    /// The real servers that run on this node (a pod that reaches itself through its Service must be
    /// masqueraded).
    package var localRealServers: [RealServerKey]

    package init(
        server: VirtualServer, realServers: [RealServer], servicePort: ServicePortName,
        kind: ServiceAddressKind = .clusterIP, keepsClientAddress: Bool = false, sourceRanges: [IPNetwork] = [],
        localRealServers: [RealServerKey] = []
    ) {
        self.server = server
        self.realServers = realServers
        self.servicePort = servicePort
        self.kind = kind
        self.keepsClientAddress = keepsClientAddress
        self.sourceRanges = sourceRanges
        self.localRealServers = localRealServers
    }
}

/// Everything the kernel should hold for a set of Services: virtual servers and the service addresses to
/// bind to the dummy link.
package struct DesiredState: Sendable {
    package var virtualServers: [VirtualServerKey: DesiredVirtualServer] = [:]
    /// Cluster, external and load-balancer IPs that the node must accept traffic for.
    package var serviceAddresses: Set<IPAddress> = []
    /// Things that were skipped, each said once (two Services wanting one key, ...).
    package var warnings: [String] = []
    /// How many Services the state was translated from, those that need no virtual server included.
    package var serviceCount = 0

    package init() {}

    /// The number of real servers over all virtual servers.
    package var realServerCount: Int { virtualServers.values.reduce(0) { $0 + $1.realServers.count } }
}

/// The facts about this node that translation needs.
package struct NodeContext: Sendable {
    /// The node's name, matched against endpoints' `nodeName` for traffic policy `Local`.
    package var nodeName: String
    /// The addresses NodePort services listen on.
    package var nodeAddresses: [IPAddress]
    /// Every address on the node's own interfaces: an external or load-balancer IP among them needs no binding.
    package var localAddresses: Set<IPAddress>
    /// The scheduler of every virtual server, unless a Service's annotation says otherwise.
    package var scheduler: Scheduler

    package init(
        nodeName: String, nodeAddresses: [IPAddress], localAddresses: Set<IPAddress>? = nil,
        scheduler: Scheduler = .roundRobin
    ) {
        self.nodeName = nodeName
        self.nodeAddresses = nodeAddresses
        self.localAddresses = localAddresses ?? Set(nodeAddresses)
        self.scheduler = scheduler
    }
}
