import CNetlink
import Foundation
import InterfaceModel
import KernelShim
import SystemPackage
import Testing

@testable import Interfaces

extension RouteMessages {
    static let newRoute: UInt16 = 24  // RTM_NEWROUTE
    static let deleteRoute: UInt16 = 25  // RTM_DELROUTE
    static let getRoute: UInt16 = 26  // RTM_GETROUTE
    static let noop: UInt16 = 1  // NLMSG_NOOP
    static let request: UInt16 = 0x1  // NLM_F_REQUEST
    static let acknowledge: UInt16 = 0x4  // NLM_F_ACK
    static let exclusive: UInt16 = 0x200  // NLM_F_EXCL
    static let create: UInt16 = 0x400  // NLM_F_CREATE

    /// An RTM_NEWROUTE entry of a dump as the kernel writes one (`rtm_fill_info`): rtmsg, RTA_TABLE, RTA_DST (left out
    /// for a default route), RTA_PREFSRC for an address's own route, RTA_OIF.
    static func route(
        _ destination: [UInt8], prefixLength: UInt8, family: UInt8? = nil, type: UInt8 = 2, protocol: UInt8 = 166,
        scope: UInt8 = 254, table: UInt32 = 255, link: UInt32? = 7, source: [UInt8]? = nil, sequence: UInt32,
        flags: UInt16 = multipart
    ) -> [UInt8] {
        let family = family ?? (destination.count == 16 ? 10 : 2)
        // A table above 255 is RT_TABLE_COMPAT (252) in the header.
        let headerTable = table <= 255 ? UInt8(table) : 252
        var message = NetlinkMessageBuilder(
            type: newRoute, flags: flags, sequence: sequence,
            header: [family, prefixLength, 0, 0, headerTable, `protocol`, scope, type, 0, 0, 0, 0])
        message.u32(15, table)  // RTA_TABLE
        if prefixLength != 0 || !destination.isEmpty { message.attribute(1, destination) }  // RTA_DST
        if let source { message.attribute(7, source) }  // RTA_PREFSRC
        if let link { message.u32(4, link) }  // RTA_OIF
        return message.message
    }
}

/// Routes of the local table: the requests the shim builds (byte by byte), the dumps it reads (kept to the local
/// table, read again when interrupted, refused when malformed), and batches of changes with their refusals, against
/// a fake kernel on a socket pair.
@Suite("Local routes", .timeLimit(.minutes(2)))
struct LocalRouteTests {
    typealias M = RouteMessages

    private static let serviceRange = IPNetwork("10.96.0.0/12")!
    private static let serviceRangeIPv6 = IPNetwork("fd00:10:96::/108")!
    private static let externalIP = IPNetwork("192.0.2.10/32")!

    private func entry(_ network: IPNetwork, link: Int32 = 7, protocol: UInt8 = 166) -> cnetlink_route_entry {
        var entry = cnetlink_route_entry()
        entry.family = network.family.rawValue
        entry.prefix_length = network.prefixLength
        entry.protocol = `protocol`
        entry.link_index = link
        network.address.copy(into: &entry.destination)
        return entry
    }

    private func encode(add: Bool, _ entry: cnetlink_route_entry, sequence: UInt32 = 9, capacity: Int = 256)
        -> (code: Int32, bytes: [UInt8])
    {
        var entry = entry
        var buffer = [UInt8](repeating: 0, count: capacity)
        let code = cnetlink_route_encode_local_route(add ? 1 : 0, &entry, sequence, &buffer, buffer.count)
        return (code, Array(buffer.prefix(max(0, Int(code)))))
    }

    // MARK: - Building

    @Test func anAddedRangeIsALocalRouteOfTheLocalTableWithOurProtocol() {
        let (code, message) = encode(add: true, entry(Self.serviceRange))
        #expect(code == 52)
        // nlmsghdr: length 52, RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE (not NLM_F_EXCL: see the next test),
        // sequence 9.
        #expect(message[0..<8] == [52, 0, 0, 0, 24, 0, 0x01, 0x04])
        #expect(message[8..<12] == [9, 0, 0, 0])
        // rtmsg: AF_INET, /12, no source, tos 0, table local, protocol 166, scope host, type local, no flags.
        #expect(message[16..<28] == [2, 12, 0, 0, 255, 166, 254, 2, 0, 0, 0, 0])
        let attributes = DecodedAttribute.parse(message[28...])
        #expect(attributes[1]?.payload == [10, 96, 0, 0])  // RTA_DST
        #expect(attributes[15]?.u32 == 255)  // RTA_TABLE
        #expect(attributes[4]?.u32 == 7)  // RTA_OIF
        #expect(attributes.count == 3)
    }

