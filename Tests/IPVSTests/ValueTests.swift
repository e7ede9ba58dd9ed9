import CNetlink
import KernelShim
import NetfilterModel
import SystemPackage
import Testing

@testable import IPVS
@testable import IPVSModel
@testable import Netfilter

@Suite("IP addresses", .timeLimit(.minutes(2)))
struct IPAddressTests {
    @Test(arguments: ["10.96.0.1", "0.0.0.0", "255.255.255.255", "192.0.2.10"])
    func ipv4RoundTrips(_ text: String) throws {
        let address = try #require(IPAddress(text))
        #expect(address.family == .ipv4)
        #expect(address.description == text)
        #expect(IPAddress(family: .ipv4, bytes: address.bytes) == address)
    }

    @Test(arguments: [
        ("fd00:10:96::a", "fd00:10:96::a"), ("FD00::0001", "fd00::1"), ("::1", "::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
    ])
    func ipv6ParsesAndPrintsCanonically(_ text: String, _ canonical: String) throws {
        let address = try #require(IPAddress(text))
        #expect(address.family == .ipv6)
        #expect(address.description == canonical)
        #expect(address.bytes.count == 16)
    }

    @Test(arguments: [
        "", "10.0.0", "10.0.0.0.1", "256.1.1.1", "10.01.0.1", "10.0.0.-1", "1.2.3.4 ", "fd00::g",
        "fd00:::1", "10.0.0.1/32", "localhost", "1..2.3",
    ])
    func rejectsInvalidText(_ text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func classifiesSpecialAddresses() throws {
        #expect(try #require(IPAddress("127.0.0.53")).isLoopback)
        #expect(try #require(IPAddress("::1")).isLoopback)
        #expect(try #require(IPAddress("224.0.0.1")).isMulticast)
        #expect(try #require(IPAddress("ff02::1")).isMulticast)
        #expect(try #require(IPAddress("fe80::1")).isLinkLocal)
        #expect(try #require(IPAddress("0.0.0.0")).isUnspecified)
        #expect(!(try #require(IPAddress("10.0.0.1")).isLoopback))
    }

    @Test func ordersIPv4BeforeIPv6AndNumerically() throws {
        let addresses = ["fd00::1", "10.0.0.10", "10.0.0.9", "::1"].compactMap(IPAddress.init)
        #expect(addresses.sorted().map(\.description) == ["10.0.0.9", "10.0.0.10", "::1", "fd00::1"])
    }
}

@Suite("Schedulers, protocols, flags", .timeLimit(.minutes(2)))
struct ValueTests {
    @Test func everyKernelSchedulerNameIsAccepted() throws {
        for name in ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"] {
            #expect(try Scheduler(validating: name).rawValue == name)
        }
    }

    @Test func unknownSchedulerIsRejectedWithTheValidNames() {
        #expect(throws: UnknownSchedulerError.self) { try Scheduler(validating: "fastest") }
        let error = UnknownSchedulerError(name: "fastest")
        #expect(error.description.contains("'fastest'"))
        #expect(error.description.contains("rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos"))
    }

    @Test func protocolNamesParseInAnyCase() {
        #expect(TransportProtocol(name: "TCP") == .tcp)
        #expect(TransportProtocol(name: "udp") == .udp)
        #expect(TransportProtocol(name: "Sctp") == .sctp)
        #expect(TransportProtocol(name: "ICMP") == nil)
        #expect(TransportProtocol(name: "TCPX") == nil)
    }

    @Test func persistenceTimeoutImpliesThePersistentFlag() {
        let key = VirtualServerKey.address(.tcp, IPAddress("10.0.0.1")!, port: 80)
        #expect(VirtualServer(key, persistenceTimeout: 10800).flags == .persistent)
        #expect(VirtualServer(key).flags.isEmpty)
        #expect(VirtualServer(.address(.tcp, IPAddress("fd00::1")!, port: 80)).persistenceNetmask == 128)
    }

    @Test func keysDescribeThemselvesLikeIpvsadm() {
        #expect(VirtualServerKey.address(.udp, IPAddress("fd00::a")!, port: 53).description == "UDP [fd00::a]:53")
        #expect(VirtualServerKey.firewallMark(5, family: .ipv4).description == "FWM 5")
        #expect(RealServerKey(IPAddress("10.0.0.2")!, port: 8080).description == "10.0.0.2:8080")
    }

    @Test func versionDecodesTheKernelsEncoding() {
        #expect(IPVSVersion(encoded: 0x010201).description == "1.2.1")
    }
}

@Suite("Errors", .timeLimit(.minutes(2)))
struct ErrorTests {
    @Test func shimCodesBecomeReasons() {
        #expect(IPVSError(operation: "x", ShimError(rawValue: -17)).errno == .fileExists)
        #expect(IPVSError(operation: "x", ShimError(rawValue: -3)).errno == .noSuchProcess)
        #expect(IPVSError(operation: "x", ShimError(rawValue: -2)).errno == .noSuchFileOrDirectory)
        #expect(IPVSError(operation: "x", ShimError(rawValue: -0x10001)).reason == .ipvsUnavailable)
        #expect(IPVSError(operation: "x", ShimError(rawValue: -0x10002)).reason == .malformedReply)
        #expect(IPVSError(operation: "x", ShimError(rawValue: -Int32(CNETLINK_EDUMPINTR))).reason == .dumpInterrupted)
        // libnl's NLE_OBJ_NOTFOUND is 12, like ENOMEM: it must not turn into ENOMEM.
        #expect(IPVSError(operation: "x", ShimError(rawValue: -(0x20000 + 12))).reason == .netlinkLibrary(code: 12))
        #expect(IPVSError(operation: "x", ShimError(rawValue: -12)).errno == .noMemory)
    }

