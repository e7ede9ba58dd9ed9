import FakeKernel
import Foundation
import IPVSModel
import InterfaceModel
import KubernetesModel
import ProxyRules
import Sync
import SystemPackage
import TestSupport
import Testing
import Translation

/// `count` Services, each a TCP virtual server at 10.96.0.x:80 with `endpoints` real servers; `shift` moves every
/// Service's endpoints to other addresses.
func cluster(services count: Int, endpoints: Int = 2, shift: Int = 0) -> DesiredState {
    var state = DesiredState()
    state.serviceCount = count
    for index in 0..<count {
        let address = IPAddress("10.96.0.\(index + 1)")!
        let key = VirtualServerKey.address(.tcp, address, port: 80)
        let reals = (0..<endpoints).map {
            RealServer(IPAddress("10.244.\(index).\($0 + 1 + shift)")!, port: 8080)
        }
        state.virtualServers[key] = DesiredVirtualServer(
            server: VirtualServer(key), realServers: reals,
            servicePort: ServicePortName(service: ServiceName(namespace: "gen", name: "svc-\(index)"), port: "http"))
        state.serviceAddresses.insert(address)
    }
    return state
}

func key(_ index: Int) -> VirtualServerKey {
    .address(.tcp, IPAddress("10.96.0.\(index + 1)")!, port: 80)
}

/// A syncer over fake connections, with its state folder.
struct FakeNode {
    let ipvs = FakeIPVSTable()
    let interfaces = FakeInterfaces()
    let nftables = FakeNFTables()
    let conntrack = FakeConntrack()
    let store: OwnershipStore
    let syncer: Syncer

    init(folder: String, netfilter: NetfilterSettings = NetfilterSettings()) {
        store = OwnershipStore(directory: folder)
        syncer = Syncer(
            ipvs: ipvs, interfaces: interfaces, nftables: nftables, conntrack: conntrack, store: store,
            netfilter: netfilter)
    }

    /// The table as a dictionary of real servers per virtual server, for comparing with a desired state.
    var realServers: [VirtualServerKey: Set<RealServer>] {
        ipvs.current.mapValues { Set($0.realServers.map(\.server)) }
    }

    func matches(_ desired: DesiredState) -> Bool {
        realServers == desired.virtualServers.mapValues { Set($0.realServers) }
            && interfaces.addresses(on: "kube-ipvs0") == desired.serviceAddresses
    }
}

@Suite("The syncer, against fake kernel connections", .timeLimit(.minutes(2)))
struct SyncerTests {
    @Test func aFirstSyncReadsEverythingAndAppliesEverything() throws {
        try withTemporaryFolder("sync") { folder in
            let node = FakeNode(folder: folder)
            let desired = cluster(services: 3)
            let report = try node.syncer.sync(desired)
            #expect(node.matches(desired))
            #expect(report.table.fullReads == 1)
            #expect(report.table.counts[.addVirtualServer] == 3)
            #expect(report.addresses.counts.bound == 3)
            #expect(try node.store.load().virtualServers.count == 3)
            #expect(try node.store.load().addresses == desired.serviceAddresses)
        }
    }

    @Test func anIncrementalSyncReadsOnlyTheRealServersOfWhatChanged() throws {
        try withTemporaryFolder("incremental") { folder in
            let node = FakeNode(folder: folder)
            var desired = cluster(services: 5)
            _ = try node.syncer.sync(desired)
            let reads = (node.ipvs.tableReads, node.interfaces.addressReads)
            desired.virtualServers[key(2)]?.realServers[0] = RealServer(IPAddress("10.244.99.1")!, port: 8080)

            let report = try node.syncer.sync(desired, options: SyncOptions(full: false))
            #expect(report.table.fullReads == 0)
            #expect(report.table.realServerReads == 1)
            #expect(report.table.operations.count == 2)
            #expect((node.ipvs.tableReads, node.interfaces.addressReads) == reads)
            #expect(node.matches(desired))
        }
    }

