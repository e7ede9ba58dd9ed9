import CTestSupport
import Foundation
import IPVS
import IPVSModel
import KernelAccess
import KubernetesModel
import ProxyRules
import Sync
import Testing
import Translation

/// `count` ClusterIP Services with `endpoints` ready endpoints each, as one JSON List.
func generatedCluster(services count: Int, endpoints: Int = 10) -> String {
    var items: [String] = []
    for index in 0..<count {
        let clusterIP = "10.96.\(index / 250).\(index % 250 + 1)"
        items.append(
            #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc-\#(index)","namespace":"gen"},"spec":{"clusterIP":"\#(clusterIP)","ports":[{"name":"http","port":80,"targetPort":8080}]}}"#
        )
        let addresses = (0..<endpoints).map {
            #"{"addresses":["10.\#(128 + index / 4096).\#(index / 16 % 256).\#(index % 16 * 16 + $0)"],"conditions":{"ready":true}}"#
        }
        items.append(
            #"{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"svc-\#(index)-a","namespace":"gen","labels":{"kubernetes.io/service-name":"svc-\#(index)"}},"addressType":"IPv4","ports":[{"name":"http","port":8080}],"endpoints":[\#(addresses.joined(separator: ","))]}"#
        )
    }
    return #"{"apiVersion":"v1","kind":"List","items":["# + items.joined(separator: ",\n") + "]}"
}

/// A syncer working in a fresh network namespace of its own, with its own state folder.
private func syncerInFreshNamespace(_ name: String) throws -> (TestNamespace, IPVSHandle, Syncer) {
    let namespace = try TestNamespace(name)
    let ipvs = try namespace.ipvs()
    let syncer = try Syncer(
        ipvs: ipvs, interfaces: namespace.interfaces(), nftables: namespace.nftables(),
        conntrack: namespace.conntrack(), store: OwnershipStore(directory: try temporaryFolder("\(name)-state")))
    return (namespace, ipvs, syncer)
}

/// The node the tests translate for.
private let node = NodeContext(nodeName: "node-a", nodeAddresses: [IPAddress("192.168.1.10")!])

