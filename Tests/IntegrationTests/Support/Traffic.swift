import Foundation
import IPVSModel

/// Namespaces wired like a node: a client and backends, each joined to the node by a veth pair, and the
/// node (where IPVS runs) routing between them. Backend `i` is 10.200.i.2 and fd02:i::2; the client is
/// 10.201.0.2 and fd01::2.
final class TrafficLab: @unchecked Sendable {
    let node: TestNamespace
    let client: TestNamespace
    let backends: [TestNamespace]

    init(backends count: Int) throws {
        node = try TestNamespace("node")
        client = try TestNamespace("client")
        backends = try (0..<count).map { try TestNamespace("backend-\($0)") }
        try node.exec("/bin/busybox", ["sysctl", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])
        try connect(client, nodeLink: "client0", ipv4: "10.201.0", ipv6: "fd01:")
        for (index, backend) in backends.enumerated() {
            try connect(backend, nodeLink: "backend\(index)", ipv4: "10.200.\(index)", ipv6: "fd02:\(index):")
        }
    }

    /// Backend `index`'s IPv4 or IPv6 address.
    func backendAddress(_ index: Int, family: AddressFamily = .ipv4) -> IPAddress {
        IPAddress(family == .ipv4 ? "10.200.\(index).2" : "fd02:\(index)::2")!
    }

    private func connect(_ peer: TestNamespace, nodeLink: String, ipv4: String, ipv6: String) throws {
        try node.ip("link", "add", nodeLink, "type", "veth", "peer", "name", "eth0", "netns", peer.path)
        try node.ip("addr", "add", "\(ipv4).1/24", "dev", nodeLink)
        try node.ip("addr", "add", "\(ipv6):1/64", "dev", nodeLink, "nodad")
        try node.ip("link", "set", nodeLink, "up")
        try peer.ip("addr", "add", "\(ipv4).2/24", "dev", "eth0")
        try peer.ip("addr", "add", "\(ipv6):2/64", "dev", "eth0", "nodad")
        try peer.ip("link", "set", "eth0", "up")
        try peer.ip("route", "add", "default", "via", "\(ipv4).1")
        try peer.ip("-6", "route", "add", "default", "via", "\(ipv6):1")
    }
}

/// A server in a namespace that answers every TCP connection or UDP datagram with a fixed reply.
final class ReplyServer: @unchecked Sendable {
    private let socket: Int32
    private let stopped = LockedBox(false)
    /// Connections accepted and not yet closed, when the server holds them open.
    let openConnections = LockedBox<[Int32]>([])

    /// - Parameters:
    ///   - holdConnections: Keep each TCP connection open after replying, until ``closeHeldConnections()``.
    ///   - tellsPeer: Follow the reply with ` from ADDRESS`, the client's address as the server sees it.
    init(
        in namespace: TestNamespace, address: IPAddress, port: UInt16,
        protocol transportProtocol: TransportProtocol = .tcp,
        reply: String, holdConnections: Bool = false, tellsPeer: Bool = false
    ) throws {
        let isTCP = transportProtocol == .tcp
        socket = try namespace.perform {
            let socket = Glibc.socket(
                address.family == .ipv4 ? AF_INET : AF_INET6, Int32(isTCP ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue),
                0)
            guard socket >= 0 else { throw SocketError(operation: "socket", code: errno) }
            var one: Int32 = 1
            setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            try withSocketAddress(address, port) { pointer, length in
                guard bind(socket, pointer, length) == 0 else {
                    throw SocketError(operation: "bind \(address):\(port)", code: errno)
                }
            }
            if isTCP { guard listen(socket, 64) == 0 else { throw SocketError(operation: "listen", code: errno) } }
            return socket
        }
        let socket = socket
        let stopped = stopped
        let openConnections = openConnections
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 2048)
            while !stopped.value {
                var poll = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
                guard Glibc.poll(&poll, 1, 100) > 0 else { continue }
                var peer = sockaddr_storage()
                var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
                if isTCP {
                    let connection = withUnsafeMutablePointer(to: &peer) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(socket, $0, &length) }
                    }
                    guard connection >= 0 else { continue }
                    let text = tellsPeer ? "\(reply) from \(peerAddress(peer))" : reply
                    _ = text.withCString { send(connection, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                    if holdConnections {
                        openConnections.value.append(connection)
                    } else {
                        close(connection)
                    }
                } else {
                    let received = withUnsafeMutablePointer(to: &peer) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                            recvfrom(socket, &buffer, buffer.count, 0, $0, &length)
                        }
                    }
                    guard received >= 0 else { continue }
                    let text = tellsPeer ? "\(reply) from \(peerAddress(peer))" : reply
                    _ = withUnsafePointer(to: &peer) { peerPointer in
                        peerPointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                            text.withCString { sendto(socket, $0, strlen($0), 0, address, length) }
                        }
                    }
                }
            }
            close(socket)
        }
    }

    /// Closes the connections held open so far.
    func closeHeldConnections() {
        let connections = openConnections.value
        openConnections.value = []
        for connection in connections { close(connection) }
    }

    deinit {
        stopped.value = true
        closeHeldConnections()
    }
}

