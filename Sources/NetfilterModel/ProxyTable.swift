import InternetAddress

/// How ipvs-proxy tells traffic from inside the cluster from traffic from outside (kube-proxy's
/// `--detect-local-mode`), for masquerading ClusterIP traffic that comes from outside.
public enum LocalTrafficDetection: Sendable, Hashable, CustomStringConvertible {
    /// Sources in these networks are inside the cluster (`ClusterCIDR`, and `NodeCIDR` with the Node's pod
    /// networks). A family without a network has no detection.
    case networks([IPNetwork])
    /// Sources in the node's own pod networks, its Node's `spec.podCIDRs` (`NodeCIDR`). Until they are known,
    /// a family's set is empty and all its ClusterIP traffic is masqueraded: replies always find their way back.
    case nodePodNetworks
    /// Traffic that enters through this bridge comes from a pod (`BridgeInterface`).
    case bridgeInterface(String)
    /// Traffic that enters through an interface whose name starts so comes from a pod (`InterfaceNamePrefix`).
    case interfaceNamePrefix(String)

    public var description: String {
        switch self {
        case .networks(let networks):
            networks.isEmpty ? "no cluster CIDR" : "sources in \(networks.map(\.description).joined(separator: ", "))"
        case .nodePodNetworks: "sources in the Node's pod CIDRs"
        case .bridgeInterface(let name): "traffic entering through \(name)"
        case .interfaceNamePrefix(let prefix): "traffic entering through \(prefix)*"
        }
    }
}

/// The settings that shape the rules of ipvs-proxy's table.
public struct MasqueradeRules: Sendable, Hashable {
    /// The bit of the packet mark that asks for masquerade (kube-proxy's `--iptables-masquerade-bit`).
    public var markBit: Int
    /// Masquerade all traffic to ClusterIPs, from inside the cluster too (`--masquerade-all`).
    public var masqueradeAll: Bool
    public var localTraffic: LocalTrafficDetection

    public init(markBit: Int = 14, masqueradeAll: Bool = false, localTraffic: LocalTrafficDetection = .networks([])) {
        self.markBit = markBit
        self.masqueradeAll = masqueradeAll
        self.localTraffic = localTraffic
    }

    /// The mark as nft writes it: `0x00004000` for bit 14.
    var mark: String {
        let hex = String(UInt32(1) << UInt32(markBit), radix: 16)
        return "0x" + String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// The networks of a family whose sources are inside the cluster, when detection is by network: the cluster
    /// CIDRs, or the node's pod networks.
    public func localNetworks(_ family: NFTFamily, nodePodNetworks: [IPNetwork]) -> [IPNetwork] {
        switch localTraffic {
        case .networks(let networks): networks.filter { $0.family == family.addressFamily }
        case .nodePodNetworks: nodePodNetworks.filter { $0.family == family.addressFamily }
        case .bridgeInterface, .interfaceNamePrefix: []
        }
    }
}

extension NFTFamily {
    public var addressFamily: AddressFamily { self == .ip ? .ipv4 : .ipv6 }

    /// The family's address type in sets.
    var addressType: NFTDataType { self == .ip ? .ipv4Address : .ipv6Address }

    /// The family's loopback network as nft writes it.
    var loopback: String { self == .ip ? "127.0.0.0/8" : "::1" }
}

/// The table `ipvs-proxy` of one family: the netfilter half of kube-proxy's IPVS mode, with the same semantics,
/// as a fixed set of chains and rules whose size does not grow with the number of Services. Services, ports,
/// endpoints and source ranges are elements of its sets.
public enum ProxyTable {
    /// The table's name in both families. Not `kube-proxy`: kube-proxy in its other modes deletes tables of that
    /// name, so a rollback would delete ipvs-proxy's.
    public static let name = "ipvs-proxy"

