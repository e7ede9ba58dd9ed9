import Foundation
import IPVSModel
import Logging
import ProxyRules
import Testing

@testable import ProxyDaemon

/// One HTTP request to 127.0.0.1:`port`; the whole answer, or `nil` when the connection is refused.
private func probe(port: UInt16, method: String = "GET", path: String = "/") -> String? {
    let connection = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(connection) }
    var timeout = timeval(tv_sec: 3, tv_usec: 0)
    setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(connection, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { return nil }
    let request = "\(method) \(path) HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n"
    _ = request.withCString { send(connection, $0, strlen($0), 0) }
    var reply: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = recv(connection, &buffer, buffer.count, 0)
        if count <= 0 { break }
        reply += buffer.prefix(count)
    }
    return String(decoding: reply, as: UTF8.self)
}

/// Polls `body` every 20 ms for up to 5 s until it gives a value.
private func eventually<Value>(_ body: () -> Value?) async throws -> Value? {
    for _ in 0..<250 {
        if let value = body() { return value }
        try await Task.sleep(for: .milliseconds(20))
    }
    return nil
}

@Suite("Health-check node ports", .serialized, .timeLimit(.minutes(2)))
struct HealthCheckPortsTests {
    private let edge = ServiceName(namespace: "shop", name: "edge")
    private let loopback = [IPAddress("127.0.0.1")!]

    private func ports(health: HealthState = HealthState(timeout: .seconds(60))) -> HealthCheckPorts {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return HealthCheckPorts(health: health, metrics: ProxyMetrics(), logger: logger)
    }

    /// kube-proxy's answer, byte for byte (pkg/proxy/healthcheck/service_health.go).
    @Test func theAnswerIsKubeProxys() {
        let ready = HealthCheckPorts.response(service: edge, localEndpoints: 2, proxyHealthy: true)
        #expect(ready.status == .ok)
        #expect(ready.contentType == "application/json")
        #expect(
            ready.body
                == "{\n\t\"service\": {\n\t\t\"namespace\": \"shop\",\n\t\t\"name\": \"edge\"\n\t},\n"
                + "\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}")
        #expect(
            ready.headers.map { "\($0.name): \($0.value)" } == [
                "X-Content-Type-Options: nosniff", "X-Load-Balancing-Endpoint-Weight: 2",
            ])
        #expect(
            HealthCheckPorts.response(service: edge, localEndpoints: 0, proxyHealthy: true).status
                == .serviceUnavailable)
        #expect(
            HealthCheckPorts.response(service: edge, localEndpoints: 3, proxyHealthy: false).status
                == .serviceUnavailable)
    }

    @Test func eachPortListensOnEveryAddressOfItsServicesFamiliesOrOnTheGivenOnes() {
        let checks = [
            edge: HealthCheck(port: 32000, localEndpoints: [.ipv4: 1, .ipv6: 1]),
            ServiceName(namespace: "shop", name: "v4"): HealthCheck(port: 32001, localEndpoints: [.ipv4: 0]),
        ]
        #expect(
            HealthCheckPorts.listeners(for: checks, on: nil).map(\.description).sorted() == [
                "0.0.0.0:32000", "0.0.0.0:32001", "[::]:32000",
            ])
        let addresses = ["192.168.1.10", "192.168.2.10", "fd00:1::10"].compactMap(IPAddress.init)
        #expect(
            HealthCheckPorts.listeners(for: checks, on: addresses).map(\.description).sorted() == [
                "192.168.1.10:32000", "192.168.1.10:32001", "192.168.2.10:32000", "192.168.2.10:32001",
                "[fd00:1::10]:32000",
            ])
    }

    /// A load balancer's probe, any path and method: 200 with local endpoints, 503 without, and nothing once the
    /// Service is gone.
    @Test func aProbeGetsTheCountOfLocalEndpointsUntilTheServiceGoes() async throws {
        let port = UInt16.random(in: 41000...48000)
        let health = HealthState(timeout: .seconds(60))
        let ports = ports(health: health)
        defer { ports.stop() }
        ports.update([edge: HealthCheck(port: port, localEndpoints: [.ipv4: 2])], on: loopback)
        let ready = try #require(try await eventually { probe(port: port, method: "HEAD", path: "/healthz?x=1") })
        #expect(ready.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(ready.contains("X-Load-Balancing-Endpoint-Weight: 2\r\n"))

        ports.update([edge: HealthCheck(port: port, localEndpoints: [.ipv4: 0])], on: loopback)
        let none = try #require(probe(port: port))
        #expect(none.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"))
        #expect(none.hasSuffix("\"localEndpoints\": 0,\n\t\"serviceProxyHealthy\": true\n}"))

        ports.update([:], on: loopback)
        #expect(try await eventually { probe(port: port) == nil ? true : nil } == true)
        #expect(ports.openListeners.isEmpty)
    }

    /// A port another program holds is counted and tried again at the next update.
    @Test func aPortThatCannotBeOpenedIsRetried() async throws {
        let port = UInt16.random(in: 48001...55000)
        let holder = ports()
        holder.update(
            [ServiceName(namespace: "other", name: "holder"): HealthCheck(port: port, localEndpoints: [.ipv4: 1])],
            on: loopback)
        try #require(try await eventually { holder.openListeners.isEmpty ? nil : true } == true)

        let metrics = ProxyMetrics()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let ports = HealthCheckPorts(health: HealthState(timeout: .seconds(60)), metrics: metrics, logger: logger)
        defer { ports.stop() }
        let checks = [edge: HealthCheck(port: port, localEndpoints: [.ipv4: 1])]
        ports.update(checks, on: loopback)
        let failures = "ipvs_proxy_health_check_port_failures_total 1"
        #expect(try await eventually { metrics.render().contains(failures) ? true : nil } == true)
        #expect(ports.openListeners.isEmpty)

        holder.stop()
        // The holder's socket closes on its event loop, after stop returns: the port is free once nothing answers.
        #expect(try await eventually { probe(port: port) == nil ? true : nil } == true)
        ports.update(checks, on: loopback)
        #expect(try await eventually { ports.openListeners.isEmpty ? nil : true } == true)
        #expect(try #require(probe(port: port)).contains("\"name\": \"edge\""))
    }
}
