import CNetlink
import IPVSModel
import Testing

@testable import IPVS

// Numbers from the kernel's include/uapi/linux/ip_vs.h, written out here so these tests check the ABI
// independently of the shim's own use of the header.
private enum Command {
    static let newService: UInt8 = 1, setService: UInt8 = 2, deleteService: UInt8 = 3
    static let newDestination: UInt8 = 5, setDestination: UInt8 = 6, deleteDestination: UInt8 = 7
}
private enum CommandAttribute { static let service: UInt16 = 1, destination: UInt16 = 2 }
private enum ServiceAttribute {
    static let family: UInt16 = 1, transportProtocol: UInt16 = 2, address: UInt16 = 3, port: UInt16 = 4
    static let fwmark: UInt16 = 5, scheduler: UInt16 = 6, flags: UInt16 = 7, timeout: UInt16 = 8
    static let netmask: UInt16 = 9
}
private enum DestinationAttribute {
    static let address: UInt16 = 1, port: UInt16 = 2, forwarding: UInt16 = 3, weight: UInt16 = 4
    static let upperThreshold: UInt16 = 5, lowerThreshold: UInt16 = 6, family: UInt16 = 11
}

private let familyID: UInt16 = 0x1234
private let NLM_F_REQUEST: UInt16 = 1
private let NLM_F_ACK: UInt16 = 4

private func encode(_ operation: TableOperation, sequence: UInt32 = 77, flags: UInt16 = 0) throws -> DecodedMessage {
    var cOperation = operation.cOperation
    var buffer = [UInt8](repeating: 0, count: 1024)
    let length = cnetlink_ipvs_encode_operation(&cOperation, familyID, sequence, flags, &buffer, buffer.count)
    try #require(length > 0)
    let message = DecodedMessage(Array(buffer.prefix(Int(length))))
    #expect(message.length == UInt32(length))
    return message
}

@Suite("Encoding IPVS requests", .timeLimit(.minutes(2)))
struct MessageEncodingTests {
    let web = VirtualServerKey.address(.tcp, IPAddress("10.96.0.10")!, port: 80)

    @Test func addVirtualServerCarriesEverySettingTheKernelRequires() throws {
        let server = VirtualServer(web, scheduler: .sourceHashing, flags: [.schedulerFlag1], persistenceTimeout: 600)
        let message = try encode(.addVirtualServer(server), sequence: 42, flags: NLM_F_ACK)

        #expect(message.type == familyID)
        #expect(message.flags == NLM_F_REQUEST | NLM_F_ACK)
        #expect(message.sequence == 42)
        #expect(message.command == Command.newService)
        #expect(message.version == 1)
        let service = try #require(message.attributes[CommandAttribute.service]).nested
        #expect(service[ServiceAttribute.family]?.u16 == 2)  // AF_INET
        #expect(service[ServiceAttribute.transportProtocol]?.u16 == 6)
        // The address is 16 bytes (union nf_inet_addr) with IPv4 in the first four.
        #expect(service[ServiceAttribute.address]?.payload == [10, 96, 0, 10] + [UInt8](repeating: 0, count: 12))
        // Ports are big-endian on the wire: 80 is 0x00 0x50.
        #expect(service[ServiceAttribute.port]?.payload == [0x00, 0x50])
        #expect(service[ServiceAttribute.scheduler]?.string == "sh")
        // struct ip_vs_flags { flags, mask }: persistent (0x1) and sched1 (0x8), every bit masked.
        #expect(service[ServiceAttribute.flags]?.payload == [0x09, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(service[ServiceAttribute.timeout]?.u32 == 600)
        #expect(service[ServiceAttribute.netmask]?.u32 == 0xFFFF_FFFF)
        #expect(service[ServiceAttribute.fwmark] == nil)
        #expect(message.attributes[CommandAttribute.destination] == nil)
    }

    @Test func theKernelOwnedHashedFlagIsNeverSent() throws {
        let server = VirtualServer(web, flags: [.hashed, .onePacket])
        let service = try #require(try encode(.editVirtualServer(server)).attributes[CommandAttribute.service]).nested
        #expect(service[ServiceAttribute.flags]?.payload.prefix(4) == [0x04, 0, 0, 0])
    }

    @Test func editVirtualServerUsesSetService() throws {
        let message = try encode(.editVirtualServer(VirtualServer(web, scheduler: .leastConnection)))
        #expect(message.command == Command.setService)
        #expect(message.attributes[CommandAttribute.service]?.nested[ServiceAttribute.scheduler]?.string == "lc")
    }

