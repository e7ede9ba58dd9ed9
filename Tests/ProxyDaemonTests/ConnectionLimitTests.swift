import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing

@testable import ProxyDaemon

/// A TCP connection from this process to 127.0.0.1:`port`, closed when dropped.
private final class Client {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw ClientError(operation: "socket", code: errno) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let code = errno
            close(descriptor)
            throw ClientError(operation: "connect to 127.0.0.1:\(port)", code: code)
        }
    }

    deinit { close(descriptor) }

    func send(_ text: String) {
        _ = text.withCString { Glibc.send(descriptor, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
    }

    /// Sends a GET and reads the whole answer (up to 5 s).
    func get(_ path: String) -> String {
        send("GET \(path) HTTP/1.1\r\nHost: test\r\n\r\n")
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, wait(for: Int16(POLLIN), seconds: deadline.timeIntervalSinceNow) {
            let count = recv(descriptor, &buffer, buffer.count, 0)
            if count <= 0 { break }
            reply += buffer.prefix(count)
        }
        return String(decoding: reply, as: UTF8.self)
    }

    /// Whether the server ends the connection within `seconds` (what it sent before is read and dropped).
    func isClosed(within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while wait(for: Int16(POLLIN), seconds: deadline.timeIntervalSinceNow) {
            let count = recv(descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count == 0 || (count < 0 && errno != EAGAIN) { return true }
        }
        return false
    }

    /// Whether the server has neither sent anything nor ended the connection, now.
    var isOpenAndQuiet: Bool { !wait(for: Int16(POLLIN), seconds: 0) }

    private func wait(for events: Int16, seconds: Double) -> Bool {
        var entry = pollfd(fd: descriptor, events: events, revents: 0)
        return poll(&entry, 1, Int32(max(0, seconds) * 1000)) > 0
    }
}

private struct ClientError: Error, CustomStringConvertible {
    var operation: String
    var code: Int32
    var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// Log lines a test can read.
private final class CapturedLog: Sendable {
    let lines = Mutex<[(level: Logger.Level, message: String)]>([])

    var logger: Logger {
        Logger(label: "test") { _ in CapturingHandler(log: self) }
    }

    func messages(containing text: String) -> [String] {
        lines.withLock { $0.map(\.message).filter { $0.contains(text) } }
    }
}

private struct CapturingHandler: LogHandler {
    let log: CapturedLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        log.lines.withLock { $0.append((event.level, "\(event.message) \(fields)")) }
    }
}

/// A running endpoint server on 127.0.0.1 at a port the kernel chose.
private struct RunningServer {
    let channel: any Channel
    var port: Int { channel.localAddress?.port ?? 0 }

    init(
        _ endpoint: HTTPEndpointKind, _ limiter: HTTPConnectionLimiter,
        body: @escaping @Sendable () -> String = { "{}" }
    ) async throws {
        channel = try await HTTPEndpointServer.bootstrap(endpoint: endpoint, connections: limiter) { _ in
            EndpointResponse(contentType: "application/json", body: body())
        }.bind(host: "127.0.0.1", port: 0).get()
    }

    func stop() async throws { try await channel.close() }
}

/// The value of one series in the metrics' text, or 0 when it is not there.
private func value(_ metrics: ProxyMetrics, _ series: String) -> Double {
    for line in metrics.render().split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1)) ?? 0
    }
    return 0
}