/// Sends one request from `namespace` and returns the reply: for TCP, everything read until the server
/// closes; for UDP, one datagram.
func request(
    from namespace: TestNamespace, to address: IPAddress, port: UInt16,
    protocol transportProtocol: TransportProtocol = .tcp, timeoutSeconds: Int = 3
) throws -> String {
    try namespace.perform {
        let connection = try openConnection(
            to: address, port: port, protocol: transportProtocol, timeoutSeconds: timeoutSeconds)
        defer { close(connection) }
        if transportProtocol != .tcp {
            guard send(connection, "hello", 5, 0) == 5 else { throw SocketError(operation: "send", code: errno) }
        }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        while true {
            let count = recv(connection, &buffer, buffer.count, 0)
            if count < 0 { throw SocketError(operation: "receive from \(address):\(port)", code: errno) }
            reply += buffer.prefix(count)
            if count == 0 || transportProtocol != .tcp { break }
        }
        return String(decoding: reply, as: UTF8.self)
    }
}

/// Opens a TCP connection (or a connected UDP socket) from the calling thread's namespace.
func openConnection(
    to address: IPAddress, port: UInt16, protocol transportProtocol: TransportProtocol = .tcp, timeoutSeconds: Int = 3
) throws -> Int32 {
    let isTCP = transportProtocol == .tcp
    let connection = socket(
        address.family == .ipv4 ? AF_INET : AF_INET6, Int32(isTCP ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue), 0)
    guard connection >= 0 else { throw SocketError(operation: "socket", code: errno) }
    var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
    setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    do {
        try withSocketAddress(address, port) { pointer, length in
            guard Glibc.connect(connection, pointer, length) == 0 else {
                throw SocketError(operation: "connect to \(address):\(port)", code: errno)
            }
        }
    } catch {
        close(connection)
        throw error
    }
    return connection
}

/// Reads what a connection has to say, up to its end or the timeout.
func readAll(_ connection: Int32) -> String {
    var reply: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 2048)
    while true {
        let count = recv(connection, &buffer, buffer.count, 0)
        if count <= 0 { break }
        reply += buffer.prefix(count)
    }
    return String(decoding: reply, as: UTF8.self)
}

private func withSocketAddress<Result>(
    _ address: IPAddress, _ port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> Result
) rethrows -> Result {
    switch address.family {
    case .ipv4:
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        address.withBytes { bytes in withUnsafeMutableBytes(of: &socketAddress.sin_addr) { $0.copyMemory(from: bytes) }
        }
        return try withUnsafePointer(to: &socketAddress) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                try body($0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    case .ipv6:
        var socketAddress = sockaddr_in6()
        socketAddress.sin6_family = sa_family_t(AF_INET6)
        socketAddress.sin6_port = port.bigEndian
        address.withBytes { bytes in withUnsafeMutableBytes(of: &socketAddress.sin6_addr) { $0.copyMemory(from: bytes) }
        }
        return try withUnsafePointer(to: &socketAddress) {
            try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                try body($0, socklen_t(MemoryLayout<sockaddr_in6>.size))
            }
        }
    }
}

/// The address in a socket address, as text (an IPv4-mapped IPv6 address as IPv4).
private func peerAddress(_ storage: sockaddr_storage) -> String {
    var storage = storage
    switch Int32(storage.ss_family) {
    case AF_INET:
        return withUnsafeBytes(of: &storage) { raw in
            let address = raw.load(fromByteOffset: MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!, as: in_addr.self)
            return withUnsafeBytes(of: address) { IPAddress(family: .ipv4, bytes: $0).description }
        }
    case AF_INET6:
        return withUnsafeBytes(of: &storage) { raw in
            let offset = MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!
            let bytes = Array(raw[offset..<offset + 16])
            if bytes.prefix(10).allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
                return IPAddress(family: .ipv4, bytes: bytes.suffix(4)).description
            }
            return IPAddress(family: .ipv6, bytes: bytes).description
        }
    default:
        return "?"
    }
}

struct SocketError: Error, CustomStringConvertible {
    var operation: String
    var code: Int32
    var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// A UDP client with one connected socket (one fixed source port) that sends every 100 ms and records the
/// answers, as a DNS client or a game client would.
final class UDPProbe: @unchecked Sendable {
    private let answers = LockedBox<[(time: Date, text: String)]>([])
    private let sends = LockedBox(0)
    private let stopped = LockedBox(false)

    init(from namespace: TestNamespace, to address: IPAddress, port: UInt16) throws {
        let answers = answers
        let sends = sends
        let stopped = stopped
        let socket = try namespace.perform {
            try openConnection(to: address, port: port, protocol: .udp, timeoutSeconds: 1)
        }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 512)
            while !stopped.value {
                let started = Date()
                if send(socket, "ping", 4, 0) == 4 { sends.value += 1 }
                let count = recv(socket, &buffer, buffer.count, 0)
                if count > 0 { answers.value.append((Date(), String(decoding: buffer.prefix(count), as: UTF8.self))) }
                let rest = 0.1 - Date().timeIntervalSince(started)
                if rest > 0 { Thread.sleep(forTimeInterval: rest) }
            }
            close(socket)
        }
    }

    /// How long after `since` the first answer reading `text` came, waiting at most `timeout` seconds.
    func delay(until text: String, since: Date, timeout: Double) -> Double? {
        let found = eventually(timeoutSeconds: timeout) {
            answers.value.first { $0.time >= since && $0.text == text }
        }
        return found.map { $0.time.timeIntervalSince(since) }
    }

    /// How many pings went out so far.
    var sent: Int { sends.value }

    /// Whether any answer came at all.
    var answered: Bool { !answers.value.isEmpty }

    deinit { stopped.value = true }
}
