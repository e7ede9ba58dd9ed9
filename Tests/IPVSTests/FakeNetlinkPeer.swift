import Foundation
@testable import Interfaces
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One request message the fake kernel received: its netlink header, and the whole message.
struct PeerRequest: Sendable, Equatable {
    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    /// The message's bytes, header included.
    var bytes: [UInt8] = []
}

/// Plays the kernel at one end of a datagram socket pair: a thread reads each request a handle sends through
/// the other end and answers it with the datagrams `answer` makes for it, as the kernel would, without one. A
/// datagram of several messages (a batch) is answered message by message, in order.
final class FakeNetlinkPeer: Sendable {
    /// The end a handle takes (and closes when it is closed).
    let handleSocket: Int32
    private let peerSocket: Int32
    private let received = Mutex<[PeerRequest]>([])
    private let stopping = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)

    /// - Parameter answer: The datagrams to send back for the request message with this index (from 0); each may
    ///   hold several messages. They must carry the request's sequence number to be taken as its answer.
    init(answer: @escaping @Sendable (_ index: Int, _ request: PeerRequest) -> [[UInt8]]) throws {
        var ends: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0, &ends) == 0 else {
            throw PeerError(what: "socketpair", code: errno)
        }
        handleSocket = ends[0]
        peerSocket = ends[1]
        let thread = Thread { [self] in
            serve(answer)
            finished.store(true, ordering: .releasing)
        }
        thread.start()
    }

    /// Every request received so far, in order.
    var requests: [PeerRequest] { received.withLock { $0 } }

    /// Stops the thread (it checks every few milliseconds) and closes the peer's end.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        while !finished.load(ordering: .acquiring) { usleep(1000) }
        close(peerSocket)
    }

    private func serve(_ answer: @Sendable (Int, PeerRequest) -> [[UInt8]]) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !stopping.load(ordering: .relaxed) {
            var waiting = pollfd(fd: peerSocket, events: Int16(POLLIN), revents: 0)
            guard poll(&waiting, 1, 5) > 0 else { continue }
            let length = recv(peerSocket, &buffer, buffer.count, 0)
            var offset = 0
            while length - offset >= 16 {
                func u16(_ at: Int) -> UInt16 { UInt16(buffer[at]) | UInt16(buffer[at + 1]) << 8 }
                func u32(_ at: Int) -> UInt32 {
                    (0..<4).reduce(UInt32(0)) { $0 | UInt32(buffer[at + $1]) << (8 * $1) }
                }
                let messageLength = Int(u32(offset))
                guard messageLength >= 16, offset + messageLength <= length else { break }
                let request = PeerRequest(
                    type: u16(offset + 4), flags: u16(offset + 6), sequence: u32(offset + 8),
                    bytes: Array(buffer[offset..<(offset + messageLength)]))
                let index = received.withLock { requests in
                    requests.append(request)
                    return requests.count - 1
                }
                for datagram in answer(index, request) {
                    _ = datagram.withUnsafeBytes { send(peerSocket, $0.baseAddress, $0.count, 0) }
                }
                offset += (messageLength + 3) & ~3
            }
        }
    }
}

struct PeerError: Error {
    var what: String
    var code: Int32
}

/// rtnetlink messages shaped as the kernel sends them, built with ``NetlinkMessageBuilder``.
enum RouteMessages {
    static let multipart: UInt16 = 0x2  // NLM_F_MULTI
    static let interrupted: UInt16 = 0x10  // NLM_F_DUMP_INTR
    static let dump: UInt16 = 0x300  // NLM_F_DUMP (NLM_F_ROOT | NLM_F_MATCH)

    static let newLink: UInt16 = 16  // RTM_NEWLINK
    static let getLink: UInt16 = 18  // RTM_GETLINK
    static let newAddress: UInt16 = 20  // RTM_NEWADDR
    static let getAddress: UInt16 = 22  // RTM_GETADDR

    /// An RTM_NEWADDR entry (ifaddrmsg, IFA_ADDRESS and IFA_LOCAL) of a dump.
    static func address(_ address: [UInt8], link: UInt32, sequence: UInt32, flags: UInt16 = multipart) -> [UInt8] {
        let family: UInt8 = address.count == 16 ? 10 : 2
        let prefix = UInt8(address.count * 8)
        var message = NetlinkMessageBuilder(
            type: newAddress, flags: flags, sequence: sequence,
            header: [family, prefix, 0, 0] + withUnsafeBytes(of: link.littleEndian, Array.init))
        message.attribute(1, address)  // IFA_ADDRESS
        message.attribute(2, address)  // IFA_LOCAL
        return message.message
    }

    /// An RTM_NEWLINK entry (ifinfomsg, IFLA_IFNAME, IFLA_LINKINFO with IFLA_INFO_KIND).
    static func link(index: Int32, name: String, kind: String? = nil, sequence: UInt32, flags: UInt16 = multipart)
        -> [UInt8]
    {
        let header: [UInt8] =
            [0, 0] + withUnsafeBytes(of: UInt16(1).littleEndian, Array.init)  // ARPHRD_ETHER
            + withUnsafeBytes(of: index.littleEndian, Array.init) + withUnsafeBytes(of: UInt32(0), Array.init)
            + withUnsafeBytes(of: UInt32(0), Array.init)
        var message = NetlinkMessageBuilder(type: newLink, flags: flags, sequence: sequence, header: header)
        message.string(3, name)  // IFLA_IFNAME
        if let kind {
            message.beginNest(18)  // IFLA_LINKINFO
            message.string(1, kind)  // IFLA_INFO_KIND
            message.endNest()
        }
        return message.message
    }

    /// NLMSG_DONE, carrying the dump's error as the kernel does (0, or a negative errno).
    static func done(sequence: UInt32, error: Int32 = 0, flags: UInt16 = multipart) -> [UInt8] {
        NetlinkMessageBuilder(
            type: 3, flags: flags, sequence: sequence, header: withUnsafeBytes(of: error.littleEndian, Array.init)
        ).message
    }

    /// NLMSG_ERROR: an acknowledgement (0) or an error, with the request's header as NETLINK_CAP_ACK sends it.
    static func acknowledgement(of request: PeerRequest, error: Int32 = 0) -> [UInt8] {
        var header = withUnsafeBytes(of: error.littleEndian, Array.init)
        header += withUnsafeBytes(of: UInt32(16).littleEndian, Array.init)
        header += withUnsafeBytes(of: request.type.littleEndian, Array.init)
        header += withUnsafeBytes(of: request.flags.littleEndian, Array.init)
        header += withUnsafeBytes(of: request.sequence.littleEndian, Array.init)
        header += [0, 0, 0, 0]
        return NetlinkMessageBuilder(type: 2, sequence: request.sequence, header: header).message
    }
}

/// Runs `body` with a handle whose kernel is a fake peer that answers with `answer`; returns the requests the peer
/// saw.
func withFakeKernel(
    answer: @escaping @Sendable (Int, PeerRequest) -> [[UInt8]], _ body: (InterfaceHandle) throws -> Void
) throws -> [PeerRequest] {
    let peer = try FakeNetlinkPeer(answer: answer)
    defer { peer.stop() }
    let handle = try InterfaceHandle(testingSocket: peer.handleSocket)
    try body(handle)
    return peer.requests
}
