import CNetlink
import IPVSModel
import Testing

@testable import IPVS

/// Builds a GET_SERVICE reply the way the kernel's ip_vs_genl_fill_service does.
private func serviceReply(
    family: UInt16 = 2, fwmark: UInt32? = nil, transportProtocol: UInt16 = 6, address: [UInt8] = [10, 0, 0, 1],
    port: UInt16 = 80, scheduler: String? = "wrr", flags: UInt32 = 0x3, timeout: UInt32 = 300,
    netmask: UInt32 = 0xFFFF_FFFF, stats64: Bool = true
) -> [UInt8] {
    var message = NetlinkMessageBuilder(type: 0x20, flags: 2, command: 1)
    message.beginNest(1)
    message.u16(1, family)
    if let fwmark {
        message.u32(5, fwmark)
    } else {
        message.u16(2, transportProtocol)
        message.attribute(3, address + [UInt8](repeating: 0, count: 16 - address.count))
        message.u16(4, port.bigEndian)
    }
    if let scheduler { message.string(6, scheduler) }
    message.string(11, "")
    message.attribute(7, withUnsafeBytes(of: flags.littleEndian, Array.init) + [0xFF, 0xFF, 0xFF, 0xFF])
    message.u32(8, timeout)
    message.u32(9, netmask)
    message.beginNest(10)  // 32-bit stats: u32 counters, u64 byte counts
    message.u32(1, 5)
    message.u64(4, 1000)
    message.endNest()
    if stats64 {
        message.beginNest(12)
        message.u64(1, 1 << 33)
        message.u64(2, 12)
        message.u64(3, 11)
        message.u64(4, 4000)
        message.u64(5, 3000)
        message.u64(6, 2)
        message.endNest()
    }
    message.endNest()
    return message.message
}

private func destinationReply(
    address: [UInt8] = [10, 244, 1, 5], family: UInt16? = 2, port: UInt16 = 8080, weight: UInt32 = 1,
    active: UInt32 = 3, inactive: UInt32 = 4, omitWeight: Bool = false
) -> [UInt8] {
    var message = NetlinkMessageBuilder(type: 0x20, flags: 2, command: 5)
    message.beginNest(2)
    message.attribute(1, address + [UInt8](repeating: 0, count: 16 - address.count))
    message.u16(2, port.bigEndian)
    message.u32(3, 0)
    if !omitWeight { message.u32(4, weight) }
    message.u32(5, 0)
    message.u32(6, 0)
    message.u32(7, active)
    message.u32(8, inactive)
    message.u32(9, 1)
    if let family { message.u16(11, family) }
    message.beginNest(12)
    message.u64(1, 9)
    message.endNest()
    message.endNest()
    return message.message
}

private func parseService(_ bytes: [UInt8]) -> (Int32, cnetlink_service_entry) {
    var entry = cnetlink_service_entry()
    let result = cnetlink_ipvs_parse_service(bytes, bytes.count, &entry)
    return (result, entry)
}

private func parseDestination(_ bytes: [UInt8]) -> (Int32, cnetlink_destination_entry) {
    var entry = cnetlink_destination_entry()
    let result = cnetlink_ipvs_parse_destination(bytes, bytes.count, &entry)
    return (result, entry)
}

@Suite("Parsing IPVS replies", .timeLimit(.minutes(2)))
struct ReplyParsingTests {
    @Test func serviceReplyBecomesATypedVirtualServer() throws {
        let (result, entry) = parseService(serviceReply())
        #expect(result == 0)
        let state = VirtualServerState(entry)
        #expect(state.server.key == .address(.tcp, IPAddress("10.0.0.1")!, port: 80))
        #expect(state.server.scheduler == .weightedRoundRobin)
        #expect(state.server.flags == [.persistent, .hashed])
        #expect(state.server.persistenceTimeout == 300)
        #expect(state.server.persistenceNetmask == 0xFFFF_FFFF)
        // STATS64 wins over the 32-bit set when both are present.
        #expect(state.statistics.connections == 1 << 33)
        #expect(state.statistics.incomingBytes == 4000)
        #expect(state.statistics.connectionRate == 2)
    }