    /// The names of the table's sets.
    public enum SetName {
        /// Every ClusterIP port (`address . protocol . port`).
        public static let clusterIPs = "cluster-ips"
        /// External and load-balancer IP ports whose traffic is masqueraded (externalTrafficPolicy Cluster).
        public static let externalIPs = "external-ips"
        /// External and load-balancer IP ports whose clients keep their address (externalTrafficPolicy Local).
        public static let externalIPsLocal = "external-ips-local"
        /// Node ports whose traffic is masqueraded (`protocol . port`; externalTrafficPolicy Cluster).
        public static let nodePorts = "node-ports"
        /// Every address bound on the dummy link: new connections to them on other ports are refused.
        public static let serviceAddresses = "service-addresses"
        /// Load-balancer IP ports with `loadBalancerSourceRanges`.
        public static let firewallPorts = "firewall-ports"
        /// The sources each of those allows (`address . protocol . port . network`).
        public static let firewallAllowed = "firewall-allowed"
        /// Endpoints on this node, for a pod that reaches itself through its Service
        /// (`endpoint . protocol . port . endpoint`).
        public static let hairpin = "hairpin"
        /// The networks whose sources are inside the cluster (local traffic detection by network).
        public static let localNetworks = "local-networks"
        /// Health-check node ports (`protocol . port`): let in on service addresses too, as kube-proxy does.
        public static let healthCheckNodePorts = "health-check-node-ports"
    }

