import Foundation
import IPVSModel
import Testing

@Suite("ipvs-proxy show and version", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct ShowCommandTests {
    @Test func jsonListsVirtualAndRealServers() throws {
        let namespace = try TestNamespace("show")
        let ipvs = try namespace.ipvs()
        let web = VirtualServerKey.address(.tcp, IPAddress("10.96.0.10")!, port: 80)
        try ipvs.add(VirtualServer(web, persistenceTimeout: 600))
        try ipvs.add(RealServer(IPAddress("10.244.1.5")!, port: 8080, weight: 2), to: web)
        try ipvs.add(VirtualServer(.firewallMark(9, family: .ipv6), scheduler: .sourceHashing))

        let output = try run(Tools.ipvsProxy, ["show", "--netns", namespace.path, "--output", "json"]).output
        let json = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        #expect(json["ipvsVersion"] as? String == "1.2.1")
        let servers = try #require(json["virtualServers"] as? [[String: Any]])
        #expect(servers.count == 2, "\(output)")
        let first = servers[0]
        #expect(first["protocol"] as? String == "TCP")
        #expect(first["address"] as? String == "10.96.0.10")
        #expect(first["port"] as? Int == 80)
        #expect(first["scheduler"] as? String == "rr")
        #expect(first["persistenceTimeout"] as? Int == 600)
        #expect((first["flags"] as? [String])?.contains("persistent") == true)
        let reals = try #require(first["realServers"] as? [[String: Any]])
        #expect(reals.count == 1)
        #expect(reals[0]["address"] as? String == "10.244.1.5")
        #expect(reals[0]["port"] as? Int == 8080)
        #expect(reals[0]["weight"] as? Int == 2)
        #expect(reals[0]["forwardingMethod"] as? String == "Masq")
        #expect(reals[0]["activeConnections"] as? Int == 0)
        #expect(reals[0]["inactiveConnections"] as? Int == 0)
        #expect(servers[1]["fwmark"] as? Int == 9)
        #expect(servers[1]["family"] as? String == "IPv6")
    }

    @Test func textLooksLikeIpvsadm() throws {
        let namespace = try TestNamespace("show-text")
        let ipvs = try namespace.ipvs()
        let web = VirtualServerKey.address(.udp, IPAddress("fd00::a")!, port: 53)
        try ipvs.add(VirtualServer(web, scheduler: .leastConnection))
        try ipvs.add(RealServer(IPAddress("fd00::5")!, port: 5353), to: web)
        let output = try run(Tools.ipvsProxy, ["show", "--netns", namespace.path]).output
        let lines = output.split(separator: "\n").map(String.init)
        #expect(lines.first == "IP Virtual Server version 1.2.1 (size=4096)")
        #expect(lines.contains("UDP  [fd00::a]:53 lc"))
        #expect(lines.contains { $0.hasPrefix("  -> [fd00::5]:5353") && $0.contains("Masq    1") })
    }

    @Test func versionPrintsBothVersions() throws {
        let output = try run(Tools.ipvsProxy, ["version"]).output
        #expect(output.contains("ipvs-proxy 0.1.0"))
        #expect(output.contains("IPVS 1.2.1"))
    }
}