/// Polls `condition` every 10 ms until it holds or `seconds` pass.
private func eventually(within seconds: Double = 5, _ condition: () -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

private func quietLogger() -> Logger {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    return logger
}

@Suite("HTTP connection limits on loopback", .serialized, .timeLimit(.minutes(2)))
struct ConnectionLimitTests {
    /// Past the server's cap a new connection is closed at once (not by the timeout, which is a minute here),
    /// the open ones stay and are answered, and a freed slot lets the refused client in.
    @Test func pastTheCapANewConnectionIsClosedAtOnceAndAFreedSlotAdmitsIt() async throws {
        let metrics = ProxyMetrics()
        let limiter = HTTPConnectionLimiter(
            limits: HTTPConnectionLimits(maximumPerServer: 3, requestTimeout: .seconds(60)), metrics: metrics,
            logger: quietLogger())
        let server = try await RunningServer(.healthz, limiter)
        let open = try (0..<3).map { _ in try Client(port: server.port) }
        let openSeries = #"ipvs_proxy_http_connections{endpoint="healthz"}"#
        #expect(try await eventually { value(metrics, openSeries) == 3 })

        let refused = try Client(port: server.port)
        #expect(refused.isClosed(within: 2))
        #expect(value(metrics, #"ipvs_proxy_http_connections_refused_total{endpoint="healthz"}"#) == 1)
        #expect(open.allSatisfy { $0.isOpenAndQuiet })

        // One held connection asks and is answered as before; its slot comes back and the client gets through.
        let answer = open[0].get("/healthz")
        #expect(answer.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(answer.contains("Connection: close\r\n") && answer.contains("Content-Length: 2\r\n"))
        #expect(try await eventually { value(metrics, openSeries) == 2 })
        let again = try Client(port: server.port)
        #expect(again.get("/healthz").hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(value(metrics, #"ipvs_proxy_http_connections_refused_total{endpoint="healthz"}"#) == 1)
        #expect(value(metrics, #"ipvs_proxy_http_connections_timed_out_total{endpoint="healthz"}"#) == 0)
        #expect(open[1...].allSatisfy { $0.isOpenAndQuiet })
        try await server.stop()
    }

    /// A client that sends nothing, or half a request head, is closed after the timeout, and so is one that asks
    /// and never reads an answer too large for the socket's buffers; a client that asks gets its answer.
    @Test func aConnectionThatDoesNotFinishIsClosedAfterTheTimeout() async throws {
        let metrics = ProxyMetrics()
        let timeout = Duration.milliseconds(500)
        let limiter = HTTPConnectionLimiter(
            limits: HTTPConnectionLimits(maximumPerServer: 10, requestTimeout: timeout), metrics: metrics,
            logger: quietLogger())
        let server = try await RunningServer(.metrics, limiter)
        let started = Date()
        let silent = try Client(port: server.port)
        let half = try Client(port: server.port)
        half.send("GET /metrics HTTP/1.1\r\nHost: te")
        #expect(try Client(port: server.port).get("/metrics").hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(silent.isClosed(within: 5))
        #expect(half.isClosed(within: 5))
        #expect(Date().timeIntervalSince(started) >= 0.45)
        #expect(value(metrics, #"ipvs_proxy_http_connections_timed_out_total{endpoint="metrics"}"#) == 2)

        // 64 MiB do not fit in the sockets' buffers: the write never ends while the client does not read.
        let large = String(repeating: "x", count: 64 << 20)
        let big = try await RunningServer(.metrics, limiter) { large }
        let reader = try Client(port: big.port)
        reader.send("GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        let series = #"ipvs_proxy_http_connections_timed_out_total{endpoint="metrics"}"#
        #expect(try await eventually { value(metrics, series) == 3 })
        #expect(try await eventually { value(metrics, #"ipvs_proxy_http_connections{endpoint="metrics"}"#) == 0 })
        try await server.stop()
        try await big.stop()
    }

    /// A request that cannot be parsed ends its connection at once, not at the timeout (a minute here).
    @Test func aRequestThatCannotBeParsedIsClosedAtOnce() async throws {
        let metrics = ProxyMetrics()
        let limiter = HTTPConnectionLimiter(
            limits: HTTPConnectionLimits(maximumPerServer: 10, requestTimeout: .seconds(60)), metrics: metrics,
            logger: quietLogger())
        let server = try await RunningServer(.healthCheckNodePort, limiter)
        let client = try Client(port: server.port)
        client.send("\u{1}\u{2} NOT HTTP AT ALL\r\n\r\n")
        #expect(client.isClosed(within: 5))
        #expect(try await eventually { limiter.budget.inUse == 1 })
        try await server.stop()
    }

    /// The process-wide budget bounds the connections of all servers together (their listening sockets take a
    /// slot each), each server's cap notwithstanding; the slots come back as connections and servers close.
    @Test func theProcessBudgetLimitsTheSumOverTwoServers() async throws {
        let metrics = ProxyMetrics()
        let budget = ConnectionSlots(limit: 2 + 3)
        let limiter = HTTPConnectionLimiter(
            limits: HTTPConnectionLimits(maximumPerServer: 10, requestTimeout: .seconds(60)), budget: budget,
            metrics: metrics, logger: quietLogger())
        let healthz = try await RunningServer(.healthz, limiter)
        let metricsServer = try await RunningServer(.metrics, limiter)
        #expect(budget.inUse == 2)
        var onHealthz = try (0..<2).map { _ in try Client(port: healthz.port) }
        var onMetrics: Client? = try Client(port: metricsServer.port)
        #expect(try await eventually { budget.inUse == 5 })

        let refusedHere = try Client(port: metricsServer.port)
        let refusedThere = try Client(port: healthz.port)
        #expect(refusedHere.isClosed(within: 2))
        #expect(refusedThere.isClosed(within: 2))
        #expect(value(metrics, #"ipvs_proxy_http_connections_refused_total{endpoint="metrics"}"#) == 1)
        #expect(value(metrics, #"ipvs_proxy_http_connections_refused_total{endpoint="healthz"}"#) == 1)
        #expect(onHealthz.allSatisfy { $0.isOpenAndQuiet } && onMetrics?.isOpenAndQuiet == true)

        // A connection to one server ends: a slot for the other.
        onHealthz.removeLast()
        #expect(try await eventually { budget.inUse == 4 })
        #expect(try Client(port: metricsServer.port).get("/metrics").hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(value(metrics, #"ipvs_proxy_http_connections_refused_total{endpoint="metrics"}"#) == 1)

        // Closing a listener leaves its connections open: the clients end them.
        onHealthz.removeAll()
        onMetrics = nil
        try await healthz.stop()
        try await metricsServer.stop()
        #expect(try await eventually { budget.inUse == 0 }, "\(budget.inUse) slots still taken")
    }

    /// A failed accept (out of descriptors) is counted and holds the next accept back; a client that gave up
    /// (`ECONNABORTED`) is counted and does not.
    @Test func aFailedAcceptIsCountedAndBacksOff() throws {
        let metrics = ProxyMetrics()
        let limiter = HTTPConnectionLimiter(metrics: metrics, logger: quietLogger())
        for (code, backsOff) in [(EMFILE, true), (ECONNABORTED, false)] {
            let channel = EmbeddedChannel()
            let reads = ReadCounter()
            try channel.pipeline.syncOperations.addHandler(reads)
            try limiter.configureServer(channel, endpoint: .healthCheckNodePort)
            channel.pipeline.fireErrorCaught(IOError(errnoCode: code, reason: "accept"))
            channel.read()
            #expect(reads.count == (backsOff ? 0 : 1), "errno \(code)")
            _ = try? channel.finish()
        }
        #expect(
            value(metrics, #"ipvs_proxy_http_accept_failures_total{endpoint="health-check-node-port"}"#) == 2)
        #expect(limiter.budget.inUse == 0)
    }

    /// A flood is one line when it starts, then one summary per interval while it goes on, then one line once an
    /// interval passes without any.
    @Test func theLogSaysWhenRefusalsStartThenSumsThemUp() async throws {
        let log = CapturedLog()
        let metrics = ProxyMetrics()
        let limiter = HTTPConnectionLimiter(
            limits: HTTPConnectionLimits(maximumPerServer: 1, requestTimeout: .seconds(60)), metrics: metrics,
            logger: log.logger, summaryInterval: .seconds(1))
        let server = try await RunningServer(.healthz, limiter)
        let holder = try Client(port: server.port)
        #expect(try await eventually { value(metrics, #"ipvs_proxy_http_connections{endpoint="healthz"}"#) == 1 })
        for _ in 0..<20 { #expect(try Client(port: server.port).isClosed(within: 2)) }
        #expect(log.messages(containing: "refusing HTTP connections").count == 1)
        #expect(
            try await eventually { !log.messages(containing: "no HTTP connection refused or closed").isEmpty })
        let summaries = log.messages(containing: "HTTP connections refused or closed in the last")
        let refusedInSummaries = summaries.compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("refused=") }.flatMap { Int($0.dropFirst(8)) }
        }
        #expect(refusedInSummaries.reduce(0, +) == 19, "\(summaries)")
        #expect(summaries.count <= 2, "\(summaries)")
        _ = holder
        try await server.stop()
    }

    @Test func theSummaryCountsWhatFollowsTheFirstEventAndEndsOnAQuietInterval() {
        var summary = ConnectionEventSummary()
        #expect(summary.tick() == .idle)
        let starts = [
            summary.record(.refused(.perServer)), summary.record(.refused(.processBudget)),
            summary.record(.timedOut), summary.record(.acceptFailed("EMFILE")),
        ]
        #expect(starts == [true, false, false, false])
        let ticks = [summary.tick(), summary.tick(), summary.tick()]
        #expect(ticks == [.summary(.init(refused: 1, timedOut: 1, acceptFailures: 1)), .ended, .idle])
        let startsAgain = summary.record(.timedOut)
        #expect(startsAgain)
    }
}

/// Counts the reads that reach the front of a pipeline.
private final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Never
    var count = 0

    func read(context: ChannelHandlerContext) {
        count += 1
        context.read()
    }
}

