import Foundation
import IPVSModel
import KubernetesModel
import ProxyRules
import SystemPackage
import TestSupport
import Testing
import Translation

@testable import Sync

private let web = VirtualServerKey.address(.tcp, IPAddress("10.96.0.10")!, port: 80)
private let dns = VirtualServerKey.address(.udp, IPAddress("10.96.0.53")!, port: 53)
private let webPort = ServicePortName(service: ServiceName(namespace: "shop", name: "web"), port: "http")
private let dnsPort = ServicePortName(service: ServiceName(namespace: "kube-system", name: "dns"), port: "dns")

private func real(_ address: String, port: UInt16 = 8080, weight: Int32 = 1) -> RealServer {
    RealServer(IPAddress(address)!, port: port, weight: weight)
}

private func desired(_ entries: [(VirtualServer, [RealServer], ServicePortName)]) -> DesiredState {
    var state = DesiredState()
    for (server, reals, port) in entries {
        state.virtualServers[server.key] = DesiredVirtualServer(server: server, realServers: reals, servicePort: port)
    }
    return state
}

private func observed(
    _ entries: [(VirtualServer, [(RealServer, active: UInt32, inactive: UInt32)])]
) -> [VirtualServerKey: VirtualServerState] {
    var table: [VirtualServerKey: VirtualServerState] = [:]
    for (server, reals) in entries {
        var kernel = server
        kernel.flags.insert(.hashed)  // as the kernel reports every service
        table[server.key] = VirtualServerState(
            server: kernel,
            realServers: reals.map {
                RealServerState(server: $0.0, activeConnections: $0.active, inactiveConnections: $0.inactive)
            })
    }
    return table
}

@Suite("Planning the difference", .timeLimit(.minutes(2)))
struct PlannerTests {
    let reals = [real("10.244.1.5"), real("10.244.2.6")]

