import IPVSModel
import InternetAddress
import Synchronization

/// A Service's name in its namespace. The engine's own, so that it needs no Kubernetes model to say which Service a
/// virtual server serves.
package struct ServiceName: Sendable, Hashable, Comparable, CustomStringConvertible {
    package var namespace: String
    package var name: String

    package init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    /// `namespace/name`.
    package var description: String { "\(namespace)/\(name)" }

    package static func < (lhs: ServiceName, rhs: ServiceName) -> Bool {
        (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
    }
}

/// A Service port, as kube-proxy names it: `namespace/name:port`, where the port is its name, or its number
/// when unnamed.
package struct ServicePortName: Sendable, Hashable, Comparable, CustomStringConvertible {
    package var service: ServiceName
    package var port: String

    package init(service: ServiceName, port: String) {
        self.service = service
        self.port = port
    }

    /// Parses `namespace/name:port`.
    package init?(_ text: String) {
        guard let slash = text.firstIndex(of: "/"), let colon = text.lastIndex(of: ":"), slash < colon else {
            return nil
        }
        service = ServiceName(
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
    /// The node's pod networks, its Node's `spec.podCIDRs` (for `--detect-local-mode NodeCIDR`).
    package var nodePodNetworks: [IPNetwork] = []
    /// The health-check node ports load balancers probe (LoadBalancer Services with externalTrafficPolicy Local).
    package var healthChecks: [ServiceName: HealthCheck] = [:]
    /// Services with a traffic policy `Local` and endpoints in the cluster but none on this node, by the policy
    /// that found none (kube-proxy's `kubeproxy_sync_proxy_rules_no_local_endpoints_total`).
    package var servicesWithoutLocalEndpoints: [TrafficPolicyKind: Set<ServiceName>] = [:]

    /// Tells this state apart from every other one this process made (``LiveTranslation`` numbers each it hands
    /// out; a state built otherwise has none).
    package var revision: Revision?
    /// How this state was made from an earlier one, when it was: a sync that remembers bringing the kernel to
    /// that one plans only what the change touched.
    package var derivation: Derivation?

    package init() {}

    /// A number for a desired state, unique in the process.
    package struct Revision: Sendable, Hashable {
        let number: UInt64

        private static let counter = Atomic<UInt64>(0)

        package static func next() -> Revision {
            Revision(number: counter.add(1, ordering: .relaxed).newValue)
        }
    }

    /// The state a desired state was made from, and what may differ between the two.
    package struct Derivation: Sendable {
        package var base: Revision
        /// `nil`: anything may differ (the node's facts changed, and every Service was translated again).
        package var touched: DesiredChanges?

        package init(base: Revision, touched: DesiredChanges?) {
            self.base = base
            self.touched = touched
        }
    }

    /// The number of real servers over all virtual servers.
    package var realServerCount: Int {
        countedRealServers ?? virtualServers.values.reduce(0) { $0 + $1.realServers.count }
    }
    /// The count ``LiveTranslation`` keeps as it changes the virtual servers (counting them again is a walk over
    /// every one).
    package var countedRealServers: Int?
}

/// What may differ between an earlier desired state and a later one, with what the earlier one had there: every
/// virtual server and service address not named here is the same in both. Health checks and the node's pod networks
/// are few, and kept whole.
package struct DesiredChanges: Sendable, Hashable {
    /// Each virtual server that may differ, with the earlier state's (`nil`: it had none).
    package private(set) var virtualServers: [VirtualServerKey: DesiredVirtualServer?] = [:]
    /// Each service address that may differ, with whether the earlier state had it.
    package private(set) var serviceAddresses: [IPAddress: Bool] = [:]
    package var healthChecks: [ServiceName: HealthCheck] = [:]
    package var nodePodNetworks: [IPNetwork] = []

    package init(healthChecks: [ServiceName: HealthCheck] = [:], nodePodNetworks: [IPNetwork] = []) {
        self.healthChecks = healthChecks
        self.nodePodNetworks = nodePodNetworks
    }

    /// Notes that a virtual server may change, with what the earlier state had (the first note of a key counts).
    package mutating func note(_ key: VirtualServerKey, had server: DesiredVirtualServer?) {
        if virtualServers.index(forKey: key) == nil { virtualServers[key] = .some(server) }
    }

    /// Notes that a service address may change, with whether the earlier state had it.
    package mutating func note(_ address: IPAddress, had: Bool) {
        if serviceAddresses[address] == nil { serviceAddresses[address] = had }
    }

    /// The earlier state's virtual server at a key that may differ (`nil` also when the key is not named here).
    package func previous(_ key: VirtualServerKey) -> DesiredVirtualServer? {
        virtualServers[key] ?? nil
    }
}

/// Which of a Service's traffic policies.
package enum TrafficPolicyKind: String, Sendable, Hashable, CaseIterable {
    case `internal`
    case external
}

/// A health-check node port and what it answers.
package struct HealthCheck: Sendable, Hashable {
    package var port: UInt16
    /// The distinct ready endpoint addresses on this node, per address family of the Service: the count its
    /// listener of that family reports.
    package var localEndpoints: [AddressFamily: Int]

    package init(port: UInt16, localEndpoints: [AddressFamily: Int]) {
        self.port = port
        self.localEndpoints = localEndpoints
    }
}