@Suite("The descriptor limit and the connection budget", .timeLimit(.minutes(2)))
struct DescriptorLimitTests {
    @Test func theSoftLimitGoesToTheHardOneOrTheKernelsCeiling() {
        let limit = DescriptorLimit(soft: 1024, hard: 524288)
        #expect(limit.raised(kernelCeiling: 1_048_576) == DescriptorLimit(soft: 524288, hard: 524288))
        let unlimited = DescriptorLimit(soft: 1024, hard: DescriptorLimit.unlimited)
        #expect(unlimited.raised(kernelCeiling: 1_048_576).soft == 1_048_576)
        #expect(unlimited.raised(kernelCeiling: nil) == unlimited)
        #expect(DescriptorLimit(soft: 4096, hard: 4096).raised(kernelCeiling: nil).soft == 4096)
        #expect(unlimited.description == "soft 1024, hard unlimited")
    }

    /// The test process's soft limit is set below its hard limit first (half of it, far above what the tests
    /// running alongside hold), so that the raise has something to do.
    @Test func raisingLeavesTheSoftLimitAtTheHardOne() throws {
        let start = try DescriptorLimit.current()
        if start.soft == start.hard && start.hard != DescriptorLimit.unlimited && start.hard >= 8192 {
            try DescriptorLimit.set(DescriptorLimit(soft: start.hard / 2, hard: start.hard))
        }
        let raise = DescriptorLimit.raiseSoftLimitToHard()
        #expect(raise.error == nil)
        let now = try DescriptorLimit.current()
        #expect(now == raise.after)
        #expect(now.soft == now.hard || now.hard == DescriptorLimit.unlimited)
        #expect((raise.after?.soft ?? 0) > (raise.before?.soft ?? 0) || start.hard < 8192)
        #expect((DescriptorLimit.openCount() ?? 0) >= 3)
    }

    @Test func theBudgetIsTheSoftLimitLessWhatIsOpenAndTheReserve() {
        #expect(ConnectionSlots.processBudget(softLimit: 2048, openNow: 40).limit == 2048 - 40 - 128)
        #expect(ConnectionSlots.processBudget(softLimit: 100, openNow: 40).limit == 0)
        #expect(ConnectionSlots.processBudget(softLimit: DescriptorLimit.unlimited, openNow: 0).limit > 1 << 40)
        let slots = ConnectionSlots(limit: 2)
        #expect(slots.take() && slots.take() && !slots.take())
        slots.takeAlways()
        #expect(slots.inUse == 3)
        slots.give()
        #expect(!slots.take())
        slots.give()
        #expect(slots.take())
    }
}