    @Test func olderKernelsWithoutStats64StillGiveCounters() {
        let (result, entry) = parseService(serviceReply(stats64: false))
        #expect(result == 0)
        #expect(entry.stats.connections == 5)
        #expect(entry.stats.incoming_bytes == 1000)
    }

    @Test func ipv6ServiceReply() {
        let address: [UInt8] = [0xfd, 0, 0, 0x10, 0, 0x96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a]
        let (result, entry) = parseService(
            serviceReply(family: 10, transportProtocol: 132, address: address, port: 3868))
        #expect(result == 0)
        #expect(VirtualServerKey(entry.service.key) == .address(.sctp, IPAddress("fd00:10:96::a")!, port: 3868))
    }

    @Test func firewallMarkServiceReply() {
        let (result, entry) = parseService(serviceReply(family: 10, fwmark: 42))
        #expect(result == 0)
        #expect(VirtualServerKey(entry.service.key) == .firewallMark(42, family: .ipv6))
    }

    @Test func serviceReplyWithoutSchedulerIsMalformed() {
        #expect(parseService(serviceReply(scheduler: nil)).0 == -Int32(CNETLINK_EBADREPLY))
    }

    @Test func truncatedReplyIsMalformed() {
        let bytes = serviceReply()
        #expect(parseService(Array(bytes.prefix(bytes.count - 8))).0 == -Int32(CNETLINK_EBADREPLY))
        #expect(parseService(Array(bytes.prefix(10))).0 == -Int32(CNETLINK_EBADREPLY))
    }

    /// Found by fuzzing (Tests/Fuzz/Crashes/netlink-reply): a counter attribute without payload was read past
    /// the end of the message.
    @Test func aStatsCounterWithoutPayloadIsIgnored() {
        var message = NetlinkMessageBuilder(type: 0x20, flags: 2, command: 1)
        message.beginNest(1)
        message.u16(1, 2)
        message.u16(2, 6)
        message.attribute(3, [10, 0, 0, 1] + [UInt8](repeating: 0, count: 12))
        message.u16(4, UInt16(80).bigEndian)
        message.string(6, "rr")
        message.attribute(7, [UInt8](repeating: 0, count: 8))
        message.u32(8, 0)
        message.u32(9, 0xFFFF_FFFF)
        message.beginNest(10)
        message.u32(2, 7)
        message.attribute(1, [])  // CONNS with no payload, last in the message
        message.endNest()
        message.endNest()
        let (result, entry) = parseService(message.message)
        #expect(result == 0)
        #expect(entry.stats.connections == 0)
        #expect(entry.stats.incoming_packets == 7)
    }

    @Test func destinationReplyBecomesATypedRealServer() {
        let (result, entry) = parseDestination(destinationReply(weight: 7))
        #expect(result == 0)
        let state = RealServerState(entry)
        #expect(state.server.key == RealServerKey(IPAddress("10.244.1.5")!, port: 8080))
        #expect(state.server.weight == 7)
        #expect(state.server.forwardingMethod == .masquerade)
        #expect(state.activeConnections == 3)
        #expect(state.inactiveConnections == 4)
        #expect(state.persistentConnections == 1)
        #expect(state.statistics.connections == 9)
        #expect(state.hasConnections)
    }

    @Test func destinationWithoutWeightIsMalformed() {
        #expect(parseDestination(destinationReply(omitWeight: true)).0 == -Int32(CNETLINK_EBADREPLY))
    }

    @Test func aServiceMessageIsNotADestination() {
        #expect(parseDestination(serviceReply()).0 == -Int32(CNETLINK_EBADREPLY))
    }
}
