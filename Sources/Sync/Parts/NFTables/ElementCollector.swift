import IPVSModel
import NetfilterModel
import ProxyRules

extension NFTablesPart {
    static func elements(of desired: DesiredState, rules: MasqueradeRules) -> [NFTFamily: [String: Set<SetElement>]] {
        var collector = ElementCollector(rules: rules)
        for address in desired.serviceAddresses { collector.add(address) }
        collector.addLocalNetworks(desired.nodePodNetworks)
        collector.add(desired.healthChecks.values)
        for virtual in desired.virtualServers.values { collector.add(virtual) }
        return collector.elements
    }

    /// The networks not inside another one of the list: an interval set refuses overlapping elements.
    static func outermost(_ networks: [IPNetwork]) -> [IPNetwork] {
        let distinct = Set(networks)
        return distinct.filter { network in !distinct.contains { $0 != network && $0.contains(network) } }.sorted()
    }
}

/// Gathers the set elements that parts of a desired state want, by family and set.
struct ElementCollector {
    typealias Name = ProxyTable.SetName
    /// The sets whose elements more than one virtual server may want: a node port's (one virtual server per node
    /// address) and the hairpin set's (one per virtual server with that local endpoint).
    static let sharedSets: Set<String> = [Name.nodePorts, Name.hairpin]

    let rules: MasqueradeRules
    /// Whether to gather the shared sets' elements only.
    var onlyShared = false
    private(set) var elements: [NFTFamily: [String: Set<SetElement>]] = [:]

    init(rules: MasqueradeRules, onlyShared: Bool = false) {
        self.rules = rules
        self.onlyShared = onlyShared
    }

    /// Whether some shared set has an element here that `other` does not.
    func hasShared(notIn other: ElementCollector) -> Bool {
        elements.contains { family, sets in
            Self.sharedSets.contains { set in
                !(sets[set] ?? []).isSubset(of: other.elements[family]?[set] ?? [])
            }
        }
    }

    private mutating func insert(_ element: SetElement, into set: String, family: AddressFamily) {
        guard !onlyShared || Self.sharedSets.contains(set) else { return }
        elements[family == .ipv4 ? .ip : .ip6, default: [:]][set, default: []].insert(element)
    }

    mutating func add(_ address: IPAddress) {
        insert(SetElement(.address(address)), into: Name.serviceAddresses, family: address.family)
    }

    mutating func addLocalNetworks(_ nodePodNetworks: [IPNetwork]) {
        for family in NFTFamily.allCases {
            for network in rules.localNetworks(family, nodePodNetworks: nodePodNetworks) {
                insert(SetElement(.network(network)), into: Name.localNetworks, family: family.addressFamily)
            }
        }
    }

    mutating func add(_ checks: some Sequence<HealthCheck>) {
        let proto = UInt8(truncatingIfNeeded: TransportProtocol.tcp.rawValue)
        for check in checks {
            for family in check.localEndpoints.keys {
                insert(
                    SetElement(.transportProtocol(proto), .port(check.port)), into: Name.healthCheckNodePorts,
                    family: family)
            }
        }
    }

    mutating func add(_ virtual: DesiredVirtualServer) {
        guard case .address(let transport, let address, let port) = virtual.server.key else { return }
        let proto = UInt8(truncatingIfNeeded: transport.rawValue)
        let servicePort = [SetElement.Field.address(address), .transportProtocol(proto), .port(port)]
        switch virtual.kind {
        case .clusterIP:
            insert(SetElement(servicePort), into: Name.clusterIPs, family: address.family)
        case .externalIP, .loadBalancerIP:
            let set = virtual.keepsClientAddress ? Name.externalIPsLocal : Name.externalIPs
            insert(SetElement(servicePort), into: set, family: address.family)
            if !virtual.sourceRanges.isEmpty {
                insert(SetElement(servicePort), into: Name.firewallPorts, family: address.family)
                for range in NFTablesPart.outermost(virtual.sourceRanges) {
                    insert(
                        SetElement(servicePort + [.network(range)]), into: Name.firewallAllowed, family: address.family)
                }
            }
        case .nodePort:
            if !virtual.keepsClientAddress {
                insert(SetElement(.transportProtocol(proto), .port(port)), into: Name.nodePorts, family: address.family)
            }
        }
        for endpoint in virtual.localRealServers where endpoint.address.family == address.family {
            insert(
                SetElement(
                    .address(endpoint.address), .transportProtocol(proto), .port(endpoint.port),
                    .address(endpoint.address)),
                into: Name.hairpin, family: address.family)
        }
    }
}