    @Test func deleteVirtualServerSendsOnlyTheKey() throws {
        let message = try encode(.deleteVirtualServer(web))
        #expect(message.command == Command.deleteService)
        let service = try #require(message.attributes[CommandAttribute.service]).nested
        #expect(
            Set(service.keys) == [
                ServiceAttribute.family, ServiceAttribute.transportProtocol,
                ServiceAttribute.address, ServiceAttribute.port,
            ])
    }

    @Test func ipv6VirtualServerUsesPrefixLengthNetmask() throws {
        let key = VirtualServerKey.address(.udp, IPAddress("fd00:10:96::a")!, port: 53)
        let service = try #require(
            try encode(.addVirtualServer(VirtualServer(key))).attributes[CommandAttribute.service]
        ).nested
        #expect(service[ServiceAttribute.family]?.u16 == 10)  // AF_INET6
        #expect(service[ServiceAttribute.transportProtocol]?.u16 == 17)
        #expect(
            service[ServiceAttribute.address]?.payload == [0xfd, 0, 0, 0x10, 0, 0x96] + [UInt8](repeating: 0, count: 9)
                + [0x0a])
        #expect(service[ServiceAttribute.netmask]?.u32 == 128)
    }

    @Test func firewallMarkServiceSendsTheMarkInsteadOfAddress() throws {
        let key = VirtualServerKey.firewallMark(7, family: .ipv4)
        let service = try #require(
            try encode(.addVirtualServer(VirtualServer(key, scheduler: .weightedLeastConnection)))
                .attributes[CommandAttribute.service]
        ).nested
        #expect(service[ServiceAttribute.fwmark]?.u32 == 7)
        #expect(service[ServiceAttribute.address] == nil)
        #expect(service[ServiceAttribute.port] == nil)
        #expect(service[ServiceAttribute.transportProtocol] == nil)
    }

    @Test func addRealServerCarriesServiceKeyAndFullDestination() throws {
        let real = RealServer(
            IPAddress("10.244.1.5")!, port: 8080, weight: 3, forwardingMethod: .directRoute,
            upperThreshold: 100, lowerThreshold: 10)
        let message = try encode(.addRealServer(real, to: web))
        #expect(message.command == Command.newDestination)
        let service = try #require(message.attributes[CommandAttribute.service]).nested
        #expect(service[ServiceAttribute.scheduler] == nil)  // a key only
        #expect(service[ServiceAttribute.port]?.payload == [0x00, 0x50])
        let destination = try #require(message.attributes[CommandAttribute.destination]).nested
        #expect(destination[DestinationAttribute.address]?.payload.prefix(4) == [10, 244, 1, 5])
        #expect(destination[DestinationAttribute.port]?.payload == [0x1F, 0x90])  // 8080
        #expect(destination[DestinationAttribute.forwarding]?.u32 == 3)
        #expect(destination[DestinationAttribute.weight]?.u32 == 3)
        #expect(destination[DestinationAttribute.upperThreshold]?.u32 == 100)
        #expect(destination[DestinationAttribute.lowerThreshold]?.u32 == 10)
        #expect(destination[DestinationAttribute.family]?.u16 == 2)
    }

    @Test func editRealServerUsesSetDestination() throws {
        let real = RealServer(IPAddress("10.244.1.5")!, port: 8080, weight: 0)
        let message = try encode(.editRealServer(real, in: web))
        #expect(message.command == Command.setDestination)
        #expect(message.attributes[CommandAttribute.destination]?.nested[DestinationAttribute.weight]?.u32 == 0)
    }

    @Test func deleteRealServerSendsOnlyAddressPortAndFamily() throws {
        let message = try encode(.deleteRealServer(RealServerKey(IPAddress("10.244.1.5")!, port: 8080), from: web))
        #expect(message.command == Command.deleteDestination)
        let destination = try #require(message.attributes[CommandAttribute.destination]).nested
        #expect(
            Set(destination.keys) == [
                DestinationAttribute.address, DestinationAttribute.port, DestinationAttribute.family,
            ])
    }

    @Test func tooSmallABufferIsRefused() {
        var cOperation = TableOperation.addVirtualServer(VirtualServer(web)).cOperation
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(cnetlink_ipvs_encode_operation(&cOperation, familyID, 1, 0, &buffer, buffer.count) == -90)  // EMSGSIZE
    }

    @Test func unknownOperationKindIsRefused() {
        var cOperation = cnetlink_operation()
        cOperation.kind = 99
        var buffer = [UInt8](repeating: 0, count: 512)
        #expect(cnetlink_ipvs_encode_operation(&cOperation, familyID, 1, 0, &buffer, buffer.count) == -22)  // EINVAL
    }
}
