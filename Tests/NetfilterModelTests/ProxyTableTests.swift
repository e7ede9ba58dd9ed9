import Foundation
import InternetAddress
import Testing

@testable import NetfilterModel

@Suite("nftables elements", .timeLimit(.minutes(2)))
struct SetElementTests {
    @Test func elementsAreWrittenAsNftWritesThem() {
        #expect(
            SetElement(.address(IPAddress("10.96.0.1")!), .transportProtocol(6), .port(80)).text
                == "10.96.0.1 . tcp . 80")
        #expect(SetElement(.transportProtocol(132), .port(30000)).text == "sctp . 30000")
        #expect(SetElement(.address(IPAddress("FD00:0:0::0A")!)).text == "fd00::a")
        #expect(SetElement(.network(IPNetwork("203.0.113.7/24")!)).text == "203.0.113.0/24")
        // A single address in an interval set is listed without its prefix.
        #expect(SetElement(.network(IPNetwork("203.0.113.7/32")!)).text == "203.0.113.7")
        #expect(SetElement(.transportProtocol(99)).text == "99")
    }

    @Test func jsonElementsReadBackToTheSameText() throws {
        let fields: [NFTDataType] = [.ipv4Address, .transportProtocol, .port, .ipv4Address]
        let json: [String: Any] = [
            "concat": ["192.0.2.30", "tcp", 80, ["prefix": ["addr": "203.0.113.0", "len": 24]] as [String: Any]]
        ]
        let element = try #require(SetElement(json: json, fields: fields))
        #expect(
            element
                == SetElement(
                    .address(IPAddress("192.0.2.30")!), .transportProtocol(6), .port(80),
                    .network(IPNetwork("203.0.113.0/24")!)))
        #expect(SetElement(json: ["elem": ["val": "10.0.0.1", "comment": "x"]], fields: [.ipv4Address]) != nil)
        // A range is not something ipvs-proxy writes.
        #expect(SetElement(json: ["range": ["10.0.0.1", "10.0.0.9"]], fields: [.ipv4Address]) == nil)
        #expect(SetElement(json: ["concat": ["10.0.0.1", "tcp"]], fields: fields) == nil)
    }
}

/// Every setting that shapes the rules, for the tests that must hold in all of them.
private let everySetting: [MasqueradeRules] = [
    MasqueradeRules(),
    MasqueradeRules(markBit: 3),
    MasqueradeRules(masqueradeAll: true),
    MasqueradeRules(localTraffic: .networks(["10.244.0.0/16", "fd00:244::/32"].compactMap(IPNetwork.init))),
    MasqueradeRules(localTraffic: .nodePodNetworks),
    MasqueradeRules(localTraffic: .bridgeInterface("cbr0")),
    MasqueradeRules(localTraffic: .interfaceNamePrefix("veth")),
]

@Suite("ipvs-proxy's table", .timeLimit(.minutes(2)))
struct ProxyTableTests {
    private func rules(_ table: NFTable) -> [String] { table.chains.flatMap(\.rules).map(\.statements) }

    @Test func theMarkIsTheChosenBit() {
        let table = ProxyTable.make(.ip, rules: MasqueradeRules(markBit: 14))
        #expect(rules(table).contains("meta mark set meta mark | 0x00004000"))
        let other = ProxyTable.make(.ip, rules: MasqueradeRules(markBit: 0))
        #expect(rules(other).contains("meta mark set meta mark | 0x00000001"))
        #expect(rules(other).contains { $0.contains("meta mark & 0x00000001 == 0x00000001") })
    }

    @Test func clusterTrafficIsMasqueradedAsDetectionSays() {
        let networks = ProxyTable.make(
            .ip, rules: MasqueradeRules(localTraffic: .networks([IPNetwork("10.244.0.0/16")!])))
        #expect(networks.sets.contains { $0.name == ProxyTable.SetName.localNetworks && $0.isInterval })
        #expect(
            rules(networks).contains(
                "ip daddr . meta l4proto . th dport @cluster-ips ip saddr != @local-networks jump mark-for-masquerade"))
        // The IPv6 table has no IPv6 network to tell by: no ClusterIP masquerade there.
        let ipv6 = ProxyTable.make(
            .ip6, rules: MasqueradeRules(localTraffic: .networks([IPNetwork("10.244.0.0/16")!])))
        #expect(!rules(ipv6).contains { $0.contains("@cluster-ips") && $0.contains("mark-for-masquerade") })
        #expect(!ipv6.sets.contains { $0.name == ProxyTable.SetName.localNetworks })