    @Test func anEmptyTableGetsEverythingAddedInOrder() {
        let plan = Planner.plan(desired: desired([(VirtualServer(web), reals, webPort)]), observed: [:], owned: [:])
        #expect(
            plan.operations == [
                .addVirtualServer(VirtualServer(web)), .addRealServer(reals[0], to: web),
                .addRealServer(reals[1], to: web),
            ])
        #expect(plan.owning == [web: webPort])
    }

    @Test func nothingChangedMeansNoOperations() {
        let plan = Planner.plan(
            desired: desired([(VirtualServer(web), reals, webPort)]),
            observed: observed([(VirtualServer(web), reals.map { ($0, 0, 0) })]), owned: [web: webPort])
        #expect(plan.operations.isEmpty)
        #expect(plan.blocked.isEmpty)
    }

    @Test func aSchedulerChangeIsOneEditAndNothingElse() {
        let wanted = VirtualServer(web, scheduler: .leastConnection)
        let plan = Planner.plan(
            desired: desired([(wanted, reals, webPort)]),
            observed: observed([(VirtualServer(web), reals.map { ($0, 3, 7) })]), owned: [web: webPort])
        #expect(plan.operations == [.editVirtualServer(wanted)])
    }

    @Test func persistenceChangesAreEdits() {
        let wanted = VirtualServer(web, persistenceTimeout: 600)
        let plan = Planner.plan(
            desired: desired([(wanted, reals, webPort)]),
            observed: observed([(VirtualServer(web, persistenceTimeout: 10800), reals.map { ($0, 0, 0) })]),
            owned: [web: webPort])
        #expect(plan.operations == [.editVirtualServer(wanted)])
    }

    @Test func aRemovedEndpointWithoutConnectionsIsOneDelete() {
        let plan = Planner.plan(
            desired: desired([(VirtualServer(web), [reals[0]], webPort)]),
            observed: observed([(VirtualServer(web), reals.map { ($0, 0, 0) })]), owned: [web: webPort])
        #expect(plan.operations == [.deleteRealServer(reals[1].key, from: web)])
        #expect(plan.draining.isEmpty)
    }

    @Test func aRemovedTCPEndpointWithConnectionsDrainsAtWeightZero() {
        let plan = Planner.plan(
            desired: desired([(VirtualServer(web), [reals[0]], webPort)]),
            observed: observed([(VirtualServer(web), [(reals[0], 0, 0), (reals[1], 0, 2)])]), owned: [web: webPort])
        #expect(plan.operations == [.editRealServer(real("10.244.2.6", weight: 0), in: web)])
        #expect(plan.draining.count == 1)

        // Already at weight 0 and still busy: nothing to do yet.
        let later = Planner.plan(
            desired: desired([(VirtualServer(web), [reals[0]], webPort)]),
            observed: observed([(VirtualServer(web), [(reals[0], 0, 0), (real("10.244.2.6", weight: 0), 1, 0)])]),
            owned: [web: webPort])
        #expect(later.operations.isEmpty)
        #expect(later.draining.count == 1)

        // Drained: deleted.
        let drained = Planner.plan(
            desired: desired([(VirtualServer(web), [reals[0]], webPort)]),
            observed: observed([(VirtualServer(web), [(reals[0], 0, 0), (real("10.244.2.6", weight: 0), 0, 0)])]),
            owned: [web: webPort])
        #expect(drained.operations == [.deleteRealServer(reals[1].key, from: web)])
    }

    @Test func aRemovedUDPEndpointGoesAtOnceEvenWithConnections() {
        let servers = [real("10.244.1.53", port: 53), real("10.244.2.53", port: 53)]
        let plan = Planner.plan(
            desired: desired([(VirtualServer(dns), [servers[0]], dnsPort)]),
            observed: observed([(VirtualServer(dns), [(servers[0], 0, 5), (servers[1], 0, 5)])]), owned: [dns: dnsPort])
        #expect(plan.operations == [.deleteRealServer(servers[1].key, from: dns)])
    }

    @Test func aReturningEndpointGetsItsWeightBack() {
        let plan = Planner.plan(
            desired: desired([(VirtualServer(web), reals, webPort)]),
            observed: observed([(VirtualServer(web), [(reals[0], 0, 0), (real("10.244.2.6", weight: 0), 4, 0)])]),
            owned: [web: webPort])
        #expect(plan.operations == [.editRealServer(reals[1], in: web)])
    }

    @Test func aNewEndpointIsOneAdd() {
        let added = real("10.244.3.7")
        let plan = Planner.plan(
            desired: desired([(VirtualServer(web), reals + [added], webPort)]),
            observed: observed([(VirtualServer(web), reals.map { ($0, 0, 0) })]), owned: [web: webPort])
        #expect(plan.operations == [.addRealServer(added, to: web)])
    }

    @Test func aForeignVirtualServerAtAWantedKeyIsLeftAlone() {
        let plan = Planner.plan(
            desired: desired([(VirtualServer(web), reals, webPort)]),
            observed: observed([
                (VirtualServer(web, scheduler: .weightedLeastConnection), [(real("192.168.9.9"), 0, 0)])
            ]),
            owned: [:])
        #expect(plan.operations.isEmpty)
        #expect(plan.blocked == [web: webPort])
        #expect(plan.owning.isEmpty)
    }

    @Test func ownedVirtualServersNoLongerWantedAreDeletedAndForeignOnesKept() {
        let foreign = VirtualServerKey.address(.tcp, IPAddress("192.168.0.1")!, port: 443)
        let plan = Planner.plan(
            desired: DesiredState(),
            observed: observed([(VirtualServer(web), reals.map { ($0, 0, 0) }), (VirtualServer(foreign), [])]),
            owned: [web: webPort])
        #expect(plan.operations == [.deleteVirtualServer(web)])
        #expect(plan.owning.isEmpty)
    }

    @Test func anOwnedVirtualServerThatVanishedIsMadeAgain() {
        let plan = Planner.plan(
            desired: desired([(VirtualServer(web), [], webPort)]), observed: [:], owned: [web: webPort])
        #expect(plan.operations == [.addVirtualServer(VirtualServer(web))])
    }

    @Test func ownershipDuringApplyCoversBothOldAndNew() {
        let plan = Planner.plan(
            desired: desired([(VirtualServer(web), [], webPort)]), observed: [:], owned: [dns: dnsPort])
        var during = [dns: dnsPort]
        plan.own(during: &during)
        #expect(during == [web: webPort, dns: dnsPort])
        #expect(plan.owning == [web: webPort])
    }
}

@Suite("After a batch", .timeLimit(.minutes(2)))
struct BatchOutcomeTests {
    private func failure(_ operation: TableOperation, _ errno: Errno, index: Int = 0) -> BatchFailure {
        BatchFailure(index: index, operation: operation, error: IPVSError(operation: "x", reason: .kernel(errno)))
    }

    @Test func aFailedAddIsNotOwnedAndAFailedDeleteStaysOwned() {
        var plan = Plan()
        plan.owning = [web: webPort]
        var owned = [dns: dnsPort]
        IPVSTablePart.own(
            after: plan,
            refused: [
                failure(.addVirtualServer(VirtualServer(web)), .fileExists),
                failure(.deleteVirtualServer(dns), .resourceBusy),
            ], in: &owned)
        #expect(owned == [dns: dnsPort])
    }

    @Test func racesAreTellingApartFromRefusals() {
        #expect(IPVSTablePart.Outcome.isRace(failure(.addVirtualServer(VirtualServer(web)), .fileExists)))
        #expect(IPVSTablePart.Outcome.isRace(failure(.deleteVirtualServer(web), .noSuchProcess)))
        #expect(
            IPVSTablePart.Outcome.isRace(
                failure(.deleteRealServer(real("10.0.0.1").key, from: web), .noSuchFileOrDirectory)))
        // ENOENT on a virtual server means the kernel has no such scheduler: that would just repeat.
        #expect(!IPVSTablePart.Outcome.isRace(failure(.addVirtualServer(VirtualServer(web)), .noSuchFileOrDirectory)))
        #expect(!IPVSTablePart.Outcome.isRace(failure(.addRealServer(real("0.0.0.0"), to: web), .invalidArgument)))
    }

    @Test func addressPlansBindWhatIsMissingAndUnbindOnlyWhatIsOwned() {
        let a = IPAddress("10.96.0.1")!
        let b = IPAddress("10.96.0.2")!
        let c = IPAddress("10.96.0.3")!
        let d = IPAddress("10.96.0.4")!
        let plan = AddressPlan(desired: [a, b], onLink: [b, c, d], owned: [b, c])
        #expect(plan.bind == [a])
        #expect(plan.unbind == [c])
    }
}