    /// Between full syncs the syncer trusts its memory and does not see what others change; a full sync reads
    /// and repairs it.
    @Test func aFullSyncRepairsWhatOthersChangedAndAnIncrementalOneTrustsMemory() throws {
        try withTemporaryFolder("repair") { folder in
            let node = FakeNode(folder: folder)
            let desired = cluster(services: 3)
            _ = try node.syncer.sync(desired)
            node.ipvs.modify { $0[key(1)]?.realServers.removeAll() }
            node.interfaces.remove(IPAddress("10.96.0.3")!)

            let incremental = try node.syncer.sync(desired, options: SyncOptions(full: false))
            #expect(incremental.table.operations.isEmpty)
            #expect(incremental.addresses.bound.isEmpty)
            #expect(!node.matches(desired))

            let full = try node.syncer.sync(desired)
            #expect(full.table.fullReads == 1)
            #expect(full.table.counts[.addRealServer] == 2)
            #expect(full.addresses.bound == [IPAddress("10.96.0.3")!])
            #expect(node.matches(desired))
        }
    }

    /// Another writer changes the table between the read and the batch: an owned virtual server vanishes and a
    /// stranger takes a key the plan adds. The batch meets ESRCH and EEXIST; the syncer reads again and plans
    /// again, leaves the stranger alone, and its report keeps what every attempt sent.
    @Test func aRaceIsResolvedByReadingAgainAndTheReportKeepsEveryAttempt() throws {
        try withTemporaryFolder("race") { folder in
            let node = FakeNode(folder: folder)
            _ = try node.syncer.sync(cluster(services: 3))
            let desired = cluster(services: 4, endpoints: 3)
            let stranger = VirtualServer(key(3), scheduler: .weightedLeastConnection)
            node.ipvs.beforeNextBatch { table, _ in
                table[key(0)] = nil
                table.apply(.addVirtualServer(stranger))
            }

            let report = try node.syncer.sync(desired, options: SyncOptions(full: false))
            #expect(report.attempts == 2)
            #expect(report.table.failures.isEmpty)
            #expect(!report.hasFailures)
            #expect(report.table.blocked.keys.sorted() == [key(3)])
            // Both attempts are in the report, and each refusal points at its own operation.
            let sent = node.ipvs.batches.dropFirst(2).reduce(0) { $0 + $1.count }
            let notSent = report.table.refused.filter { $0.error.description.contains("not sent") }.count
            #expect(report.table.operations.count == sent + notSent)
            #expect(notSent == 3)
            #expect(!report.table.refused.isEmpty)
            for refusal in report.table.refused {
                #expect(report.table.operations[refusal.index] == refusal.operation)
            }
            // The first attempt added a real server to each of svc-1 and svc-2; it was not repeated.
            #expect(report.table.counts[.addRealServer] == 2 + 3)
            // Everything else is as wanted, the vanished virtual server made again; the stranger untouched.
            var wanted = desired
            wanted.virtualServers[key(3)] = nil
            for (key, want) in wanted.virtualServers {
                #expect(Set(node.ipvs.current[key]?.realServers.map(\.server) ?? []) == Set(want.realServers))
            }
            #expect(node.ipvs.current[key(3)]?.server.scheduler == .weightedLeastConnection)
            #expect(node.ipvs.current[key(3)]?.realServers.isEmpty == true)
            #expect(try node.syncer.ownership().virtualServers[key(3)] == nil)
        }
    }

    @Test func racesThatGoOnAreGivenUpAfterThreeAttempts() throws {
        try withTemporaryFolder("endless-race") { folder in
            let node = FakeNode(folder: folder)
            node.ipvs.refuse(.fileExists) { $0.kind == .addVirtualServer }
            let report = try node.syncer.sync(cluster(services: 1))
            #expect(report.attempts == 3)
            // The add, and its two real servers, not sent without it.
            #expect(report.table.failures.count == 3)
            #expect(report.table.refused.count == 9)
            #expect(report.hasFailures)
        }
    }

