import CTestSupport
import Foundation
import IPVSModel

/// Holds up to `count` idle TCP connections to `address:port` (which must be loopback or an address of a test
/// namespace) from this process, or from inside `namespace`: what a careless or hostile client does to a port
/// anyone can reach. Connections are opened, and those the server closes opened again, at most `perSecond` a
/// second, until `stop()` or until `maximumSeconds` have passed, whichever comes first.
///
/// Sockets are non-blocking (a full listen backlog leaves a connect pending instead of holding up the rest) and
/// close-on-exec (a process another test starts meanwhile must not inherit thousands of them).
final class ConnectionFlood: @unchecked Sendable {
    /// What the flood did.
    struct Report: CustomStringConvertible {
        /// Connections started, the first `count` and their replacements.
        var opened = 0
        /// Connections the server ended (closed, reset or refused).
        var closedByServer = 0
        /// Of those, the ones it ended within half a second of their establishment: refused, not timed out.
        var endedAtOnce = 0
        /// Sockets that could not be made or connected at all (out of descriptors or ports).
        var failures = 0
        /// The most connections established at once.
        var peak = 0
        var seconds = 0.0
        var description: String {
            "\(opened) opened, \(closedByServer) ended by the server (\(endedAtOnce) at once), \(failures) failed, "
                + "at most \(peak) established at once, "
                + String(format: "%.1f s", seconds)
        }
    }

    private let state = LockedBox(Report())
    private let stopped = LockedBox(false)
    private let finished = DispatchSemaphore(value: 0)

    init(
        to address: IPAddress, port: UInt16, count: Int = 5000, in namespace: TestNamespace? = nil,
        perSecond: Int = 2000, maximumSeconds: Double = 60
    ) {
        let state = state
        let stopped = stopped
        let finished = finished
        let body: @Sendable () -> Void = {
            Self.hold(
                address: address, port: port, count: count, perSecond: perSecond,
                maximumSeconds: maximumSeconds, state: state, stopped: stopped)
            finished.signal()
        }
        if let namespace {
            namespace.detach(body)
        } else {
            Thread.detachNewThread(body)
        }
    }

    /// What the flood has done so far.
    var report: Report { state.value }

    /// Ends every connection (with a reset, leaving no TIME_WAIT behind) and says what the flood did.
    func stop() -> Report {
        stopped.value = true
        finished.wait()
        finished.signal()
        return state.value
    }

    deinit { _ = stop() }