@Suite("Ownership record", .timeLimit(.minutes(2)))
struct OwnershipStoreTests {
    @Test func roundTripsThroughItsFileWithRootOnlyPermissions() throws {
        let directory = try makeTemporaryFolder("state") + "/state"
        defer { removeTemporaryFolder((directory as NSString).deletingLastPathComponent) }
        let store = OwnershipStore(directory: directory)
        #expect(try store.load().isEmpty)
        let record = OwnershipRecord(
            virtualServers: [
                web: webPort, .address(.udp, IPAddress("fd00::a")!, port: 53): dnsPort,
                .firewallMark(9, family: .ipv6): webPort,
            ],
            addresses: [IPAddress("10.96.0.10")!, IPAddress("fd00::a")!])
        try store.save(record)
        #expect(try store.load() == record)
        let attributes = try FileManager.default.attributesOfItem(atPath: store.file)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let folder = try FileManager.default.attributesOfItem(atPath: directory)
        #expect((folder[.posixPermissions] as? Int) == 0o700)
        try store.remove()
        #expect(try store.load().isEmpty)
    }

    @Test func aDamagedRecordIsAClearError() throws {
        let directory = try makeTemporaryFolder("state")
        defer { removeTemporaryFolder(directory) }
        let store = OwnershipStore(directory: directory)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: store.file))
        let error = try #require(throws: StateError.self) { try store.load() }
        #expect(error.description.contains("owned.json: is not an ownership record"))
    }

    /// A record that is there but cannot be looked at (here a symlink loop; EACCES, EIO and ENOMEM alike) is an
    /// error: taken for "no record", the next write would forget what is owned.
    @Test func aRecordThatCannotBeLookedAtIsAnErrorNotAnEmptyRecord() throws {
        let directory = try makeTemporaryFolder("state")
        defer { removeTemporaryFolder(directory) }
        let store = OwnershipStore(directory: directory)
        try FileManager.default.createSymbolicLink(atPath: store.file, withDestinationPath: "owned.json")
        let error = try #require(throws: StateError.self) { try store.load() }
        #expect(error.description.hasSuffix("owned.json: cannot look at: Too many levels of symbolic links"))
    }
}

@Suite("Remembered table", .timeLimit(.minutes(2)))
struct TableModelTests {
    @Test func followsEveryKindOfOperation() {
        var table = ObservedTable()
        let reals = [real("10.244.1.5"), real("10.244.2.6")]
        table.apply(.addVirtualServer(VirtualServer(web)))
        table.apply(.addRealServer(reals[0], to: web))
        table.apply(.addRealServer(reals[1], to: web))
        #expect(table[web]?.server.flags == .hashed)
        #expect(table[web]?.realServers.map(\.server) == reals)
        table.apply(.editRealServer(real("10.244.1.5", weight: 0), in: web))
        #expect(table[web]?.realServers.first?.server.weight == 0)
        table.apply(.deleteRealServer(reals[1].key, from: web))
        #expect(table[web]?.realServers.count == 1)
        table.apply(.editVirtualServer(VirtualServer(web, scheduler: .sourceHashing)))
        #expect(table[web]?.server.scheduler == .sourceHashing)
        table.apply(.deleteVirtualServer(web))
        #expect(table.isEmpty)
    }

    @Test func aPlanAppliedToItsTableLeavesNothingToDo() {
        let wanted = desired([
            (VirtualServer(web, persistenceTimeout: 600), [real("10.244.1.5"), real("10.244.3.7")], webPort)
        ])
        var table = observed([(VirtualServer(web), [(real("10.244.1.5"), 0, 0), (real("10.244.2.6"), 0, 0)])])
        let plan = Planner.plan(desired: wanted, observed: table, owned: [web: webPort])
        #expect(!plan.operations.isEmpty)
        for operation in plan.operations { table.apply(operation) }
        #expect(Planner.plan(desired: wanted, observed: table, owned: [web: webPort]).operations.isEmpty)
    }
}

@Suite("State lock", .timeLimit(.minutes(2)))
struct StateLockTests {
    @Test func aSecondProcessIsRefusedAndTheLockFileIsRootOnly() throws {
        let parent = try makeTemporaryFolder("lock")
        defer { removeTemporaryFolder(parent) }
        let directory = parent + "/state"
        let lock = try StateLock(directory: directory)
        // flock locks belong to open file descriptions: a second open, as another process makes, conflicts.
        let error = try #require(throws: StateError.self) { try StateLock(directory: directory) }
        #expect(error.description.hasSuffix("lock: another ipvs-proxy process holds this lock"))
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/lock")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        withExtendedLifetime(lock) {}
        _ = try StateLock(directory: directory + "-other")
    }
}
