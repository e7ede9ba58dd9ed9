import IPVSModel
import InternetAddress
import KubernetesModel
import ProxyRules

/// The facts about this node that translation needs.
package struct NodeContext: Sendable, Hashable {
    /// The node's name, matched against endpoints' `nodeName` for traffic policy `Local` and node hints.
    package var nodeName: String
    /// The node's zone (its Node's `topology.kubernetes.io/zone` label), matched against zone hints.
    package var zone: String?
    /// The node's pod networks (its Node's `spec.podCIDRs`, or `spec.podCIDR`).
    package var podNetworks: [IPNetwork] = []
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

extension NodeContext {
    /// Takes the node's zone and pod networks from its Node, when there is one.
    package mutating func follow(_ node: Node?) {
        zone = node?.zone
        let ranges = node?.spec?.podCIDRs ?? [node?.spec?.podCIDR].compactMap { $0 }
        podNetworks = ranges.compactMap(IPNetwork.init)
    }
}
