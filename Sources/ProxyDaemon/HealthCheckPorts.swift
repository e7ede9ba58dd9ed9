import HostSystem
import IPVSModel
import Logging
import NIOCore
import NIOPosix
import ProxyRules
import Synchronization

/// The health-check node ports of LoadBalancer Services with externalTrafficPolicy Local. On each, an HTTP server
/// answers a load balancer's probe as kube-proxy's does (pkg/proxy/healthcheck/service_health.go, Kubernetes 1.34):
/// 200 while this node has a ready endpoint of the Service and the proxy keeps up with changes, 503 otherwise.
///
/// The listeners follow each sync's translation: opened for a new port, closed for a port no Service has any more.
/// A port that cannot be opened (another program holds it) is logged, counted and tried again at the next sync;
/// the daemon goes on.
package final class HealthCheckPorts: Sendable {
    /// One listening socket.
    struct Listener: Hashable, CustomStringConvertible {
        var address: IPAddress
        var port: UInt16

        var description: String { "\(address.bracketedDescription):\(port)" }
    }

    private struct Check {
        var service: ServiceName
        var localEndpoints: [AddressFamily: Int]
    }

    private struct State {
        var checks: [UInt16: Check] = [:]
        var channels: [Listener: any Channel] = [:]
        var wanted: Set<Listener> = []
        var opening: Set<Listener> = []
        var stopped = false
    }

    let health: HealthState
    let metrics: ProxyMetrics
    let logger: Logger
    /// The network namespace the ports listen in (the node's), when not the daemon's own.
    let networkNamespacePath: String?
    /// The limits the ports' connections are held to (each port is a server of its own).
    let connections: HTTPConnectionLimiter
    private let state = Mutex(State())

    /// - Parameter connections: the limits shared with the daemon's other servers; without, the default limits
    ///   per port and no process-wide budget.
    package init(
        health: HealthState, metrics: ProxyMetrics, logger: Logger, networkNamespacePath: String? = nil,
        connections: HTTPConnectionLimiter? = nil
    ) {
        self.health = health
        self.metrics = metrics
        self.logger = logger
        self.networkNamespacePath = networkNamespacePath
        self.connections = connections ?? HTTPConnectionLimiter(metrics: metrics, logger: logger)
    }

    /// The listeners a set of health checks needs: each port on each of `addresses` (every address of a family
    /// when `nil`) of its Service's families.
    static func listeners(for checks: [ServiceName: HealthCheck], on addresses: [IPAddress]?) -> Set<Listener> {
        var result: Set<Listener> = []
        for check in checks.values {
            for family in check.localEndpoints.keys {
                let bound = addresses?.filter { $0.family == family } ?? [IPAddress.unspecified(family)]
                for address in bound { result.insert(Listener(address: address, port: check.port)) }
            }
        }
        return result
    }

    /// Makes the listeners match `checks`, on the node-port `addresses` (all of the node's when `nil`), and
    /// answers with their counts from now on. Returns at once: sockets open and close on NIO's event loops.
    package func update(_ checks: [ServiceName: HealthCheck], on addresses: [IPAddress]?) {
        let wanted = Self.listeners(for: checks, on: addresses)
        var byPort: [UInt16: Check] = [:]
        // Two Services never share a port in a valid cluster; if they do, the first by name answers.
        for (service, check) in checks.sorted(by: { $0.key < $1.key }) where byPort[check.port] == nil {
            byPort[check.port] = Check(service: service, localEndpoints: check.localEndpoints)
        }
        let (toOpen, toClose) = state.withLock { state -> ([Listener], [any Channel]) in
            guard !state.stopped else { return ([], []) }
            state.checks = byPort
            state.wanted = wanted
            let open = wanted.subtracting(state.channels.keys).subtracting(state.opening)
            state.opening.formUnion(open)
            let gone = state.channels.filter { !wanted.contains($0.key) }
            for listener in gone.keys { state.channels[listener] = nil }
            return (Array(open), Array(gone.values))
        }
        for channel in toClose { channel.close(promise: nil) }
        for listener in toOpen { open(listener) }
    }

    /// The listeners open now.
    var openListeners: Set<Listener> { state.withLock { Set($0.channels.keys) } }

    /// Closes every listener; later updates open none.
    package func stop() {
        let channels = state.withLock { state -> [any Channel] in
            state.stopped = true
            defer { state.channels = [:] }
            return Array(state.channels.values)
        }
        for channel in channels { channel.close(promise: nil) }
    }

    private func open(_ listener: Listener) {
        let family = listener.address.family
        let descriptor: Int32
        do {
            // Bound here, in the node's namespace; NIO listens on it.
            descriptor = try BoundSocket.tcp(
                address: listener.address, port: listener.port, networkNamespacePath: networkNamespacePath)
        } catch {
            state.withLock { _ = $0.opening.remove(listener) }
            failed(listener, error)
            return
        }
        let bootstrap = HTTPEndpointServer.bootstrap(endpoint: .healthCheckNodePort, connections: connections) {
            [self] _ in response(port: listener.port, family: family)
        }
        bootstrap.withBoundSocket(descriptor)
            .whenComplete { [self] result in
                let keep: Bool = state.withLock { state in
                    state.opening.remove(listener)
                    guard case .success(let channel) = result else { return false }
                    let stillWanted = !state.stopped && state.wanted.contains(listener)
                    if stillWanted { state.channels[listener] = channel }
                    return stillWanted
                }
                switch result {
                case .success(let channel):
                    if keep {
                        logger.info("health-check node port open", metadata: ["address": "\(listener)"])
                    } else {
                        channel.close(promise: nil)
                    }
                case .failure(let error):
                    failed(listener, error)
                }
            }
    }

    private func failed(_ listener: Listener, _ error: any Error) {
        metrics.recordHealthCheckPortFailure()
        logger.error(
            "could not open a health-check node port; trying again at the next sync",
            metadata: ["address": "\(listener)", "error": "\(error)"])
    }

    /// What a probe of `port` gets from a listener of `family`.
    func response(port: UInt16, family: AddressFamily) -> EndpointResponse {
        guard let check = state.withLock({ $0.checks[port] }) else {
            // The Service went between the connection and the request.
            return EndpointResponse(status: .serviceUnavailable, contentType: "text/plain", body: "")
        }
        return Self.response(
            service: check.service, localEndpoints: check.localEndpoints[family] ?? 0, proxyHealthy: health.isHealthy())
    }

    /// kube-proxy's answer, byte for byte: its JSON as Go's dedent leaves it, and the endpoint count as a weight.
    static func response(service: ServiceName, localEndpoints: Int, proxyHealthy: Bool) -> EndpointResponse {
        let body = """
            {
            \t"service": {
            \t\t"namespace": "\(service.namespace)",
            \t\t"name": "\(service.name)"
            \t},
            \t"localEndpoints": \(localEndpoints),
            \t"serviceProxyHealthy": \(proxyHealthy)
            }
            """
        return EndpointResponse(
            status: localEndpoints > 0 && proxyHealthy ? .ok : .serviceUnavailable, contentType: "application/json",
            body: body,
            headers: [("X-Content-Type-Options", "nosniff"), ("X-Load-Balancing-Endpoint-Weight", "\(localEndpoints)")])
    }
}