@Suite("Reliability against the kernel", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct ReliabilityTests {
    @Test func withoutCAP_NET_ADMINItRefusesToStartWithAClearMessage() throws {
        let namespace = try TestNamespace("nocap")
        let state = try temporaryFolder("nocap-state")
        let output = (try temporaryFolder("nocap-output") as NSString).appendingPathComponent("out.txt")
        for command in [
            ["sync", "-f", recorded("kubectl-get-all.yaml")], ["run", "-f", recorded("kubectl-get-all.yaml")], ["show"],
            ["cleanup"],
        ] {
            let arguments = [Tools.ipvsProxy] + command + ["--netns", namespace.path, "--state-dir", state]
            var cArguments = arguments.map { strdup($0) } + [nil]
            defer { for argument in cArguments { free(argument) } }
            let status = test_run_without_capability(12, Tools.ipvsProxy, &cArguments, output)  // CAP_NET_ADMIN
            let text = try String(contentsOfFile: output, encoding: .utf8)
            #expect(status == 1, "\(command): \(text)")
            #expect(text.contains("ipvs-proxy needs the CAP_NET_ADMIN capability"), "\(command): \(text)")
        }
        #expect(try namespace.ipvsadmRules().isEmpty)
    }

    @Test func anUnknownSchedulerFlagIsAUsageError() throws {
        let namespace = try TestNamespace("badflag")
        let result = try ProxyRun(namespace)("sync", "-f", recorded("kubectl-get-all.yaml"), "--scheduler", "fastest")
        #expect(result.status == 2)
        #expect(result.error.contains("--scheduler: unknown IPVS scheduler 'fastest'; valid schedulers: rr, wrr, lc"))
        #expect(try namespace.ipvsadmRules().isEmpty)
    }

    /// The daemon plans between full resyncs against the table it remembers; when someone else changed the
    /// kernel meanwhile, the batch meets EEXIST or ESRCH: the syncer reads again and plans again.
    @Test func racesDuringABatchAreResolvedByReadingAgain() throws {
        let (_, ipvs, syncer) = try syncerInFreshNamespace("race")
        let folder = try temporaryFolder("race")
        let file = try write(generatedCluster(services: 3, endpoints: 2), to: folder, as: "cluster.json")
        let first = try syncer.sync(Translator.translate(ManifestLoader.load(paths: [file]), node: node))
        #expect(!first.hasFailures)

        // Behind the syncer's back: an owned virtual server vanishes, and a stranger takes a key that the
        // next input wants.
        let owned = VirtualServerKey.address(.tcp, IPAddress("10.96.0.1")!, port: 80)
        let wanted = VirtualServerKey.address(.tcp, IPAddress("10.96.0.4")!, port: 80)
        try ipvs.delete(owned)
        try ipvs.add(VirtualServer(wanted, scheduler: .weightedLeastConnection))

        try write(generatedCluster(services: 4, endpoints: 3), to: folder, as: "cluster.json")
        let desired = try Translator.translate(ManifestLoader.load(paths: [file]), node: node)
        let report = try syncer.sync(desired, options: SyncOptions(full: false))
        #expect(report.attempts == 2)
        #expect(!report.hasFailures)
        #expect(report.table.blocked.keys.sorted() == [wanted])
        // Everything else is as wanted, the vanished one made again; the stranger got none of our real servers.
        let table = Dictionary(uniqueKeysWithValues: try ipvs.table().map { ($0.server.key, $0) })
        for (key, want) in desired.virtualServers where key != wanted {
            #expect(Set(table[key]?.realServers.map(\.server) ?? []) == Set(want.realServers), "\(key)")
        }
        #expect(table[wanted]?.server.scheduler == .weightedLeastConnection)
        #expect(table[wanted]?.realServers.isEmpty == true)
        #expect(try syncer.ownership().virtualServers[wanted] == nil)
    }

    /// A socket that overflows (ENOBUFS) leaves a batch's outcome unknown: the sync fails, the syncer forgets
    /// the table it remembers, and the next sync reads the kernel's table in full instead of trusting memory.
    @Test func anOverflowedSocketMakesTheNextSyncReadTheTableInFull() throws {
        let (namespace, ipvs, syncer) = try syncerInFreshNamespace("enobufs")
        let folder = try temporaryFolder("enobufs")
        let file = try write(generatedCluster(services: 2000, endpoints: 1), to: folder, as: "cluster.json")
        let desired = try Translator.translate(ManifestLoader.load(paths: [file]), node: node)
        #expect(try !syncer.sync(desired).hasFailures)

        // Behind the syncer's back the table is flushed, so each of the 2,000 deletes an empty input plans
        // from memory is refused; the refusals overflow a receive buffer at the kernel's minimum size.
        try namespace.ipvs().flush()
        try ipvs.setReceiveBufferSize(1)
        #expect {
            try syncer.sync(DesiredState(), options: SyncOptions(full: false, allowEmpty: true))
        } throws: { error in
            (error as? IPVSError)?.errno == .noBufferSpace
        }

        try ipvs.setReceiveBufferSize(8 << 20)
        let report = try syncer.sync(DesiredState(), options: SyncOptions(full: false, allowEmpty: true))
        #expect(report.table.fullReads == 1)
        #expect(report.attempts == 1)
        #expect(report.table.operations.isEmpty)
        #expect(try ipvs.virtualServers().isEmpty)
        #expect(try syncer.ownership().virtualServers.isEmpty)
        #expect(try syncer.ownership().addresses.isEmpty)
    }

    /// `kill -9` in the middle of a large sync, then a new sync: the table converges, with nothing duplicated
    /// or leaked, and cleanup still removes everything owned.
    @Test func aSyncKilledHalfwayConvergesOnTheNextOne() throws {
        let namespace = try TestNamespace("kill")
        let proxy = try ProxyRun(namespace)
        let folder = try temporaryFolder("kill")
        try write(generatedCluster(services: 2000), to: folder, as: "cluster.json")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Tools.ipvsProxy)
        process.arguments = ["sync", "-f", folder, "--netns", namespace.path, "--state-dir", proxy.stateDirectory]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let ipvs = try namespace.ipvs()
        let interfaces = try namespace.interfaces()
        // Kill it once the kernel holds part of the table.
        _ = try eventually(timeoutSeconds: 60, every: 0.005) { try ipvs.virtualServers().count > 0 ? true : nil }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)
        // The kill landed mid-sync: the kernel holds part of what the sync was making, not all of it.
        let partial = try ipvs.table()
        let realServers = partial.reduce(0) { $0 + $1.realServers.count }
        let linkAtKill = try interfaces.link(named: "kube-ipvs0")
        let addresses = try interfaces.addresses().filter {
            $0.linkIndex == linkAtKill?.index && !$0.address.isLinkLocal
        }
        print("killed with \(partial.count) virtual servers, \(realServers) real servers, \(addresses.count) addresses")
        #expect(!partial.isEmpty)
        #expect(partial.count < 2000 || realServers < 20_000 || addresses.count < 2000, "the sync had finished")

        let again = try proxy.syncJSON(["-f", folder])
        #expect(again.status == 0, "\(again.result.error)")
        let table = try ipvs.table()
        #expect(table.count == 2000)
        #expect(Set(table.map(\.server.key)).count == 2000)
        #expect(table.allSatisfy { $0.realServers.count == 10 })
        let link = try #require(try namespace.interfaces().link(named: "kube-ipvs0"))
        let bound = try namespace.interfaces().addresses().filter {
            $0.linkIndex == link.index && !$0.address.isLinkLocal
        }
        #expect(bound.count == 2000)
        #expect(try proxy.syncJSON(["-f", folder]).summary["writeOperations"] as? Int == 0)

        #expect(try proxy("cleanup").status == 0)
        #expect(try ipvs.virtualServers().isEmpty)
        #expect(try namespace.interfaces().link(named: "kube-ipvs0") == nil)
    }
}
