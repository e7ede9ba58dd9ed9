import FakeKernel
import Foundation
import IPVSModel
import KubernetesModel
import NetfilterModel
import ProxyRules
import Sync
import TestSupport
import Testing
import Translation

private typealias Name = ProxyTable.SetName

private func element(_ text: String) -> SetElement { SetElement(text: text) }

/// A UDP Service at 10.96.0.53:53 with `endpoints` (10.244.0.x:5353).
private func dns(endpoints: [Int]) -> DesiredState {
    var state = DesiredState()
    state.serviceCount = 1
    let key = VirtualServerKey.address(.udp, IPAddress("10.96.0.53")!, port: 53)
    state.virtualServers[key] = DesiredVirtualServer(
        server: VirtualServer(key),
        realServers: endpoints.map { RealServer(IPAddress("10.244.0.\($0)")!, port: 5353) },
        servicePort: ServicePortName(service: ServiceName(namespace: "kube-system", name: "dns"), port: "dns"))
    state.serviceAddresses = [IPAddress("10.96.0.53")!]
    return state
}

@Suite("The nftables and conntrack parts, against fakes", .timeLimit(.minutes(2)))
struct NetfilterPartTests {
    @Test func theFirstSyncWritesBothTablesWholeInOneTransaction() throws {
        try withTemporaryFolder("nft-first") { folder in
            let node = FakeNode(folder: folder)
            let report = try node.syncer.sync(cluster(services: 3))
            #expect(node.nftables.committed.count == 1)
            #expect(report.nftables.replaced.sorted { $0.rawValue < $1.rawValue } == [.ip, .ip6])
            let table = try #require(node.nftables.table(of: .ip))
            #expect(
                table.elements[Name.clusterIPs]
                    == Set((1...3).map { element("10.96.0.\($0) . tcp . 80") }))
            #expect(table.elements[Name.serviceAddresses] == Set((1...3).map { element("10.96.0.\($0)") }))
            #expect(table.skeleton == ProxyTable.make(.ip, rules: MasqueradeRules()).skeleton)
            #expect(report.nftables.elementsAdded == 6)
        }
    }

    @Test func nothingChangedSendsNoTransactionAndANewRunTrustsTheGeneration() throws {
        try withTemporaryFolder("nft-unchanged") { folder in
            let node = FakeNode(folder: folder)
            _ = try node.syncer.sync(cluster(services: 3))
            let again = try node.syncer.sync(cluster(services: 3))
            #expect(again.nftables.transactions.isEmpty)
            #expect(node.nftables.committed.count == 1)

            // A one-shot sync starts with no memory: the ledger in the state folder stands in for a listing
            // while the generation has not moved.
            let listings = node.nftables.listings
            let fresh = Syncer(
                ipvs: node.ipvs, interfaces: node.interfaces, nftables: node.nftables, conntrack: node.conntrack,
                store: node.store)
            let report = try fresh.sync(cluster(services: 3))
            #expect(!report.nftables.listed)
            #expect(node.nftables.listings == listings)
            #expect(report.nftables.transactions.isEmpty)
            // A change is a few elements, planned against the ledger's copy.
            let change = try fresh.sync(cluster(services: 4))
            #expect(change.nftables.elementsAdded == 2)
            #expect(change.nftables.elementsDeleted == 0)
            #expect(change.nftables.replaced.isEmpty)
        }
    }

    @Test func anEndpointChangeOnAnotherNodeChangesNoElement() throws {
        try withTemporaryFolder("nft-endpoint") { folder in
            let node = FakeNode(folder: folder)
            _ = try node.syncer.sync(cluster(services: 3))
            let report = try node.syncer.sync(cluster(services: 3, shift: 5), options: SyncOptions(full: false))
            #expect(report.table.operations.count == 3 * 4)
            #expect(report.nftables.transactions.isEmpty)
        }
    }

    @Test func tamperingIsRepairedAtTheNextFullSync() throws {
        try withTemporaryFolder("nft-tamper") { folder in
            let node = FakeNode(folder: folder)
            let desired = cluster(services: 3)
            _ = try node.syncer.sync(desired)
            node.nftables.tamper(.ip) {
                $0.elements[Name.clusterIPs]?.remove(element("10.96.0.2 . tcp . 80"))
                $0.elements[Name.clusterIPs]?.insert(element("10.96.9.9 . tcp . 22"))
            }
            // Between full syncs memory is trusted; a full sync sees the generation move, lists, and repairs
            // with elements only.
            #expect(try node.syncer.sync(desired, options: SyncOptions(full: false)).nftables.transactions.isEmpty)
            let repair = try node.syncer.sync(desired)
            #expect(repair.nftables.listed)
            #expect((repair.nftables.elementsAdded, repair.nftables.elementsDeleted) == (1, 1))
            #expect(
                node.nftables.table(of: .ip)?.elements[Name.clusterIPs]?.contains(element("10.96.0.2 . tcp . 80"))
                    == true)

            // A rule of the proxy's deleted: the table is written whole again.
            node.nftables.tamper(.ip) { $0.skeleton.chains["input"]?.ruleComments.removeLast() }
            let rewrite = try node.syncer.sync(desired)
            #expect(rewrite.nftables.replaced == [.ip])
            #expect(node.nftables.table(of: .ip)?.skeleton == ProxyTable.make(.ip, rules: MasqueradeRules()).skeleton)
        }
    }

    @Test func aRefusedTransactionIsReportedAndTheNextSyncListsTheTables() throws {
        try withTemporaryFolder("nft-refused") { folder in
            let node = FakeNode(folder: folder)
            _ = try node.syncer.sync(cluster(services: 2))
            node.nftables.refuseNext("Error: Could not process rule: Operation not supported")
            let refused = try node.syncer.sync(cluster(services: 3))
            #expect(refused.hasFailures)
            #expect(refused.nftables.failures.count == 1)
            // IPVS went on regardless; the tables are as they were.
            #expect(node.ipvs.current.count == 3)
            #expect(node.nftables.table(of: .ip)?.elements[Name.clusterIPs]?.count == 2)
            let retry = try node.syncer.sync(cluster(services: 3), options: SyncOptions(full: false))
            #expect(retry.nftables.listed)
            #expect(node.nftables.table(of: .ip)?.elements[Name.clusterIPs]?.count == 3)
        }
    }

    @Test func aDryRunChecksTheTransactionAndCommitsNothing() throws {
        try withTemporaryFolder("nft-dry") { folder in
            let node = FakeNode(folder: folder)
            let report = try node.syncer.sync(cluster(services: 2), options: SyncOptions(dryRun: true))
            #expect(node.nftables.committed.isEmpty)
            #expect(node.nftables.checked.count == 1)
            #expect(report.nftables.transactions.first?.contains("add element ip ipvs-proxy cluster-ips") == true)
        }
    }

    @Test func trafficPoliciesSourceRangesAndLocalEndpointsBecomeElements() throws {
        try withTemporaryFolder("nft-policies") { folder in
            let node = FakeNode(folder: folder)
            var desired = DesiredState()
            desired.serviceCount = 1
            let service = ServicePortName(service: ServiceName(namespace: "shop", name: "edge"), port: "http")
            func add(_ key: VirtualServerKey, _ kind: ServiceAddressKind, local: Bool, ranges: [String] = []) {
                desired.virtualServers[key] = DesiredVirtualServer(
                    server: VirtualServer(key), realServers: [RealServer(IPAddress("10.244.1.5")!, port: 8080)],
                    servicePort: service, kind: kind, keepsClientAddress: local,
                    sourceRanges: ranges.compactMap(IPNetwork.init),
                    localRealServers: [RealServerKey(IPAddress("10.244.1.5")!, port: 8080)])
            }
            add(.address(.tcp, IPAddress("10.96.0.30")!, port: 80), .clusterIP, local: false)
            add(
                .address(.tcp, IPAddress("192.0.2.30")!, port: 80), .loadBalancerIP, local: false,
                ranges: ["203.0.113.0/24", "203.0.113.128/25", "198.51.100.7/32"])
            add(.address(.tcp, IPAddress("192.0.2.31")!, port: 80), .externalIP, local: true)
            add(.address(.tcp, IPAddress("192.168.1.10")!, port: 32276), .nodePort, local: false)
            add(.address(.udp, IPAddress("192.168.1.10")!, port: 32277), .nodePort, local: true)
            desired.healthChecks[service.service] = HealthCheck(port: 32000, localEndpoints: [.ipv4: 1])
            _ = try node.syncer.sync(desired)
            let table = try #require(node.nftables.table(of: .ip))
            #expect(table.elements[Name.healthCheckNodePorts] == [element("tcp . 32000")])
            #expect(node.nftables.table(of: .ip6)?.elements[Name.healthCheckNodePorts] ?? [] == [])
            #expect(table.elements[Name.externalIPs] == [element("192.0.2.30 . tcp . 80")])
            #expect(table.elements[Name.externalIPsLocal] == [element("192.0.2.31 . tcp . 80")])
            #expect(table.elements[Name.nodePorts] == [element("tcp . 32276")])
            #expect(table.elements[Name.firewallPorts] == [element("192.0.2.30 . tcp . 80")])
            // The /25 inside the /24 is dropped: an interval set refuses overlapping elements.
            #expect(
                table.elements[Name.firewallAllowed]
                    == [
                        element("192.0.2.30 . tcp . 80 . 198.51.100.7"),
                        element("192.0.2.30 . tcp . 80 . 203.0.113.0/24"),
                    ])
            #expect(
                table.elements[Name.hairpin]
                    == [
                        element("10.244.1.5 . tcp . 8080 . 10.244.1.5"),
                        element("10.244.1.5 . udp . 8080 . 10.244.1.5"),
                    ])
        }
    }

    @Test func localNetworksAreTheClusterCIDRsOfEachFamily() throws {
        try withTemporaryFolder("nft-local") { folder in
            let networks = ["10.244.0.0/16", "fd00:10:244::/64"].compactMap(IPNetwork.init)
            let node = FakeNode(
                folder: folder,
                netfilter: NetfilterSettings(rules: MasqueradeRules(localTraffic: .networks(networks))))
            _ = try node.syncer.sync(cluster(services: 1))
            #expect(node.nftables.table(of: .ip)?.elements[Name.localNetworks] == [element("10.244.0.0/16")])
            #expect(node.nftables.table(of: .ip6)?.elements[Name.localNetworks] == [element("fd00:10:244::/64")])
        }
    }

    /// NodeCIDR: the Node's pod networks are data, so a Node that changes them changes elements, not rules.
    @Test func nodeCIDRDetectionFollowsTheNodesPodNetworks() throws {
        try withTemporaryFolder("nft-nodecidr") { folder in
            let node = FakeNode(
                folder: folder, netfilter: NetfilterSettings(rules: MasqueradeRules(localTraffic: .nodePodNetworks)))
            var desired = cluster(services: 1)
            _ = try node.syncer.sync(desired)
            // Not known yet: an empty set, so every ClusterIP flow is masqueraded.
            #expect(node.nftables.table(of: .ip)?.elements[Name.localNetworks] ?? [] == [])
            let skeleton = node.nftables.table(of: .ip)?.skeleton
            #expect(skeleton?.sets[Name.localNetworks] != nil)
            desired.nodePodNetworks = ["10.244.1.0/24", "fd00:244:1::/80"].compactMap(IPNetwork.init)
            let report = try node.syncer.sync(desired)
            #expect(node.nftables.table(of: .ip)?.elements[Name.localNetworks] == [element("10.244.1.0/24")])
            #expect(node.nftables.table(of: .ip6)?.elements[Name.localNetworks] == [element("fd00:244:1::/80")])
            #expect(node.nftables.table(of: .ip)?.skeleton == skeleton)
            #expect(report.nftables.elementsAdded == 2)
        }
    }

    /// kube-proxy's rule: a UDP or SCTP flow to a Service port stays only while its answers come from a serving
    /// endpoint. A flow answered by a removed endpoint, or by the Service address itself (sent while the Service
    /// had no endpoint), is deleted; TCP flows and flows to other destinations are left alone.
    @Test func staleFlowsAreDeleted() throws {
        try withTemporaryFolder("flows") { folder in
            let node = FakeNode(folder: folder)
            let client = IPAddress("192.168.7.7")!
            let vip = IPAddress("10.96.0.53")!
            node.conntrack.track(
                17, client: client, clientPort: 4000, destination: vip, port: 53,
                answerer: IPAddress("10.244.0.1")!, answererPort: 5353)
            node.conntrack.track(
                17, client: client, clientPort: 4001, destination: vip, port: 53,
                answerer: IPAddress("10.244.0.2")!, answererPort: 5353)
            node.conntrack.track(
                17, client: client, clientPort: 4002, destination: vip, port: 53,
                answerer: vip, answererPort: 53)
            node.conntrack.track(
                6, client: client, clientPort: 4003, destination: vip, port: 53,
                answerer: IPAddress("10.244.0.9")!, answererPort: 5353)
            node.conntrack.track(
                17, client: client, clientPort: 4004, destination: IPAddress("10.96.9.9")!, port: 53,
                answerer: IPAddress("10.244.0.9")!, answererPort: 5353)

            let first = try node.syncer.sync(dns(endpoints: [1, 2]))
            #expect(first.flows.deleted == 1)
            #expect(node.conntrack.deleted.map(\.original.sourcePort) == [4002])

            // Endpoint 2 goes: its flow goes with it, at once (an incremental sync looks at what changed).
            let second = try node.syncer.sync(dns(endpoints: [1]), options: SyncOptions(full: false))
            #expect(second.flows.deleted == 1)
            #expect(Set(node.conntrack.entries.map(\.original.sourcePort)) == [4000, 4003, 4004])

            // Nothing changed: an incremental sync does not even read the table.
            let dumps = node.conntrack.dumps
            let third = try node.syncer.sync(dns(endpoints: [1]), options: SyncOptions(full: false))
            #expect(node.conntrack.dumps == dumps)
            // A full sync looks at every UDP and SCTP Service port; an incremental one at those that changed.
            #expect(first.flows.lookedAt == 1)
            #expect(second.flows.lookedAt == 1)
            #expect(third.flows.lookedAt == 0)
        }
    }

    @Test func staleFlowsStayWhenTheCleanupIsOff() throws {
        try withTemporaryFolder("flows-off") { folder in
            let node = FakeNode(folder: folder, netfilter: NetfilterSettings(cleansStaleFlows: false))
            node.conntrack.track(
                17, client: IPAddress("192.168.7.7")!, clientPort: 4000,
                destination: IPAddress("10.96.0.53")!, port: 53, answerer: IPAddress("10.244.0.9")!, answererPort: 5353)
            let report = try node.syncer.sync(dns(endpoints: [1]))
            #expect(report.flows.deleted == 0)
            #expect(node.conntrack.dumps == 0)
        }
    }

    @Test func cleanupDeletesBothTablesAndForgetsThem() throws {
        try withTemporaryFolder("nft-cleanup") { folder in
            let node = FakeNode(folder: folder)
            _ = try node.syncer.sync(cluster(services: 2))
            let report = try node.syncer.cleanup()
            #expect(Set(report.deletedTables) == [.ip, .ip6])
            #expect(node.nftables.table(of: .ip) == nil)
            #expect(node.nftables.table(of: .ip6) == nil)
            #expect(
                !FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("nftables.state")))
        }
    }
}