    private static func hold(
        address: IPAddress, port: UInt16, count: Int, perSecond: Int, maximumSeconds: Double,
        state: LockedBox<Report>, stopped: LockedBox<Bool>
    ) {
        // A busy flood must not starve the daemon and the test's own readings of the CPU: it runs niced.
        _ = test_set_thread_nice(10)
        let start = Date()
        // Connected sockets, and sockets still connecting.
        var connected: [Int32] = []
        var establishedAt: [Int32: Date] = [:]
        var pending: [Int32] = []
        var report = Report()
        var lastOpen = start
        var buffer = [UInt8](repeating: 0, count: 512)
        while !stopped.value && Date().timeIntervalSince(start) < maximumSeconds {
            let allowed = Int(Date().timeIntervalSince(lastOpen) * Double(perSecond))
            if allowed > 0 {
                lastOpen = Date()
                let wanted = min(allowed, count - connected.count - pending.count, maximumPending - pending.count)
                for _ in 0..<max(wanted, 0) {
                    guard let socket = connectWithoutWaiting(to: address, port: port) else {
                        report.failures += 1
                        continue
                    }
                    pending.append(socket)
                    report.opened += 1
                }
            }
            var entries =
                connected.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
                + pending.map { pollfd(fd: $0, events: Int16(POLLOUT), revents: 0) }
            _ = poll(&entries, nfds_t(entries.count), 20)
            let now = Date()
            var stillConnected: [Int32] = []
            var stillPending: [Int32] = []
            for (index, entry) in entries.enumerated() {
                let wasPending = index >= connected.count
                var ended = entry.revents & Int16(POLLHUP | POLLERR) != 0
                if !ended && wasPending && entry.revents & Int16(POLLOUT) != 0 {
                    var error: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(entry.fd, SOL_SOCKET, SO_ERROR, &error, &length)
                    ended = error != 0
                } else if !ended && entry.revents & Int16(POLLIN) != 0 {
                    let read = recv(entry.fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                    ended = read == 0 || (read < 0 && errno != EAGAIN)
                }
                if ended {
                    close(entry.fd)
                    report.closedByServer += 1
                    if let established = establishedAt.removeValue(forKey: entry.fd),
                        now.timeIntervalSince(established) < 0.5
                    {
                        report.endedAtOnce += 1
                    }
                } else if wasPending && entry.revents & Int16(POLLOUT) == 0 {
                    stillPending.append(entry.fd)
                } else {
                    if wasPending { establishedAt[entry.fd] = Date() }
                    stillConnected.append(entry.fd)
                }
            }
            connected = stillConnected
            pending = stillPending
            report.peak = max(report.peak, connected.count)
            report.seconds = Date().timeIntervalSince(start)
            state.value = report
        }
        var reset = linger(l_onoff: 1, l_linger: 0)
        for socket in connected + pending {
            setsockopt(socket, SOL_SOCKET, SO_LINGER, &reset, socklen_t(MemoryLayout<linger>.size))
            close(socket)
        }
        report.seconds = Date().timeIntervalSince(start)
        state.value = report
    }

    /// The most connections left waiting for the server at once: more would overflow its listen backlog, and a
    /// dropped SYN waits a second or more to be sent again, which would slow the flood instead of the server.
    static let maximumPending = 100

    /// A non-blocking socket connecting to `address:port`, or `nil` when none could be made or the connect failed
    /// at once.
    private static func connectWithoutWaiting(to address: IPAddress, port: UInt16) -> Int32? {
        let family = address.family == .ipv4 ? AF_INET : AF_INET6
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let socket = Glibc.socket(family, type, 0)
        guard socket >= 0 else { return nil }
        var storage = sockaddr_storage()
        let length: socklen_t
        switch address.family {
        case .ipv4:
            var ipv4 = sockaddr_in()
            ipv4.sin_family = sa_family_t(AF_INET)
            ipv4.sin_port = port.bigEndian
            address.withBytes { bytes in withUnsafeMutableBytes(of: &ipv4.sin_addr) { $0.copyMemory(from: bytes) } }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: ipv4, as: sockaddr_in.self) }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        case .ipv6:
            var ipv6 = sockaddr_in6()
            ipv6.sin6_family = sa_family_t(AF_INET6)
            ipv6.sin6_port = port.bigEndian
            address.withBytes { bytes in withUnsafeMutableBytes(of: &ipv6.sin6_addr) { $0.copyMemory(from: bytes) } }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: ipv6, as: sockaddr_in6.self) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket, $0, length) }
        }
        guard result == 0 || errno == EINPROGRESS else {
            close(socket)
            return nil
        }
        return socket
    }

    /// Raises this process's descriptor limit to at least `minimum` (the hard limit too, which root may), so that
    /// the flood's sockets fit beside what the other tests hold.
    static func raiseDescriptorLimit(atLeast minimum: Int) throws {
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { throw SocketError(operation: "getrlimit", code: errno) }
        guard limit.rlim_cur < rlim_t(minimum) else { return }
        limit.rlim_cur = rlim_t(minimum)
        limit.rlim_max = max(limit.rlim_max, limit.rlim_cur)
        guard setrlimit(resource, &limit) == 0 else {
            throw SocketError(operation: "raise RLIMIT_NOFILE to \(minimum)", code: errno)
        }
    }
}