    /// ENOBUFS: the socket overflowed, so what the batch did is unknown. What it may have made stays owned, and
    /// the next sync, incremental or not, reads the table in full and converges.
    @Test func anOverflowLeavesWhatMayExistOwnedAndMakesTheNextSyncReadInFull() throws {
        try withTemporaryFolder("enobufs") { folder in
            let node = FakeNode(folder: folder)
            _ = try node.syncer.sync(cluster(services: 2))
            let desired = cluster(services: 6)
            node.ipvs.overflow(afterOperations: 6)
            #expect {
                try node.syncer.sync(desired, options: SyncOptions(full: false))
            } throws: { error in
                (error as? IPVSError)?.errno == .noBufferSpace
            }
            // Every virtual server the batch was to add is owned, made or not.
            #expect(Set(try node.store.load().virtualServers.keys) == Set((0..<6).map(key)))

            let reads = node.ipvs.tableReads
            let report = try node.syncer.sync(desired, options: SyncOptions(full: false))
            #expect(report.table.fullReads == 1)
            #expect(node.ipvs.tableReads == reads + 1)
            // Planned against what is there, not against a stale memory: nothing refused, nothing retried.
            #expect(report.attempts == 1)
            #expect(report.table.refused.isEmpty)
            #expect(node.matches(desired))
            #expect(Set(try node.store.load().virtualServers.keys) == Set((0..<6).map(key)))
        }
    }

    /// Ownership is on disk before the kernel sees a change: a crash in the middle of the batch must leave
    /// nothing that ipvs-proxy made and does not know it owns.
    @Test func ownershipIsRecordedBeforeEitherBatch() throws {
        try withTemporaryFolder("record-first") { folder in
            let node = FakeNode(folder: folder)
            let desired = cluster(services: 3)
            let seenByIPVS = Recorder<OwnershipRecord>()
            let seenByAddresses = Recorder<OwnershipRecord>()
            let store = node.store
            node.ipvs.beforeNextBatch { _, _ in seenByIPVS.record((try? store.load()) ?? OwnershipRecord()) }
            node.interfaces.beforeNextBatch { _ in seenByAddresses.record((try? store.load()) ?? OwnershipRecord()) }
            _ = try node.syncer.sync(desired)
            for seen in [seenByIPVS.recorded, seenByAddresses.recorded] {
                #expect(seen.count == 1)
                #expect(Set(seen.first?.virtualServers.keys ?? [:].keys) == Set(desired.virtualServers.keys))
                #expect(seen.first?.addresses == desired.serviceAddresses)
            }
        }
    }

    @Test func aKeyHeldBySomethingElseIsLeftAloneAndNotOwned() throws {
        try withTemporaryFolder("blocked") { folder in
            let node = FakeNode(folder: folder)
            let foreign = VirtualServer(key(1), scheduler: .sourceHashing)
            node.ipvs.modify {
                $0.apply(.addVirtualServer(foreign))
                $0.apply(.addRealServer(RealServer(IPAddress("192.168.9.9")!, port: 80), to: key(1)))
            }
            let report = try node.syncer.sync(cluster(services: 3))
            #expect(report.table.blocked.keys.sorted() == [key(1)])
            #expect(!report.hasFailures)
            #expect(node.ipvs.current[key(1)]?.server.scheduler == .sourceHashing)
            #expect(node.ipvs.current[key(1)]?.realServers.map(\.server.address) == [IPAddress("192.168.9.9")!])
            #expect(try node.syncer.ownership().virtualServers[key(1)] == nil)
            #expect(try node.syncer.ownership().virtualServers.count == 2)
        }
    }

    @Test func anInputWithoutServicesIsRefusedUnlessAllowed() throws {
        try withTemporaryFolder("empty") { folder in
            let node = FakeNode(folder: folder)
            _ = try node.syncer.sync(cluster(services: 3))
            let batches = node.ipvs.batches.count
            #expect(throws: SyncError.emptyInput(ownedVirtualServers: 3)) {
                try node.syncer.sync(DesiredState())
            }
            #expect(node.ipvs.batches.count == batches)
            #expect(node.ipvs.current.count == 3)

            let report = try node.syncer.sync(DesiredState(), options: SyncOptions(allowEmpty: true))
            #expect(report.table.counts[.deleteVirtualServer] == 3)
            #expect(node.ipvs.current.isEmpty)
            #expect(node.interfaces.addresses(on: "kube-ipvs0").isEmpty)
        }
    }

    @Test func aDryRunPlansAndChangesNothing() throws {
        try withTemporaryFolder("dry-run") { folder in
            let node = FakeNode(folder: folder)
            let report = try node.syncer.sync(cluster(services: 2), options: SyncOptions(dryRun: true))
            #expect(report.table.operations.count == 2 + 4)
            #expect(report.addresses.bound.count == 2)
            #expect(node.ipvs.batches.isEmpty)
            #expect(node.interfaces.batches.isEmpty)
            #expect(!FileManager.default.fileExists(atPath: node.store.file))

            // Nor does it make the syncer forget what its last sync left.
            _ = try node.syncer.sync(cluster(services: 2))
            _ = try node.syncer.sync(cluster(services: 3), options: SyncOptions(full: false, dryRun: true))
            let next = try node.syncer.sync(cluster(services: 3), options: SyncOptions(full: false))
            #expect(next.table.fullReads == 0)
            #expect(node.matches(cluster(services: 3)))
        }
    }

    /// The memory's rule: only a sync that applied everything leaves one. After a refusal the next incremental
    /// sync reads the kernel in full.
    @Test func aRefusalMakesTheNextSyncReadInFull() throws {
        try withTemporaryFolder("refused") { folder in
            let node = FakeNode(folder: folder)
            node.ipvs.refuse(.invalidArgument) { $0.kind == .addRealServer }
            let first = try node.syncer.sync(cluster(services: 1))
            #expect(first.table.failures.count == 2)
            node.ipvs.stopRefusing()
            let second = try node.syncer.sync(cluster(services: 1), options: SyncOptions(full: false))
            #expect(second.table.fullReads == 1)
            #expect(node.matches(cluster(services: 1)))
        }
    }

    @Test func aRefusedBindIsReportedAsARefusedBindAndNotOwned() throws {
        try withTemporaryFolder("bind") { folder in
            let node = FakeNode(folder: folder)
            let refusedAddress = IPAddress("10.96.0.2")!
            node.interfaces.refuse(.permissionDenied) {
                $0 == .bind(InterfaceAddress(linkIndex: 3, address: refusedAddress))
            }
            let report = try node.syncer.sync(cluster(services: 3))
            #expect(report.addresses.failures.map(\.change.address.address) == [refusedAddress])
            #expect(report.addresses.counts.bound == 2)
            #expect(report.addresses.counts.refusedBinds == 1)
            let results = Dictionary(uniqueKeysWithValues: report.operationResults.map { ($0.kind, $0) })
            #expect(results["bind-address"]?.succeeded == 2)
            #expect(results["bind-address"]?.refused == 1)
            #expect(results["unbind-address"] == nil)
            #expect(try node.syncer.ownership().addresses == [IPAddress("10.96.0.1")!, IPAddress("10.96.0.3")!])
        }
    }

    @Test func aRefusedUnbindIsCountedAsAnUnbind() throws {
        try withTemporaryFolder("unbind") { folder in
            let node = FakeNode(folder: folder)
            _ = try node.syncer.sync(cluster(services: 3))
            node.interfaces.refuse(.permissionDenied) { if case .unbind = $0 { true } else { false } }
            let report = try node.syncer.sync(cluster(services: 1), options: SyncOptions(full: false))
            let results = Dictionary(uniqueKeysWithValues: report.operationResults.map { ($0.kind, $0) })
            #expect(results["unbind-address"]?.refused == 2)
            #expect(results["unbind-address"]?.succeeded == 0)
            #expect(results["bind-address"] == nil)
            // Still bound, still owned: a later sync tries again.
            #expect(try node.syncer.ownership().addresses.count == 3)
        }
    }

    @Test func cleanupRemovesWhatIsOwnedAndNothingElse() throws {
        try withTemporaryFolder("cleanup") { folder in
            let node = FakeNode(folder: folder)
            _ = try node.syncer.sync(cluster(services: 2))
            let foreign = VirtualServerKey.address(.udp, IPAddress("10.1.1.1")!, port: 53)
            node.ipvs.modify { $0.apply(.addVirtualServer(VirtualServer(foreign))) }
            let report = try node.syncer.cleanup()
            #expect(report.deletedVirtualServers.sorted() == [key(0), key(1)])
            #expect(report.deletedLink)
            #expect(node.ipvs.current.keys.sorted() == [foreign])
            #expect(try node.interfaces.link(named: "kube-ipvs0") == nil)
            #expect(!FileManager.default.fileExists(atPath: node.store.file))
        }
    }
}
