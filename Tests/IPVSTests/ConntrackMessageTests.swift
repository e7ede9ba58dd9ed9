import CNetlink
import Testing

@Suite("Encoding and parsing conntrack messages", .timeLimit(.minutes(2)))
struct ConntrackMessageTests {
    private func entry() -> cnetlink_conntrack_entry {
        var entry = cnetlink_conntrack_entry()
        entry.family = 2  // AF_INET
        entry.protocol = 17
        withUnsafeMutableBytes(of: &entry.original.source) { $0.copyBytes(from: [127, 0, 0, 1]) }
        withUnsafeMutableBytes(of: &entry.original.destination) { $0.copyBytes(from: [10, 96, 0, 53]) }
        entry.original.source_port = 46106
        entry.original.destination_port = 53
        return entry
    }

    /// A deletion is a request (the kernel skips anything else) for the original tuple, ports in network order.
    @Test func aDeletionCarriesTheOriginalTupleAsARequest() {
        var entry = entry()
        var buffer = [UInt8](repeating: 0, count: 512)
        let length = Int(cnetlink_conntrack_encode_delete(&entry, 7, &buffer, buffer.count))
        #expect(length == 72)
        let message = Array(buffer.prefix(length))
        // nlmsghdr: length, type CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE, flags NLM_F_REQUEST, sequence 7.
        #expect(message[0..<8] == [72, 0, 0, 0, 0x02, 0x01, 0x01, 0x00])
        #expect(message[8..<12] == [7, 0, 0, 0])
        // nfgenmsg family AF_INET; then CTA_TUPLE_ORIG with the addresses and the ports.
        #expect(message[16] == 2)
        let body = message.dropFirst(20)
        #expect(body.starts(with: [0x34, 0x00, 0x01, 0x80]))
        #expect(message.contains(subsequence: [0x08, 0x00, 0x01, 0x00, 127, 0, 0, 1]))
        #expect(message.contains(subsequence: [0x08, 0x00, 0x02, 0x00, 10, 96, 0, 53]))
        #expect(message.contains(subsequence: [0x06, 0x00, 0x02, 0x00, 0xB4, 0x1A]))
        #expect(message.contains(subsequence: [0x06, 0x00, 0x03, 0x00, 0x00, 0x35]))
    }

    @Test func aMessageTooShortIsMalformed() {
        var parsed = cnetlink_conntrack_entry()
        let bytes: [UInt8] = [16, 0, 0, 0, 0, 1, 0, 0]
        #expect(cnetlink_conntrack_parse(bytes, bytes.count, &parsed) == -Int32(CNETLINK_EBADREPLY))
    }

    @Test func whatIsEncodedParsesBackWithAReplyTuple() {
        var entry = entry()
        var buffer = [UInt8](repeating: 0, count: 512)
        let length = Int(cnetlink_conntrack_encode_delete(&entry, 1, &buffer, buffer.count))
        // A delete request has the shape of an entry message, but only the original tuple: the kernel's
        // entries add the reply's.
        var message =
            Array(buffer.prefix(length))
            + Self.tuple(
                2, Tuple(source: [10, 244, 1, 5], destination: [127, 0, 0, 1], sourcePort: 53, destinationPort: 46106))
        message[4] = 0x00  // IPCTNL_MSG_CT_NEW
        withUnsafeBytes(of: UInt32(message.count).littleEndian) { message.replaceSubrange(0..<4, with: $0) }
        var parsed = cnetlink_conntrack_entry()
        #expect(cnetlink_conntrack_parse(message, message.count, &parsed) == 0)
        #expect(parsed.protocol == 17)
        #expect(parsed.original.source_port == 46106)
        #expect(parsed.original.destination_port == 53)
        #expect(withUnsafeBytes(of: parsed.original.destination) { Array($0.prefix(4)) } == [10, 96, 0, 53])
        #expect(withUnsafeBytes(of: parsed.reply.source) { Array($0.prefix(4)) } == [10, 244, 1, 5])
    }

    // MARK: - Entries the kernel sends

    struct Tuple {
        var source: [UInt8]?
        var destination: [UInt8]?
        var sourcePort: UInt16
        var destinationPort: UInt16
        /// Whether CTA_TUPLE_IP is there at all.
        var hasAddresses = true
    }

    /// A CTA_TUPLE_ORIG (1) or CTA_TUPLE_REPLY (2) attribute as ctnetlink_dump_tuples writes it.
    static func tuple(_ type: UInt16, _ tuple: Tuple) -> [UInt8] {
        // Only the attribute is wanted: build it inside a message and cut the headers off.
        var message = NetlinkMessageBuilder(type: 0, header: [])
        message.beginNest(type)
        if tuple.hasAddresses {
            let ipv6 = (tuple.source ?? tuple.destination)?.count == 16
            message.beginNest(1)  // CTA_TUPLE_IP
            if let source = tuple.source { message.attribute(ipv6 ? 3 : 1, source) }
            if let destination = tuple.destination { message.attribute(ipv6 ? 4 : 2, destination) }
            message.endNest()
        }
        message.beginNest(2)  // CTA_TUPLE_PROTO
        message.attribute(1, [17])  // CTA_PROTO_NUM: UDP
        message.u16(2, tuple.sourcePort.bigEndian)
        message.u16(3, tuple.destinationPort.bigEndian)
        message.endNest()
        message.endNest()
        return Array(message.message.dropFirst(16))
    }