@Suite("The nftables ledger", .timeLimit(.minutes(2)))
struct NFTablesLedgerTests {
    /// A ledger that cannot be written (here its temporary file's name is taken by a folder; a full or read-only
    /// state folder alike) is forgotten, not an error: the kernel already took the transaction, and a ledger kept
    /// from before would describe tables that are no more.
    @Test func aLedgerThatCannotBeWrittenIsForgottenNotAnError() throws {
        try withTemporaryFolder("ledger") { folder in
            let ledger = NFTablesLedger(directory: folder)
            let before = NFTablesPart.State(
                tables: [.ip: NFTablesPart.TableState(skeletonDigest: "0123456789abcdef", elements: [:])], generation: 7
            )
            ledger.save(before)
            #expect(NFTablesLedger(directory: folder).load() == before)
            try FileManager.default.createDirectory(
                atPath: ledger.file + ".tmp", withIntermediateDirectories: false)
            ledger.save(NFTablesPart.State(tables: before.tables, generation: 8))
            #expect(ledger.load() == nil)
            #expect(NFTablesLedger(directory: folder).load() == nil, "the old ledger is gone from the folder too")
        }
    }

    @Test func itKeepsWhatItWasGivenAcrossRuns() throws {
        try withTemporaryFolder("ledger") { folder in
            let state = NFTablesPart.State(
                tables: [
                    .ip: NFTablesPart.TableState(
                        skeletonDigest: "0123456789abcdef",
                        elements: [Name.clusterIPs: [element("10.96.0.1 . tcp . 80"), element("10.96.0.2 . udp . 53")]]),
                    .ip6: NFTablesPart.TableState(skeletonDigest: "fedcba9876543210", elements: [:]),
                ], generation: 42)
            NFTablesLedger(directory: folder).save(state)
            let loaded = NFTablesLedger(directory: folder).load()
            #expect(loaded == state)
            // Each set's digest is read at once; its elements, from their lines, when asked for.
            #expect(loaded?.tables[.ip]?.digests[Name.clusterIPs]?.count == 2)
            #expect(
                loaded?.tables[.ip]?.elements(of: Name.clusterIPs)
                    == [element("10.96.0.1 . tcp . 80"), element("10.96.0.2 . udp . 53")])
            #expect(loaded?.tables[.ip6]?.elements(of: Name.clusterIPs) == [])
            let file = (folder as NSString).appendingPathComponent("nftables.state")
            let text = try String(contentsOfFile: file, encoding: .utf8)
            // A set cut short is not trusted; nor is the first format (its sets carry no digest).
            try Data(text.replacingOccurrences(of: "10.96.0.2 . udp . 53\n", with: "").utf8)
                .write(to: URL(fileURLWithPath: file))
            #expect(NFTablesLedger(directory: folder).load() == nil)
            try Data("ipvs-proxy nftables state 1\ngeneration 42\ntable ip 0123456789abcdef\n".utf8)
                .write(to: URL(fileURLWithPath: file))
            #expect(NFTablesLedger(directory: folder).load() == nil)
            let attributes = try FileManager.default.attributesOfItem(atPath: file)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: file))
            #expect(NFTablesLedger(directory: folder).load() == nil)
        }
    }
}