    /// The table for `family` with `rules`.
    public static func make(_ family: NFTFamily, rules: MasqueradeRules) -> NFTable {
        let address = family.addressType
        let ip = family == .ip ? "ip" : "ip6"
        let servicePort = "\(ip) daddr . meta l4proto . th dport"
        let mark = rules.mark
        var sets = [
            NFTSet(
                name: SetName.clusterIPs, fields: [address, .transportProtocol, .port],
                comment: "ClusterIP ports of every Service"),
            NFTSet(
                name: SetName.externalIPs, fields: [address, .transportProtocol, .port],
                comment: "external and load-balancer IP ports, masqueraded (externalTrafficPolicy Cluster)"),
            NFTSet(
                name: SetName.externalIPsLocal, fields: [address, .transportProtocol, .port],
                comment: "external and load-balancer IP ports, client address kept (externalTrafficPolicy Local)"),
            NFTSet(
                name: SetName.nodePorts, fields: [.transportProtocol, .port],
                comment: "node ports, masqueraded (externalTrafficPolicy Cluster)"),
            NFTSet(
                name: SetName.serviceAddresses, fields: [address],
                comment: "addresses bound on the dummy link"),
            NFTSet(
                name: SetName.healthCheckNodePorts, fields: [.transportProtocol, .port],
                comment: "health-check node ports load balancers probe"),
            NFTSet(
                name: SetName.firewallPorts, fields: [address, .transportProtocol, .port],
                comment: "load-balancer IP ports with loadBalancerSourceRanges"),
            NFTSet(
                name: SetName.firewallAllowed, fields: [address, .transportProtocol, .port, address], isInterval: true,
                comment: "the sources each load-balancer IP port allows"),
            NFTSet(
                name: SetName.hairpin, fields: [address, .transportProtocol, .port, address],
                comment: "endpoints on this node, to masquerade a pod that reaches itself"),
        ]

        var clusterRules: [NFTRule] = []
        let markForMasquerade = "jump mark-for-masquerade"
        if rules.masqueradeAll {
            clusterRules.append(
                NFTRule("\(servicePort) @\(SetName.clusterIPs) \(markForMasquerade)", purpose: "ClusterIP traffic"))
        } else {
            let byNetwork = {
                sets.append(
                    NFTSet(
                        name: SetName.localNetworks, fields: [address], isInterval: true,
                        comment: "networks of sources inside the cluster"))
                clusterRules.append(
                    NFTRule(
                        "\(servicePort) @\(SetName.clusterIPs) \(ip) saddr != @\(SetName.localNetworks) "
                            + markForMasquerade,
                        purpose: "ClusterIP traffic from outside the cluster"))
            }
            switch rules.localTraffic {
            case .networks(let networks):
                // A family without a cluster CIDR has no detection, so no masquerade (kube-proxy's rule).
                if networks.contains(where: { $0.family == family.addressFamily }) { byNetwork() }
            case .nodePodNetworks:
                // The rule stays whatever the Node says, so a change of its pod CIDRs changes elements only.
                byNetwork()
            case .bridgeInterface(let name):
                clusterRules.append(
                    NFTRule(
                        "\(servicePort) @\(SetName.clusterIPs) iifname != \(quoted(name)) \(markForMasquerade)",
                        purpose: "ClusterIP traffic from outside the cluster"))
            case .interfaceNamePrefix(let prefix):
                clusterRules.append(
                    NFTRule(
                        "\(servicePort) @\(SetName.clusterIPs) iifname != \(quoted(prefix + "*")) \(markForMasquerade)",
                        purpose: "ClusterIP traffic from outside the cluster"))
            }
        }

        let chains = [
            NFTChain(
                name: "prerouting", hook: NFTHook(type: "nat", hook: "prerouting", priority: -100),
                rules: [NFTRule("jump services", purpose: "Service traffic")]),
            NFTChain(
                name: "output", hook: NFTHook(type: "nat", hook: "output", priority: -100),
                rules: [
                    NFTRule(
                        "\(ip) daddr @\(SetName.serviceAddresses) \(markForMasquerade)",
                        purpose: "traffic from this node to service addresses"),
                    // kube-proxy's nat OUTPUT jumps to KUBE-SERVICES, whose `addrtype --dst-type LOCAL` rule leads
                    // to KUBE-NODE-PORT: the node's own connections to its node ports are masqueraded, policy
                    // Cluster (policy Local ones RETURN there first, and are not in `node-ports`). Like
                    // KUBE-SERVICES it leaves loopback sources alone; unlike it, it leaves service addresses to
                    // the rule above, so node ports never match them.
                    NFTRule(
                        "meta l4proto . th dport @\(SetName.nodePorts) fib daddr type local "
                            + "\(ip) daddr != @\(SetName.serviceAddresses) \(ip) saddr != \(family.loopback) "
                            + markForMasquerade,
                        purpose: "traffic from this node to its node ports, policy Cluster"),
                ]),
            NFTChain(
                name: "services",
                rules: clusterRules + [
                    NFTRule(
                        "\(servicePort) @\(SetName.externalIPs) \(markForMasquerade)",
                        purpose: "external and load-balancer IP traffic, policy Cluster"),
                    NFTRule(
                        "fib daddr type local meta l4proto . th dport @\(SetName.nodePorts) \(markForMasquerade)",
                        purpose: "node port traffic, policy Cluster"),
                ]),
            NFTChain(
                name: "mark-for-masquerade",
                rules: [NFTRule("meta mark set meta mark | \(mark)", purpose: "ask for masquerade")]),
            NFTChain(
                name: "postrouting", hook: NFTHook(type: "nat", hook: "postrouting", priority: 100),
                rules: [
                    NFTRule(
                        "meta mark & \(mark) == \(mark) meta mark set meta mark ^ \(mark) masquerade fully-random",
                        purpose: "masquerade what was marked"),
                    NFTRule(
                        "\(servicePort) . \(ip) saddr @\(SetName.hairpin) masquerade fully-random",
                        purpose: "a pod that reaches itself through its Service"),
                ]),
            NFTChain(
                name: "input", hook: NFTHook(type: "filter", hook: "input", priority: 0),
                rules: [
                    NFTRule(
                        "ct state new \(ip) daddr @\(SetName.serviceAddresses) "
                            + "\(servicePort) != @\(SetName.clusterIPs) \(servicePort) != @\(SetName.externalIPs) "
                            + "\(servicePort) != @\(SetName.externalIPsLocal) "
                            + "meta l4proto . th dport != @\(SetName.healthCheckNodePorts) reject",
                        purpose: "service addresses take only their Services' ports"),
                    NFTRule(
                        "\(servicePort) @\(SetName.firewallPorts) "
                            + "\(servicePort) . \(ip) saddr != @\(SetName.firewallAllowed) drop",
                        purpose: "loadBalancerSourceRanges"),
                ]),
            NFTChain(
                name: "forward", hook: NFTHook(type: "filter", hook: "forward", priority: 0),
                rules: [
                    NFTRule("ct state established,related accept", purpose: "flows already accepted"),
                    NFTRule("meta mark & \(mark) == \(mark) accept", purpose: "traffic marked for masquerade"),
                ]),
        ]
        return NFTable(
            family: family, name: name,
            comment: "ipvs-proxy: masquerade, filtering and source ranges around IPVS; managed, do not edit",
            sets: sets, chains: chains)
    }
}
