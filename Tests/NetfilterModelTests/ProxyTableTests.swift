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