    @Test func anAddIsNotExclusiveSoThatAHostRouteFitsBesideABoundAddresssOwn() {
        // With NLM_F_EXCL the kernel refuses a /32 whose key (prefix, tos, priority) an address's own route has,
        // whatever the protocol; without it, only an identical route is EEXIST.
        let (_, message) = encode(add: true, entry(Self.externalIP))
        let flags = UInt16(message[6]) | UInt16(message[7]) << 8
        #expect(flags & M.exclusive == 0)
        #expect(flags & M.create == M.create)
        #expect(flags & M.acknowledge == 0)  // a batch: only refusals are answered
    }

    @Test func aDeletedIPv6RangeNamesItsProtocolAndLinkSoOnlyOursMatches() {
        let (code, message) = encode(add: false, entry(Self.serviceRangeIPv6, link: 12))
        #expect(code == 64)
        #expect(message[4..<8] == [25, 0, 0x01, 0x00])  // RTM_DELROUTE, NLM_F_REQUEST alone
        #expect(message[16..<28] == [10, 108, 0, 0, 255, 166, 254, 2, 0, 0, 0, 0])
        let attributes = DecodedAttribute.parse(message[28...])
        #expect(attributes[1]?.payload == Self.serviceRangeIPv6.address.bytes)
        #expect(attributes[4]?.u32 == 12)
    }

    @Test(arguments: [
        (family: UInt16(0), prefixLength: UInt8(32)),  // AF_UNSPEC
        (family: UInt16(2), prefixLength: UInt8(33)),
        (family: UInt16(10), prefixLength: UInt8(129)),
    ])
    func aRouteThatIsNoNetworkIsRefusedBeforeSending(family: UInt16, prefixLength: UInt8) {
        var bad = entry(Self.externalIP)
        bad.family = family
        bad.prefix_length = prefixLength
        #expect(encode(add: true, bad).code == -EINVAL)
    }

    @Test func aBufferTooSmallIsMessageSize() {
        #expect(encode(add: true, entry(Self.serviceRange), capacity: 40).code == -EMSGSIZE)
    }

    // MARK: - Parsing

    private func parse(_ message: [UInt8]) -> (code: Int32, route: cnetlink_route_entry) {
        var route = cnetlink_route_entry()
        let code = cnetlink_route_parse_route(message, message.count, &route)
        return (code, route)
    }

