import Foundation
import InternetAddress
import Testing

@testable import NetfilterModel

/// A recorded listing (Tests/Fixtures/nftables).
func recordedListing(_ name: String) throws -> String {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/nftables/\(name)").path
    return try String(contentsOfFile: path, encoding: .utf8)
}

@Suite("Reading what nft lists", .timeLimit(.minutes(2)))
struct ListingTests {
    @Test func aTablesSetsElementsChainsAndRuleCommentsAreRead() throws {
        let listing = try TableListing(json: recordedListing("list-table.json"), family: .ip, table: "ipvs-proxy")
        #expect(
            listing.elements["cluster-ips"]
                == ["10.96.0.1 . tcp . 443", "10.96.0.10 . udp . 53", "10.96.0.10 . tcp . 53"].map(
                    SetElement.init(text:)
                ).reduce(into: Set()) { $0.insert($1) })
        #expect(listing.elements["node-ports"] == [SetElement(text: "tcp . 31386"), SetElement(text: "sctp . 30001")])
        #expect(
            listing.elements["firewall-allowed"]
                == [
                    SetElement(text: "192.0.2.30 . tcp . 80 . 203.0.113.0/24"),
                    SetElement(text: "192.0.2.30 . tcp . 80 . 198.51.100.7"),
                ])
        #expect(listing.elements["local-networks"] == [SetElement(text: "10.244.0.0/16")])
        #expect(listing.unreadableElements.isEmpty)
        #expect(
            listing.skeleton.sets["firewall-allowed"]
                == .init(
                    fields: [.ipv4Address, .transportProtocol, .port, .ipv4Address], isInterval: true))
        #expect(listing.skeleton.chains["prerouting"]?.hook == NFTHook(type: "nat", hook: "prerouting", priority: -100))
        #expect(listing.skeleton.chains["services"]?.hook == nil)
        // The rule another writer added has no comment: the skeleton shows it.
        #expect(
            listing.skeleton.chains["forward"]?.ruleComments == ["flows already accepted [00000001]", ""])
    }

    @Test func otherTablesAreIgnored() throws {
        let listing = try TableListing(json: recordedListing("list-table.json"), family: .ip, table: "filter")
        #expect(listing.elements.isEmpty)
        #expect(listing.skeleton.chains.isEmpty)
        let ip6 = try TableListing(json: recordedListing("list-table.json"), family: .ip6, table: "ipvs-proxy")
        #expect(ip6.skeleton.sets.isEmpty)
    }

    @Test func tableNamesAndDroppingChainsAreRead() throws {
        #expect(
            try TableListing.tableNames(json: recordedListing("list-tables.json"), family: .ip) == [
                "ipvs-proxy", "filter",
            ])
        #expect(try TableListing.tableNames(json: recordedListing("list-tables.json"), family: .ip6).isEmpty)
        let chains = try ListedChain.baseChains(json: recordedListing("list-chains.json"))
        let dropping = chains.filter { $0.hook == "forward" && $0.policy == "drop" }
        #expect(dropping.map(\.description) == ["table ip filter, chain FORWARD (hook forward, policy drop)"])
        #expect(!chains.contains { $0.name == "services" })
    }

    @Test func somethingElseIsMalformed() {
        #expect(throws: TableListing.Malformed.self) { try TableListing(json: "{", family: .ip, table: "t") }
        #expect(throws: TableListing.Malformed.self) { try TableListing(json: "{\"x\": 1}", family: .ip, table: "t") }
    }
}