    /// An IPCTNL_MSG_CT_NEW entry of a dump, with the tuples given.
    static func entryMessage(family: UInt8 = 2, original: Tuple?, reply: Tuple?) -> [UInt8] {
        // nlmsghdr type NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW; nfgenmsg family, version 0, res_id 0.
        var message = NetlinkMessageBuilder(type: 0x0100, flags: 2, header: [family, 0, 0, 0]).message
        if let original { message += tuple(1, original) }
        if let reply { message += tuple(2, reply) }
        withUnsafeBytes(of: UInt32(message.count).littleEndian) { message.replaceSubrange(0..<4, with: $0) }
        return message
    }

    /// A client's UDP flow to a service, DNAT'ed by IPVS to a pod: what the stale-flow cleanup reads.
    static let client = Tuple(
        source: [10, 0, 0, 7], destination: [10, 96, 0, 10], sourcePort: 40000, destinationPort: 53)
    static let pod = Tuple(
        source: [10, 244, 1, 5], destination: [10, 0, 0, 7], sourcePort: 53, destinationPort: 40000)

    @Test func anEntryParsesBothDirections() {
        let message = Self.entryMessage(original: Self.client, reply: Self.pod)
        var parsed = cnetlink_conntrack_entry()
        #expect(cnetlink_conntrack_parse(message, message.count, &parsed) == 0)
        #expect(parsed.family == 2)
        #expect(parsed.protocol == 17)
        #expect(withUnsafeBytes(of: parsed.original.source) { Array($0.prefix(4)) } == [10, 0, 0, 7])
        #expect(withUnsafeBytes(of: parsed.original.destination) { Array($0.prefix(4)) } == [10, 96, 0, 10])
        #expect(withUnsafeBytes(of: parsed.reply.source) { Array($0.prefix(4)) } == [10, 244, 1, 5])
        #expect(withUnsafeBytes(of: parsed.reply.destination) { Array($0.prefix(4)) } == [10, 0, 0, 7])
        #expect(parsed.reply.source_port == 53)
        #expect(parsed.original.source_port == 40000)
    }

    @Test func anIPv6EntryParses() {
        let client: [UInt8] = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]
        let service: [UInt8] = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]
        let pod: [UInt8] = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 5]
        let message = Self.entryMessage(
            family: 10, original: Tuple(source: client, destination: service, sourcePort: 1, destinationPort: 53),
            reply: Tuple(source: pod, destination: client, sourcePort: 53, destinationPort: 1))
        var parsed = cnetlink_conntrack_entry()
        #expect(cnetlink_conntrack_parse(message, message.count, &parsed) == 0)
        #expect(withUnsafeBytes(of: parsed.reply.source, Array.init) == pod)
    }

    enum Missing: String, CaseIterable, Sendable {
        case replyTuple, replyAddresses, replySource, replyDestination, originalTuple, originalSource
        case originalDestination
    }

    /// A missing address is never read as zeros: 0.0.0.0 in a reply would look like a flow to an endpoint that
    /// is gone, and the sync would delete a live flow as stale.
    @Test(arguments: Missing.allCases)
    func anEntryWithAnAddressMissingIsMalformed(_ missing: Missing) {
        var original: Tuple? = Self.client
        var reply: Tuple? = Self.pod
        switch missing {
        case .replyTuple: reply = nil
        case .replyAddresses: reply?.hasAddresses = false
        case .replySource: reply?.source = nil
        case .replyDestination: reply?.destination = nil
        case .originalTuple: original = nil
        case .originalSource: original?.source = nil
        case .originalDestination: original?.destination = nil
        }
        let message = Self.entryMessage(original: original, reply: reply)
        var parsed = cnetlink_conntrack_entry()
        #expect(cnetlink_conntrack_parse(message, message.count, &parsed) == -Int32(CNETLINK_EBADREPLY))
    }

    @Test func anAddressOfTheOtherFamilyIsRefused() {
        // libnl-nf refuses it itself (NLE_AF_MISMATCH); the shim's length check would, too.
        let message = Self.entryMessage(family: 10, original: Self.client, reply: Self.pod)
        var parsed = cnetlink_conntrack_entry()
        #expect(cnetlink_conntrack_parse(message, message.count, &parsed) < 0)
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { Array(self[$0..<$0 + subsequence.count]) == subsequence }
    }
}