    @Test func anAddresssOwnRouteReadsWithItsTypeProtocolScopeAndLink() {
        let (code, route) = parse(
            M.route(
                [10, 96, 0, 1], prefixLength: 32, protocol: 2, link: 3, source: [10, 96, 0, 1], sequence: 1, flags: 0))
        #expect(code == 0)
        #expect(route.family == 2)
        #expect(route.prefix_length == 32)
        #expect(route.type == 2)
        #expect(route.protocol == 2)
        #expect(route.scope == 254)
        #expect(route.table == 255)
        #expect(route.link_index == 3)
        #expect(
            withUnsafeBytes(of: route.destination) { Array($0) } == [10, 96, 0, 1] + Array(repeating: 0, count: 12))
    }

    @Test func aTableAbove255IsReadFromItsAttribute() {
        let (code, route) = parse(M.route([10, 0, 0, 0], prefixLength: 8, type: 1, table: 1000, sequence: 1))
        #expect(code == 0)
        #expect(route.table == 1000)
    }

    @Test func aDefaultRouteHasNoDestinationAttribute() {
        let (code, route) = parse(M.route([], prefixLength: 0, family: 2, type: 1, table: 254, link: nil, sequence: 1))
        #expect(code == 0)
        #expect(route.prefix_length == 0)
        #expect(route.link_index == 0)
    }

    @Test func routesTheShimCannotReadAreMalformed() {
        let malformed: [[UInt8]] = [
            // RTA_DST of the wrong length for IPv4
            M.route([10, 96, 0], prefixLength: 24, family: 2, sequence: 1),
            // a /32 without RTA_DST
            M.route([], prefixLength: 32, family: 2, sequence: 1),
            // a prefix longer than the family allows
            M.route([10, 96, 0, 0], prefixLength: 40, sequence: 1),
            // a family that is neither IPv4 nor IPv6 (RTNL_FAMILY_IPMR)
            M.route([10, 96, 0, 0], prefixLength: 32, family: 128, sequence: 1),
            // too short for an rtmsg
            Array(M.route([10, 96, 0, 0], prefixLength: 32, sequence: 1).prefix(20)),
            // not a route
            M.address([10, 96, 0, 1], link: 3, sequence: 1),
        ]
        for message in malformed {
            var message = message
            withUnsafeBytes(of: UInt32(message.count).littleEndian) { message.replaceSubrange(0..<4, with: $0) }
            #expect(parse(message).code == -Int32(CNETLINK_EBADREPLY))
        }
    }

    // MARK: - Reading the local table

    /// Every table's routes, as an AF_UNSPEC dump brings them: the main table's, a multicast routing entry, the local
    /// table's (an address's own, a broadcast, ours for a range and a host, someone else's, ours on another link).
    private static func everyTable(_ sequence: UInt32, interruptedAt: Int? = nil) -> [[UInt8]] {
        var messages = [
            M.route(
                [], prefixLength: 0, family: 2, type: 1, protocol: 3, scope: 0, table: 254, link: 2,
                sequence: sequence),
            M.route(
                [10, 96, 0, 1], prefixLength: 32, protocol: 2, link: 7, source: [10, 96, 0, 1], sequence: sequence),
            M.route(
                [127, 255, 255, 255], prefixLength: 32, type: 3, protocol: 2, scope: 253, link: 1,
                sequence: sequence),
            M.route([10, 96, 0, 0], prefixLength: 12, sequence: sequence),
            M.route([192, 0, 2, 10], prefixLength: 32, sequence: sequence),
            M.route([198, 51, 100, 0], prefixLength: 24, protocol: 4, sequence: sequence),
            M.route([203, 0, 113, 0], prefixLength: 24, link: 9, sequence: sequence),
            M.route(
                [239, 1, 1, 1], prefixLength: 32, family: 128, type: 5, protocol: 17, table: 253, link: nil,
                sequence: sequence),
            M.route(serviceRangeIPv6.address.bytes, prefixLength: 108, sequence: sequence),
        ]
        if let interruptedAt {
            messages[interruptedAt][6] |= UInt8(M.interrupted)
            messages.remove(at: interruptedAt + 1)  // skipped: the table changed under the dump
        }
        return [Array(messages[..<4].joined()), Array(messages[4...].joined()) + M.done(sequence: sequence)]
    }

    @Test func aDumpKeepsTheLocalTableOfBothFamilies() throws {
        var routes: [TableRoute] = []
        let requests = try withFakeKernel(answer: { _, request in Self.everyTable(request.sequence) }) {
            routes = try $0.localTableRoutes()
        }
        #expect(requests.count == 1)
        #expect(requests[0].type == M.getRoute && requests[0].flags & M.dump == M.dump)
        // rtmsg of the request: AF_UNSPEC, the local table.
        #expect(requests[0].bytes[16] == 0 && requests[0].bytes[20] == 255)
        #expect(routes.count == 7)
        #expect(routes.allSatisfy { $0.table == 255 })
        #expect(
            routes.first
                == TableRoute(
                    network: IPNetwork("10.96.0.1/32")!, kind: .local, routeProtocol: .kernel, scope: 254, table: 255,
                    linkIndex: 7))
        #expect(routes.contains { $0.kind == .broadcast && $0.scope == 253 && $0.linkIndex == 1 })
    }

    @Test func oursOnALinkAreTheLocalRoutesOfOurProtocolThere() throws {
        var ours: [LocalRoute] = []
        var anyProtocol: [LocalRoute] = []
        var everywhere: [LocalRoute] = []
        _ = try withFakeKernel(answer: { _, request in Self.everyTable(request.sequence) }) {
            ours = try $0.localRoutes(linkIndex: 7)
            anyProtocol = try $0.localRoutes(linkIndex: 7, routeProtocol: nil)
            everywhere = try $0.localRoutes()
        }
        #expect(
            ours == [
                LocalRoute(network: Self.serviceRange, linkIndex: 7),
                LocalRoute(network: Self.externalIP, linkIndex: 7),
                LocalRoute(network: Self.serviceRangeIPv6, linkIndex: 7),
            ])
        // The address's own route (kernel) and someone else's (static) are local routes on the link, not ours.
        #expect(anyProtocol.count == 5)
        #expect(
            anyProtocol.contains(
                LocalRoute(
                    network: IPNetwork("198.51.100.0/24")!, linkIndex: 7,
                    routeProtocol: .static)))
        // Without a link: ours on every link (what a cleanup without the state folder finds).
        #expect(everywhere.count == 4)
        #expect(everywhere.contains(LocalRoute(network: IPNetwork("203.0.113.0/24")!, linkIndex: 9)))
    }

    @Test func anInterruptedRouteDumpIsReadAgainFromScratch() throws {
        var ours: [LocalRoute] = []
        var interruptions = 0
        let requests = try withFakeKernel(answer: { index, request in
            Self.everyTable(request.sequence, interruptedAt: index == 0 ? 3 : nil)
        }) {
            ours = try $0.localRoutes(linkIndex: 7)
            interruptions = $0.interruptedDumps
        }
        #expect(requests.count == 2)
        #expect(interruptions == 1)
        #expect(ours.count == 3)
    }

    @Test func aRouteDumpThatEndsWithAnErrorThrows() throws {
        let requests = try withFakeKernel(answer: { _, request in
            [
                M.route([10, 96, 0, 0], prefixLength: 12, sequence: request.sequence),
                M.done(sequence: request.sequence, error: -Errno.ioError.rawValue),
            ]
        }) { interfaces in
            let error = try #require(throws: KernelCallError.self) { try interfaces.localRoutes(linkIndex: 7) }
            #expect(error.errno == .ioError)
            #expect(error.operation == "list the local table's routes")
        }
        #expect(requests.count == 1)
    }

    @Test func aMalformedRouteOfAnyTableFailsTheDump() throws {
        _ = try withFakeKernel(answer: { _, request in
            [
                M.route([10, 96, 0, 0], prefixLength: 12, sequence: request.sequence)
                    + M.route([10, 97, 0], prefixLength: 16, family: 2, sequence: request.sequence)
                    + M.done(sequence: request.sequence)
            ]
        }) { interfaces in
            let error = try #require(throws: KernelCallError.self) { try interfaces.localTableRoutes() }
            #expect(error.reason == .malformedReply)
        }
    }

    // MARK: - Changing routes

    @Test func aBatchOfChangesReportsEachRefusalWithItsChange() throws {
        let changes: [RouteChange] = [
            .add(LocalRoute(network: Self.serviceRange, linkIndex: 7)),
            .add(LocalRoute(network: Self.serviceRangeIPv6, linkIndex: 7)),
            .delete(LocalRoute(network: Self.externalIP, linkIndex: 7)),
            .add(LocalRoute(network: IPNetwork("192.0.2.11/32")!, linkIndex: 7)),
        ]
        var failures: [RouteChangeFailure] = []
        let requests = try withFakeKernel(answer: { index, request in
            // The IPv6 range is there already; the host route is not.
            switch index {
            case 1: [M.acknowledgement(of: request, error: -Errno.fileExists.rawValue)]
            case 2: [M.acknowledgement(of: request, error: -Errno.noSuchProcess.rawValue)]
            case 4: [M.acknowledgement(of: request)]
            default: []
            }
        }) { interfaces in
            failures = try interfaces.apply(changes)
        }
        #expect(requests.map(\.type) == [M.newRoute, M.newRoute, M.deleteRoute, M.newRoute, M.noop])
        #expect(requests.last?.flags == M.request | M.acknowledge)
        // The messages are the builder's, in order, the batch numbering them.
        #expect(requests[1].bytes[16..<28] == [10, 108, 0, 0, 255, 166, 254, 2, 0, 0, 0, 0])
        #expect(Set(requests.map(\.sequence)).count == 5)
        #expect(failures.map(\.index) == [1, 2])
        #expect(failures.map(\.change) == [changes[1], changes[2]])
        #expect(failures.map(\.error.errno) == [.fileExists, .noSuchProcess])
        #expect(failures[0].error.operation == "add local fd00:10:96::/108 on link 7 proto ipvs-proxy (166)")
    }

    @Test func aBatchWhoseOutcomeIsUnknownThrows() throws {
        _ = try withFakeKernel(answer: { index, request in
            // The final acknowledgement carries an error: nothing tells what was applied.
            index == 1 ? [M.acknowledgement(of: request, error: -Errno.noBufferSpace.rawValue)] : []
        }) { interfaces in
            let error = try #require(throws: KernelCallError.self) {
                try interfaces.apply([RouteChange.add(LocalRoute(network: Self.serviceRange, linkIndex: 7))])
            }
            #expect(error.errno == .noBufferSpace)
            #expect(error.operation == "apply a batch of 1 route changes")
        }
    }

    // MARK: - Our protocol number

    /// The number is no one else's that the kernel or iproute2 knows of (rtnetlink.h's RTPROT_*, and FRR's, which
    /// it sends to the kernel as numbers 190...198), nor in the machine's iproute2 tables when they are there.
    @Test func ourProtocolNumberIsNoKnownOthers() throws {
        let kernelAndFRR = Set<UInt8>(0...18).union([42, 99]).union(186...198)
        #expect(!kernelAndFRR.contains(RouteProtocol.ipvsProxy.rawValue))
        for path in ["/etc/iproute2/rt_protos", "/usr/share/iproute2/rt_protos", "/usr/lib/iproute2/rt_protos"] {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let numbers = text.split(separator: "\n").compactMap { line in
                line.hasPrefix("#") ? nil : line.split(whereSeparator: \.isWhitespace).first.flatMap { UInt8($0) }
            }
            #expect(!numbers.isEmpty)
            #expect(!numbers.contains(RouteProtocol.ipvsProxy.rawValue), "\(path)")
        }
    }
}
