import IPVSModel
import KubernetesModel
import ProxyRules

/// Which of the node's addresses take node ports (and health-check node ports): kube-proxy's
/// `--nodeport-addresses` (networks, or `primary`), and ipvs-proxy's exact `--node-ip` addresses. With none of
/// them, every address of the node's interfaces does.
package struct NodePortAddressSelection: Sendable, Hashable {
    /// Exact addresses (`--node-ip`), used whether or not the node has them yet.
    package var addresses: [IPAddress] = []
    /// The node's addresses in these networks.
    package var networks: [IPNetwork] = []
    /// The node's primary address of each family, from its Node.
    package var primary = false

    package init(addresses: [IPAddress] = [], networks: [IPNetwork] = [], primary: Bool = false) {
        self.addresses = addresses
        self.networks = networks
        self.primary = primary
    }

    /// Whether every address of the node is selected (listeners then bind each family's wildcard address).
    package var selectsAll: Bool { addresses.isEmpty && networks.isEmpty && !primary }

    /// The selected addresses, given the node's own (loopback, link-local and the dummy link's left out) and
    /// its Node.
    package func select(from own: [IPAddress], node: Node?) -> [IPAddress] {
        guard !selectsAll else { return own }
        var selected = Set(addresses)
        selected.formUnion(own.filter { address in networks.contains { $0.contains(address) } })
        if primary { selected.formUnion(Self.primaryAddresses(of: node)) }
        return selected.sorted()
    }

    /// kube-proxy's primary node IPs: the first InternalIP of each family, else its first ExternalIP
    /// (`GetNodeHostIPs`, pkg/util/node, Kubernetes 1.34).
    static func primaryAddresses(of node: Node?) -> [IPAddress] {
        let listed = node?.status?.addresses ?? []
        let ordered = (listed.filter { $0.type == "InternalIP" } + listed.filter { $0.type == "ExternalIP" })
            .compactMap { IPAddress($0.address) }
        return AddressFamily.allCases.compactMap { family in ordered.first { $0.family == family } }
    }
}
