import Foundation
import IPVS
import IPVSModel
import SystemPackage
import Testing

private let web = VirtualServerKey.address(.tcp, IPAddress("10.96.0.10")!, port: 80)
private let backendA = RealServer(IPAddress("10.244.1.5")!, port: 8080)
private let backendB = RealServer(IPAddress("10.244.2.6")!, port: 8080)

@Suite("IPVS handle against the kernel", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct IPVSHandleTests {
    @Test func reportsVersionAndConnectionTableSize() throws {
        let info = try TestNamespace("info").ipvs().info()
        #expect(info.version.description == "1.2.1")
        #expect(info.connectionTableSize == 4096)  // CONFIG_IP_VS_TAB_BITS=12
    }

    @Test func addGetDumpEditDeleteVirtualServer() throws {
        let namespace = try TestNamespace("vs")
        let ipvs = try namespace.ipvs()
        let server = VirtualServer(web, scheduler: .roundRobin)
        try ipvs.add(server)

        let got = try #require(try ipvs.virtualServer(web))
        #expect(got.server.scheduler == .roundRobin)
        #expect(got.server.flags.contains(.hashed))
        #expect(try ipvs.virtualServers().map(\.server.key) == [web])
        #expect(try namespace.ipvsadmRules() == ["-A -t 10.96.0.10:80 -s rr"])

        try ipvs.edit(VirtualServer(web, scheduler: .leastConnection))
        #expect(try ipvs.virtualServer(web)?.server.scheduler == .leastConnection)
        #expect(try namespace.ipvsadmRules() == ["-A -t 10.96.0.10:80 -s lc"])

        try ipvs.delete(web)
        #expect(try ipvs.virtualServer(web) == nil)
        #expect(try ipvs.virtualServers().isEmpty)
        #expect(try namespace.ipvsadmRules().isEmpty)
    }

    @Test func addEditDeleteRealServers() throws {
        let namespace = try TestNamespace("rs")
        let ipvs = try namespace.ipvs()
        try ipvs.add(VirtualServer(web))
        try ipvs.add(backendA, to: web)
        try ipvs.add(backendB, to: web)
        #expect(Set(try ipvs.realServers(of: web).map(\.server)) == [backendA, backendB])

        var heavier = backendA
        heavier.weight = 5
        heavier.upperThreshold = 100
        try ipvs.edit(heavier, in: web)
        let edited = try #require(try ipvs.realServers(of: web).first { $0.server.key == backendA.key })
        #expect(edited.server.weight == 5)
        #expect(edited.server.upperThreshold == 100)
        #expect(edited.activeConnections == 0)

        try ipvs.delete(backendB.key, from: web)
        #expect(try ipvs.realServers(of: web).map(\.server) == [heavier])
        let rules = try namespace.ipvsadmRules()
        #expect(rules == ipvsadmRules([(VirtualServer(web), [heavier])]))
    }

    @Test func ipv6UdpAndSctpServices() throws {
        let namespace = try TestNamespace("families")
        let ipvs = try namespace.ipvs()
        let dns6 = VirtualServerKey.address(.udp, IPAddress("fd00:10:96::a")!, port: 53)
        let diameter = VirtualServerKey.address(.sctp, IPAddress("10.96.0.20")!, port: 3868)
        let web6 = VirtualServerKey.address(.tcp, IPAddress("fd00:10:96::b")!, port: 443)
        let real6 = RealServer(IPAddress("fd00:244::5")!, port: 5353)
        let realSctp = RealServer(IPAddress("10.244.3.7")!, port: 3868, weight: 2)
        try ipvs.add(VirtualServer(dns6, scheduler: .sourceHashing))
        try ipvs.add(real6, to: dns6)
        try ipvs.add(VirtualServer(diameter))
        try ipvs.add(realSctp, to: diameter)
        try ipvs.add(VirtualServer(web6, scheduler: .maglevHashing, flags: [.schedulerFlag1, .schedulerFlag2]))

        let table = try ipvs.table()
        #expect(Set(table.map(\.server.key)) == [dns6, diameter, web6])
        #expect(table.first { $0.server.key == dns6 }?.realServers.map(\.server) == [real6])
        #expect(table.first { $0.server.key == diameter }?.realServers.map(\.server) == [realSctp])
        let maglev = try #require(table.first { $0.server.key == web6 }?.server)
        #expect(maglev.flags.isSuperset(of: [.schedulerFlag1, .schedulerFlag2]))
        #expect(maglev.persistenceNetmask == 128)
        let rules = try namespace.ipvsadmRules()
        #expect(
            rules
                == ipvsadmRules([
                    (VirtualServer(dns6, scheduler: .sourceHashing), [real6]),
                    (VirtualServer(diameter), [realSctp]),
                    (VirtualServer(web6, scheduler: .maglevHashing, flags: [.schedulerFlag1, .schedulerFlag2]), []),
                ]))
    }

    @Test func firewallMarkServices() throws {
        let namespace = try TestNamespace("fwmark")
        let ipvs = try namespace.ipvs()
        let mark4 = VirtualServerKey.firewallMark(7, family: .ipv4)
        let mark6 = VirtualServerKey.firewallMark(7, family: .ipv6)
        try ipvs.add(VirtualServer(mark4, scheduler: .weightedLeastConnection))
        try ipvs.add(VirtualServer(mark6))
        try ipvs.add(backendA, to: mark4)
        #expect(Set(try ipvs.virtualServers().map(\.server.key)) == [mark4, mark6])
        #expect(try ipvs.realServers(of: mark4).map(\.server) == [backendA])
        #expect(
            try namespace.ipvsadmRules()
                == ipvsadmRules([
                    (VirtualServer(mark4, scheduler: .weightedLeastConnection), [backendA]), (VirtualServer(mark6), []),
                ]))
        try ipvs.delete(mark4)
        #expect(try ipvs.virtualServers().map(\.server.key) == [mark6])
    }

    @Test func persistenceWithTimeoutAndNetmask() throws {
        let namespace = try TestNamespace("persist")
        let ipvs = try namespace.ipvs()
        let server = VirtualServer(web, persistenceTimeout: 10800)
        try ipvs.add(server)
        let got = try #require(try ipvs.virtualServer(web)?.server)
        #expect(got.flags.contains(.persistent))
        #expect(got.persistenceTimeout == 10800)
        #expect(try namespace.ipvsadmRules() == ["-A -t 10.96.0.10:80 -s rr -p 10800"])

        // A /24 client mask, in network byte order as the kernel keeps it.
        let subnet = VirtualServer(web, persistenceTimeout: 600, persistenceNetmask: UInt32(0xFFFF_FF00).bigEndian)
        try ipvs.edit(subnet)
        let edited = try #require(try ipvs.virtualServer(web)?.server)
        #expect(edited.persistenceTimeout == 600)
        #expect(edited.persistenceNetmask == UInt32(0xFFFF_FF00).bigEndian)
        #expect(try namespace.ipvsadmRules() == ["-A -t 10.96.0.10:80 -s rr -p 600 -M 255.255.255.0"])

        try ipvs.edit(VirtualServer(web))
        #expect(try ipvs.virtualServer(web)?.server.flags.contains(.persistent) == false)
    }

    @Test func everySchedulerTheKernelHasLoadsByName() throws {
        let namespace = try TestNamespace("sched")
        let ipvs = try namespace.ipvs()
        let release = try String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        for (index, scheduler) in Scheduler.known.enumerated() {
            let key = VirtualServerKey.address(.tcp, IPAddress("10.96.1.\(index + 1)")!, port: 80)
            let module = "/lib/modules/\(release)/kernel/net/netfilter/ipvs/\(scheduler.moduleName).ko"
            if FileManager.default.fileExists(atPath: module) {
                try ipvs.add(VirtualServer(key, scheduler: scheduler))
                #expect(try ipvs.virtualServer(key)?.server.scheduler == scheduler, "\(scheduler)")
            } else {
                // This kernel cannot load the module (twos arrived in Linux 6.2): ENOENT, said plainly.
                let error = try #require(throws: IPVSError.self) {
                    try ipvs.add(VirtualServer(key, scheduler: scheduler))
                }
                #expect(error.errno == .noSuchFileOrDirectory)
                #expect(error.description.contains("scheduler '\(scheduler)' is not available in this kernel"))
            }
        }
        #expect(Scheduler.known.count == 14)
    }

    @Test func kernelErrorsKeepTheirErrno() throws {
        let namespace = try TestNamespace("errno")
        let ipvs = try namespace.ipvs()
        let missing = VirtualServerKey.address(.tcp, IPAddress("10.96.9.9")!, port: 80)

        #expect(try errno { try ipvs.edit(VirtualServer(missing)) } == .noSuchProcess)
        #expect(try errno { try ipvs.delete(missing) } == .noSuchProcess)
        try ipvs.add(VirtualServer(web))
        #expect(try errno { try ipvs.add(VirtualServer(web)) } == .fileExists)
        try ipvs.add(backendA, to: web)
        #expect(try errno { try ipvs.add(backendA, to: web) } == .fileExists)
        #expect(try errno { try ipvs.edit(backendB, in: web) } == .noSuchFileOrDirectory)
        #expect(try errno { try ipvs.delete(backendB.key, from: web) } == .noSuchFileOrDirectory)
        #expect(try errno { try ipvs.add(backendA, to: missing) } == .noSuchProcess)
        // 0.0.0.0 is not a real server.
        #expect(try errno { try ipvs.add(RealServer(IPAddress("0.0.0.0")!, port: 80), to: web) } == .invalidArgument)
        // Weights are 0...INT_MAX.
        #expect(
            try errno { try ipvs.add(RealServer(IPAddress("10.244.9.9")!, port: 80, weight: -1), to: web) }
                == .outOfRange)
        // A real server dump of a missing service is empty, not an error.
        #expect(try ipvs.realServers(of: missing).isEmpty)
    }

    @Test func timeoutsCanBeReadAndSet() throws {
        let ipvs = try TestNamespace("timeouts").ipvs()
        let defaults = try ipvs.timeouts()
        #expect(defaults == IPVSTimeouts(tcp: 900, tcpFin: 120, udp: 300))
        try ipvs.setTimeouts(IPVSTimeouts(tcp: 3600, udp: 60))
        // tcpFin 0 leaves it as it was.
        #expect(try ipvs.timeouts() == IPVSTimeouts(tcp: 3600, tcpFin: 120, udp: 60))
    }

    @Test func flushEmptiesTheTable() throws {
        let namespace = try TestNamespace("flush")
        let ipvs = try namespace.ipvs()
        try ipvs.add(VirtualServer(web))
        try ipvs.add(backendA, to: web)
        try ipvs.add(VirtualServer(.firewallMark(3, family: .ipv4)))
        try ipvs.flush()
        #expect(try ipvs.table().isEmpty)
        #expect(try namespace.ipvsadmRules().isEmpty)
    }

    @Test func realTrafficIsCountedAndZeroCountersResetsIt() throws {
        let lab = try TrafficLab(backends: 1)
        let ipvs = try lab.node.ipvs()
        try lab.node.ip("addr", "add", "10.96.0.10/32", "dev", "lo")
        let server = try ReplyServer(
            in: lab.backends[0], address: lab.backendAddress(0), port: 8080, reply: "backend-0")
        try ipvs.add(VirtualServer(web))
        try ipvs.add(RealServer(lab.backendAddress(0), port: 8080), to: web)

        #expect(try request(from: lab.client, to: IPAddress("10.96.0.10")!, port: 80) == "backend-0")
        // The kernel folds its per-CPU counters into the totals it reports every 2 seconds, and a fold can
        // fall between the connection's first packet and its last: wait for the whole exchange (a loaded VM
        // once saw the connection and 1 packet).
        let before = try #require(
            try eventually(timeoutSeconds: 10) {
                try ipvs.virtualServer(web).flatMap {
                    $0.statistics.connections > 0 && $0.statistics.incomingPackets >= 3 ? $0 : nil
                }
            })
        #expect(before.statistics.connections == 1)
        #expect(before.statistics.incomingPackets >= 3)
        #expect(try ipvs.realServers(of: web).first?.statistics.connections == 1)

        try ipvs.zeroCounters(of: web)
        #expect(try ipvs.virtualServer(web)?.statistics.connections == 0)
        #expect(try ipvs.realServers(of: web).first?.statistics.connections == 0)
        withExtendedLifetime(server) {}
    }

    @Test func handlesInDifferentNamespacesSeeTheirOwnTables() throws {
        let first = try TestNamespace("ns-a")
        let second = try TestNamespace("ns-b")
        try first.ipvs().add(VirtualServer(web))
        #expect(try second.ipvs().virtualServers().isEmpty)
        #expect(try first.ipvs().virtualServers().count == 1)
        #expect(try second.ipvsadmRules().isEmpty)
    }

    @Test func openingAMissingNamespaceFailsWithENOENT() {
        let error = #expect(throws: IPVSError.self) { try IPVSHandle(networkNamespace: "no-such-namespace") }
        #expect(error?.errno == .noSuchFileOrDirectory)
        #expect(error?.description.contains("/var/run/netns/no-such-namespace") == true)
        #expect(throws: IPVSError.self) { try IPVSHandle(networkNamespacePath: "/proc/self/status") }
    }
}

/// The errno of the kernel error `body` throws.
func errno(_ body: () throws -> Void) throws -> Errno? {
    do {
        try body()
        return nil
    } catch let error as IPVSError {
        return error.errno
    }
}
