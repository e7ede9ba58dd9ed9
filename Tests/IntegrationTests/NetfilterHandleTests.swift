import Foundation
import IPVSModel
import Netfilter
import NetfilterModel
import Testing

@Suite("nftables and conntrack handles against the kernel", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct NetfilterHandleTests {
    /// A namespace with conntrack in use (a table that matches on it), and a UDP flow from its loopback.
    private func trackedFlow(port: UInt16) throws -> TestNamespace {
        let namespace = try TestNamespace("conntrack")
        try namespace.exec(
            Tools.nft,
            [
                "add table inet t; add chain inet t out { type filter hook output priority 0; policy accept; ct state new counter; }"
            ])
        try namespace.ip("addr", "add", "192.0.2.1/24", "dev", "lo")
        _ = try? request(from: namespace, to: IPAddress("192.0.2.1")!, port: port, protocol: .udp, timeoutSeconds: 1)
        return namespace
    }

    @Test func conntrackEntriesAreReadWithTheirPortsAndDeleted() throws {
        let namespace = try trackedFlow(port: 30053)
        let conntrack = try namespace.conntrack()
        let entries = try conntrack.entries(family: .ipv4, protocols: [17])
        let flow = try #require(entries.first { $0.original.destinationPort == 30053 }, "\(entries)")
        #expect(flow.original.destination == IPAddress("192.0.2.1")!)
        #expect(flow.reply.source == IPAddress("192.0.2.1")!)
        #expect(flow.reply.destinationPort == flow.original.sourcePort)
        #expect(flow.transportProtocol == 17)
        // What the conntrack tool shows, independently.
        #expect(try namespace.exec(Tools.conntrack, ["-L", "-p", "udp"]).output.contains("dport=30053"))

        #expect(try conntrack.delete([flow]).isEmpty)
        #expect(try conntrack.entries(family: .ipv4, protocols: [17]).allSatisfy { $0 != flow })
        // Gone already: still no failure.
        #expect(try conntrack.delete([flow]).isEmpty)
    }

    @Test func theGenerationMovesWithEveryTransactionAndListingsReadBack() throws {
        let namespace = try TestNamespace("nft")
        let nftables = try namespace.nftables()
        let before = try nftables.generation()
        try namespace.exec(Tools.nft, ["add table ip other"])
        let after = try nftables.generation()
        #expect(after != before)
        let table = ProxyTable.make(.ip, rules: MasqueradeRules(localTraffic: .networks([IPNetwork("10.244.0.0/16")!])))
        let elements: [String: Set<SetElement>] = [
            ProxyTable.SetName.clusterIPs: [SetElement(text: "10.96.0.1 . tcp . 443")],
            ProxyTable.SetName.firewallAllowed: [
                SetElement(text: "192.0.2.30 . tcp . 80 . 203.0.113.0/24"),
                SetElement(text: "192.0.2.30 . tcp . 80 . 198.51.100.7"),
            ],
            ProxyTable.SetName.localNetworks: [SetElement(text: "10.244.0.0/16")],
        ]
        _ = try nftables.run(NFTTransaction([.replace(table, elements: elements)]).text, operation: "test")
        // What ipvs-proxy writes reads back the same: skeleton and elements.
        let listing = try #require(try namespace.syncerConnection().table(.ip, named: ProxyTable.name))
        #expect(listing.skeleton == table.skeleton)
        #expect(listing.elements.filter { !$0.value.isEmpty } == elements)
        #expect(listing.unreadableElements.isEmpty)
        // A dry run changes nothing, and a refused transaction neither.
        let generation = try nftables.generation()
        _ = try nftables.run("delete table ip other\n", operation: "test", dryRun: true)
        #expect(try nftables.generation() == generation)
        #expect(throws: NetfilterError.self) {
            try nftables.run(
                "delete table ip other\ndelete element ip ipvs-proxy cluster-ips { 10.96.9.9 . tcp . 1 }\n",
                operation: "test")
        }
        #expect(try namespace.ruleset().contains("table ip other"))
    }
}
