import IPVSModel
import KubernetesModel

/// A Service port, as kube-proxy names it: `namespace/name:port`, where the port is its name, or its number
/// when unnamed.
public struct ServicePortName: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var service: ObjectName
    public var port: String

    public init(service: ObjectName, port: String) {
        self.service = service
        self.port = port
    }

    /// Parses `namespace/name:port`.
    public init?(_ text: String) {
        guard let slash = text.firstIndex(of: "/"), let colon = text.lastIndex(of: ":"), slash < colon else {
            return nil
        }
        service = ObjectName(
            namespace: String(text[..<slash]), name: String(text[text.index(after: slash)..<colon]))
        port = String(text[text.index(after: colon)...])
    }

    public var description: String { "\(service):\(port)" }

    public static func < (lhs: ServicePortName, rhs: ServicePortName) -> Bool {
        (lhs.service, lhs.port) < (rhs.service, rhs.port)
    }
}

/// A virtual server the node should have, with its real servers and the Service port it serves.
public struct DesiredVirtualServer: Sendable, Hashable {
    public var server: VirtualServer
    public var realServers: [RealServer]
    public var servicePort: ServicePortName

    public init(server: VirtualServer, realServers: [RealServer], servicePort: ServicePortName) {
        self.server = server
        self.realServers = realServers
        self.servicePort = servicePort
    }
}

/// Everything the kernel should hold for a set of Services: virtual servers and the service addresses to
/// bind to the dummy link.
public struct DesiredState: Sendable {
    public var virtualServers: [VirtualServerKey: DesiredVirtualServer] = [:]
    /// Cluster, external and load-balancer IPs that the node must accept traffic for.
    public var serviceAddresses: Set<IPAddress> = []
    /// Things that were skipped, each said once (two Services wanting one key, ...).
    public var warnings: [String] = []
    /// How many Services the state was translated from, those that need no virtual server included.
    public var serviceCount = 0

    public init() {}

    /// The number of real servers over all virtual servers.
    public var realServerCount: Int { virtualServers.values.reduce(0) { $0 + $1.realServers.count } }
}

/// The facts about this node that translation needs.
public struct NodeContext: Sendable {
    /// The node's name, matched against endpoints' `nodeName` for traffic policy `Local`.
    public var nodeName: String
    /// The addresses NodePort services listen on.
    public var nodeAddresses: [IPAddress]
    /// Every address on the node's own interfaces: an external or load-balancer IP among them needs no binding.
    public var localAddresses: Set<IPAddress>
    /// The scheduler of every virtual server, unless a Service's annotation says otherwise.
    public var scheduler: Scheduler

    public init(
        nodeName: String, nodeAddresses: [IPAddress], localAddresses: Set<IPAddress>? = nil,
        scheduler: Scheduler = .roundRobin
    ) {
        self.nodeName = nodeName
        self.nodeAddresses = nodeAddresses
        self.localAddresses = localAddresses ?? Set(nodeAddresses)
        self.scheduler = scheduler
    }
}