        let bridge = ProxyTable.make(.ip, rules: MasqueradeRules(localTraffic: .bridgeInterface("cbr0")))
        #expect(rules(bridge).contains { $0.contains(#"iifname != "cbr0" jump mark-for-masquerade"#) })
        let prefix = ProxyTable.make(.ip6, rules: MasqueradeRules(localTraffic: .interfaceNamePrefix("veth")))
        #expect(rules(prefix).contains { $0.hasPrefix("ip6 daddr") && $0.contains(#"iifname != "veth*""#) })
        let all = ProxyTable.make(.ip, rules: MasqueradeRules(masqueradeAll: true))
        #expect(rules(all).contains("ip daddr . meta l4proto . th dport @cluster-ips jump mark-for-masquerade"))
    }

    private func chain(_ name: String, of table: NFTable) -> [String] {
        table.chains.first { $0.name == name }?.rules.map(\.statements) ?? []
    }

    /// kube-proxy's nat OUTPUT jumps to KUBE-SERVICES, whose `addrtype --dst-type LOCAL` rule leads to
    /// KUBE-NODE-PORT and KUBE-MARK-MASQ: the node's own connections to its node ports are masqueraded, whatever
    /// the masquerade settings (they shape ClusterIP traffic only), with the chosen mark bit.
    @Test(arguments: [NFTFamily.ip, .ip6], everySetting)
    func theNodesOwnConnectionsToItsNodePortsAreMarked(family: NFTFamily, rules: MasqueradeRules) {
        let table = ProxyTable.make(family, rules: rules)
        let ip = family == .ip ? "ip" : "ip6"
        let loopback = family == .ip ? "127.0.0.0/8" : "::1"
        #expect(
            chain("output", of: table) == [
                "\(ip) daddr @service-addresses jump mark-for-masquerade",
                "meta l4proto . th dport @node-ports fib daddr type local \(ip) daddr != @service-addresses "
                    + "\(ip) saddr != \(loopback) jump mark-for-masquerade",
            ])
        #expect(chain("mark-for-masquerade", of: table) == ["meta mark set meta mark | \(rules.mark)"])
        // Traffic from elsewhere to node ports is marked as before.
        #expect(
            chain("services", of: table).contains(
                "fib daddr type local meta l4proto . th dport @node-ports jump mark-for-masquerade"))
    }

    /// The node-port rule leaves alone what is not a node port of a Service with policy Cluster: service
    /// addresses (marked by their own rule, so a node port's number there changes nothing), loopback sources
    /// (KUBE-SERVICES' first rule returns them), and health-check node ports, which the proxy itself serves.
    @Test(arguments: [NFTFamily.ip, .ip6])
    func nodePortsMatchNeitherServiceAddressesNorLoopbackNorHealthChecks(family: NFTFamily) throws {
        let table = ProxyTable.make(family, rules: MasqueradeRules())
        let ip = family == .ip ? "ip" : "ip6"
        let rule = try #require(chain("output", of: table).first { $0.contains("@node-ports") })
        #expect(rule.contains("\(ip) daddr != @service-addresses"))
        #expect(rule.contains(family == .ip ? "ip saddr != 127.0.0.0/8" : "ip6 saddr != ::1"))
        #expect(!rule.contains("health-check"))
        // The filter still lets health-check node ports in on service addresses.
        #expect(
            chain("input", of: table).first?.contains("meta l4proto . th dport != @health-check-node-ports") == true)
    }

    /// externalTrafficPolicy Local: kube-proxy's KUBE-NODE-PORT returns a port of KUBE-NODE-PORT-LOCAL-TCP (and
    /// -UDP, -SCTP) before it marks, in OUTPUT as in PREROUTING, so the node's own connection keeps the address it
    /// went to and reaches a local endpoint so. Here such a port is not an element of `node-ports` (the sync's
    /// tests show that), and no rule marks node-port traffic other than through that set.
    @Test(arguments: [NFTFamily.ip, .ip6], everySetting)
    func nodePortsWithPolicyLocalAreNotMarked(family: NFTFamily, rules: MasqueradeRules) throws {
        let table = ProxyTable.make(family, rules: rules)
        let nodePorts = try #require(table.sets.first { $0.name == ProxyTable.SetName.nodePorts })
        #expect(nodePorts.comment.contains("externalTrafficPolicy Cluster"))
        let byNodeAddress = table.chains.flatMap(\.rules).map(\.statements).filter {
            $0.contains("fib daddr type local")
        }
        #expect(byNodeAddress.count == 2)
        #expect(byNodeAddress.allSatisfy { $0.contains("meta l4proto . th dport @node-ports") })
        // The sets of ports alone are the Cluster node ports and the health-check node ports; of these only the
        // first is asked for masquerade.
        let portSets = table.sets.filter { $0.fields == [.transportProtocol, .port] }.map(\.name)
        #expect(portSets.sorted() == [ProxyTable.SetName.healthCheckNodePorts, ProxyTable.SetName.nodePorts])
        let marking = table.chains.flatMap(\.rules).map(\.statements).filter { $0.contains("mark-for-masquerade") }
        #expect(!marking.contains { $0.contains("@\(ProxyTable.SetName.healthCheckNodePorts)") })
    }

    @Test func theSkeletonChangesWithTheRulesAndNotWithElements() {
        let plain = ProxyTable.make(.ip, rules: MasqueradeRules())
        #expect(plain.skeleton == ProxyTable.make(.ip, rules: MasqueradeRules()).skeleton)
        #expect(plain.skeleton.digest != ProxyTable.make(.ip, rules: MasqueradeRules(markBit: 13)).skeleton.digest)
        #expect(plain.skeleton.digest != ProxyTable.make(.ip6, rules: MasqueradeRules()).skeleton.digest)
        // Each rule's comment names its purpose and carries a digest of its statements.
        let comments = plain.chains.flatMap(\.rules).map(\.comment)
        #expect(comments.allSatisfy { $0.range(of: #" \[[0-9a-f]{8}\]$"#, options: .regularExpression) != nil })
        #expect(Set(comments).count == comments.count)
    }

    @Test func aReplacementDeletesWhateverTableIsThereThenWritesItWhole() {
        let table = ProxyTable.make(.ip, rules: MasqueradeRules())
        let element = SetElement(.address(IPAddress("10.96.0.1")!), .transportProtocol(6), .port(80))
        let text = table.replacement(elements: [ProxyTable.SetName.clusterIPs: [element]])
        let lines = text.split(separator: "\n")
        #expect(lines.prefix(3) == ["add table ip ipvs-proxy", "delete table ip ipvs-proxy", "table ip ipvs-proxy {"])
        #expect(lines.last == "add element ip ipvs-proxy cluster-ips { 10.96.0.1 . tcp . 80 }")
        #expect(text.contains("type nat hook prerouting priority -100; policy accept;"))
    }

    @Test func elementChangesDeleteFirstAndSkipWhatDoesNotChange() {
        let table = ProxyTable.make(.ip6, rules: MasqueradeRules())
        let old = SetElement(.address(IPAddress("fd00::1")!))
        let new = SetElement(.address(IPAddress("fd00::2")!))
        let transaction = NFTTransaction([
            .changeElements(
                table, deleting: [ProxyTable.SetName.serviceAddresses: [old]],
                adding: [ProxyTable.SetName.serviceAddresses: [new], ProxyTable.SetName.hairpin: []])
        ])
        #expect(
            transaction.text
                == "delete element ip6 ipvs-proxy service-addresses { fd00::1 }\n"
                + "add element ip6 ipvs-proxy service-addresses { fd00::2 }\n")
        #expect(transaction.elementCounts == (added: 1, deleted: 1))
    }
}
