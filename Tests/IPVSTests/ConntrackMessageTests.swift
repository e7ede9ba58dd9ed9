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

    @Test func whatIsEncodedParsesBack() {
        var entry = entry()
        var buffer = [UInt8](repeating: 0, count: 512)
        let length = Int(cnetlink_conntrack_encode_delete(&entry, 1, &buffer, buffer.count))
        // A delete request has the shape of an entry message: ctnetlink parses either.
        buffer[4] = 0x00  // IPCTNL_MSG_CT_NEW
        var parsed = cnetlink_conntrack_entry()
        #expect(cnetlink_conntrack_parse(buffer, length, &parsed) == 0)
        #expect(parsed.protocol == 17)
        #expect(parsed.original.source_port == 46106)
        #expect(parsed.original.destination_port == 53)
        #expect(withUnsafeBytes(of: parsed.original.destination) { Array($0.prefix(4)) } == [10, 96, 0, 53])
    }
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { Array(self[$0..<$0 + subsequence.count]) == subsequence }
    }
}