    @Test func netfilterDecodesTheShimsOwnCodes() {
        #expect(
            NetfilterError(operation: "x", ShimError(rawValue: -Int32(CNETLINK_EDUMPINTR))).reason == .dumpInterrupted)
        #expect(
            NetfilterError(operation: "x", ShimError(rawValue: -Int32(CNETLINK_EBADREPLY))).reason == .malformedReply)
        #expect(NetfilterError(operation: "x", ShimError(rawValue: -2)).errno == .noSuchFileOrDirectory)
        let error = NetfilterError(operation: "dump conntrack entries", ShimError(rawValue: -Int32(CNETLINK_EDUMPINTR)))
        #expect(error.description.hasPrefix("dump conntrack entries: the kernel's table kept changing"))
    }

    @Test func anInterruptedDumpSaysSo() {
        let error = IPVSError(operation: "list addresses", reason: .dumpInterrupted)
        #expect(error.description.hasPrefix("list addresses: the kernel's table kept changing"))
        #expect(error.errno == nil)
    }

    @Test func missingIPVSSaysSo() {
        let error = IPVSError(operation: "open IPVS netlink socket", reason: .ipvsUnavailable)
        #expect(error.description.contains("IPVS is not available"))
        #expect(error.description.contains("ip_vs"))
    }

    @Test func missingSchedulerModuleIsNamed() {
        let error = IPVSError(
            operation: "add-virtual-server TCP 10.0.0.1:80 scheduler twos",
            reason: .kernel(.noSuchFileOrDirectory), scheduler: .weightedRandomTwosChoice)
        #expect(error.description.contains("scheduler 'twos' is not available in this kernel"))
        #expect(error.description.contains("ip_vs_twos"))
    }

    @Test func errnoNamesAppearInMessages() {
        let error = IPVSError(operation: "delete-virtual-server TCP 10.0.0.1:80", reason: .kernel(.noSuchProcess))
        #expect(error.description.hasSuffix("(ESRCH)"))
    }
}

@Suite("Server states", .timeLimit(.minutes(2)))
struct ServerStateTests {
    /// Statistics are kept out of line (and not at all while zero): what is set is what is read, and two states
    /// with the same counters are equal and hash alike however they were made.
    @Test func statisticsReadBackAndCompareByValue() {
        let real = RealServer(IPAddress("10.0.0.1")!, port: 80)
        var counted = Statistics()
        counted.connections = 7
        counted.incomingBytes = 1 << 40
        var a = RealServerState(server: real, activeConnections: 1)
        a.statistics = counted
        let b = RealServerState(server: real, activeConnections: 1, statistics: counted)
        #expect(a.statistics == counted)
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        a.statistics = Statistics()
        #expect(a != b)
        #expect(a == RealServerState(server: real, activeConnections: 1))
        let key = VirtualServerKey.address(.tcp, IPAddress("10.96.0.1")!, port: 80)
        var virtual = VirtualServerState(server: VirtualServer(key), statistics: counted)
        #expect(virtual.statistics.connections == 7)
        virtual.statistics.connections += 1
        #expect(virtual.statistics.connections == 8)
        #expect(virtual.statistics.incomingBytes == 1 << 40)
    }
}
