import Foundation
import HostSystem
import Interfaces
import KernelAccess
import Logging
import ProxyConfiguration
import ServiceLifecycle
import StateSources
import Sync

/// The node daemon, assembled from its settings: logging, the descriptor limit, the kernel's settings and
/// connections, the source, the sync loop, the watch on the node's addresses, the HTTP endpoints and the
/// health-check node ports, run as one service group until SIGTERM or SIGINT.
package struct Daemon: Sendable {
    package let settings: DaemonSettings

    package init(settings: DaemonSettings) {
        self.settings = settings
    }

    /// Why the daemon could not start; its description is the one line to print.
    package struct StartFailure: Error, CustomStringConvertible {
        package var description: String
    }

    /// Runs until a graceful shutdown.
    /// - Throws: ``StartFailure`` when it cannot start; a service's error while it runs.
    package func run() async throws {
        HeapMemory.configure()
        let logger = Self.bootstrapLogging(level: settings.logLevel, format: settings.loggingFormat)
        let descriptors = DescriptorLimit.raiseSoftLimitToHard()
        Self.log(descriptors, logger: logger)
        for warning in settings.warnings { logger.warning("\(warning)") }
        if Privileges.hasNetworkAdministration() == false {
            throw StartFailure(description: Privileges.missingNetworkAdministration)
        }
        let (lock, syncer, addressMonitor) = try openKernel(logger: logger)

        let metrics = ProxyMetrics()
        // kube-proxy's health timeout: twice the sync period.
        let health = HealthState(timeout: settings.loop.syncPeriod * 2)
        let (source, apiClient) = try makeSource(logger: logger)
        let connections = HTTPConnectionLimiter(
            limits: settings.http,
            // A limit that cannot be read leaves nothing to budget against: the caps per server still hold.
            budget: descriptors.after.map { .processBudget(softLimit: $0.soft) } ?? .unlimited, metrics: metrics,
            logger: logger)
        let healthCheckPorts = HealthCheckPorts(
            health: health, metrics: metrics, logger: logger, networkNamespacePath: settings.networkNamespacePath,
            connections: connections)
        let loop = SyncLoop(
            syncer: syncer, source: source, configuration: settings.loop, metrics: metrics, health: health,
            logger: logger, clock: ContinuousClock(), healthCheckPorts: healthCheckPorts)

        var services: [any ServiceLifecycle.Service] = [loop, SignalService(loop: loop)]
        if let addresses = syncer.part(ServiceAddressPart.self) {
            services.append(
                NodeAddressWatch(monitor: addressMonitor, addresses: addresses, logger: logger) {
                    loop.nodeAddressesChanged()
                })
        }
        services += endpoints(metrics: metrics, health: health, connections: connections, logger: logger)
        logger.info(
            "starting",
            metadata: [
                "version": "\(settings.version)", "node": "\(settings.loop.nodeName)",
                "scheduler": "\(settings.loop.scheduler)", "syncPeriod": "\(GoDuration(settings.loop.syncPeriod))",
                "minSyncPeriod": "\(GoDuration(settings.loop.minSyncPeriod))",
                "source": "\(sourceDescription)", "httpConnections": "\(connections.description)",
            ])
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        try await apiClient?.shutdown()
        withExtendedLifetime(lock) {}
    }

    /// Log lines to standard error, as text or kube-proxy's JSON.
    private static func bootstrapLogging(level: Logger.Level, format: LoggingFormat) -> Logger {
        LoggingSystem.bootstrap { label in
            switch format {
            case .text:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                return JSONLogHandler(label: label, level: level)
            }
        }
        return Logger(label: "ipvs-proxy")
    }

    /// Says in one line what the open-file limit was and is.
    static func log(_ raise: DescriptorLimit.Raise, logger: Logger) {
        let metadata: Logger.Metadata = [
            "before": "\(raise.before.map { "\($0)" } ?? "unknown")",
            "after": "\(raise.after.map { "\($0)" } ?? "unknown")",
        ]
        if let error = raise.error {
            logger.warning("open-file limit not raised to the hard limit: \(error)", metadata: metadata)
        } else if raise.before == raise.after {
            logger.info("open-file limit already at the hard limit", metadata: metadata)
        } else {
            logger.info("open-file limit raised to the hard limit", metadata: metadata)
        }
    }

    /// Takes the state folder's lock, opens the kernel's connections, applies the kernel settings, and says what
    /// other tables' policies will drop.
    private func openKernel(logger: Logger) throws -> (StateLock, Syncer, AddressMonitor) {
        do {
            let lock = try StateLock(directory: settings.stateDirectory)
            let kernel = try KernelAccess(networkNamespacePath: settings.networkNamespacePath)
            let syncer = kernel.syncer(
                stateDirectory: settings.stateDirectory, linkName: settings.linkName, netfilter: settings.netfilter)
            let monitor = try AddressMonitor(networkNamespacePath: settings.networkNamespacePath)
            try settings.kernel.apply(
                settings: KernelSettings(networkNamespacePath: settings.networkNamespacePath), ipvs: kernel.ipvs,
                inInitialNamespace: settings.networkNamespacePath == nil, logger: logger)
            for warning in settings.netfilterWarnings + kernel.forwardPolicyWarnings() {
                logger.warning("\(warning)")
            }
            return (lock, syncer, monitor)
        } catch {
            throw StartFailure(description: "\(error)")
        }
    }

    /// The source of Services and endpoints, and the API client to shut down after, if it is the API.
    private func makeSource(logger: Logger) throws -> (any ClusterSource, KubernetesAPIClient?) {
        switch settings.source {
        case .manifests(let paths, let pollInterval):
            return (ManifestFolderSource(paths: paths, pollInterval: pollInterval, logger: logger), nil)
        case .api(let kubeconfig, let context, let master):
            do {
                let server = try Self.apiServer(kubeconfig: kubeconfig, context: context, master: master)
                logger.info("using the Kubernetes API", metadata: ["connection": "\(server)"])
                let client = try KubernetesAPIClient(configuration: server)
                return (KubernetesAPISource(client: client, nodeName: settings.loop.nodeName, logger: logger), client)
            } catch {
                throw StartFailure(description: "\(error)")
            }
        }
    }

    /// The API server to watch: the kubeconfig's, else the in-cluster service account's, with `master` in place of
    /// its server when given; with `master` alone (no kubeconfig, not in a pod), that URL with no credentials, as
    /// kube-proxy does.
    package static func apiServer(kubeconfig: String?, context: String?, master: String?) throws
        -> APIServerConfiguration
    {
        var server: APIServerConfiguration
        if let kubeconfig {
            server = try APIServerConfiguration.kubeconfig(at: kubeconfig, context: context)
        } else if let master, (try? APIServerConfiguration.inCluster()) == nil {
            return APIServerConfiguration(server: master)
        } else {
            server = try APIServerConfiguration.inCluster()
        }
        if let master { server.server = master }
        return server
    }

    private var sourceDescription: String {
        switch settings.source {
        case .manifests(let paths, _): "manifests \(paths)"
        case .api: "api"
        }
    }

    /// The HTTP endpoints: `/healthz` and `/livez`, and `/metrics` with kube-proxy's other answers there.
    private func endpoints(
        metrics: ProxyMetrics, health: HealthState, connections: HTTPConnectionLimiter, logger: Logger
    ) -> [any ServiceLifecycle.Service] {
        var servers: [any ServiceLifecycle.Service] = []
        let hardFail = settings.bindAddressHardFail
        if let endpoint = settings.healthzAddress {
            servers.append(
                HTTPEndpointServer(
                    host: endpoint.host, port: endpoint.port, endpoint: .healthz, logger: logger, hardFail: hardFail,
                    connections: connections
                ) { path in
                    switch path {
                    case "/healthz": metrics.counting(health.response(includeNodeEligible: true), probe: .healthz)
                    case "/livez": metrics.counting(health.response(includeNodeEligible: false), probe: .livez)
                    default: nil
                    }
                })
        }
        if let endpoint = settings.metricsAddress {
            let configz = settings.configuration.configzBody
            servers.append(
                HTTPEndpointServer(
                    host: endpoint.host, port: endpoint.port, endpoint: .metrics, logger: logger, hardFail: hardFail,
                    connections: connections
                ) { path in
                    switch path {
                    case "/metrics": EndpointResponse(contentType: "text/plain; version=0.0.4", body: metrics.render())
                    // kube-proxy's answers: its mode as plain text, component-base's bare healthz, its configuration.
                    case "/proxyMode": EndpointResponse(contentType: "text/plain; charset=utf-8", body: "ipvs")
                    case "/healthz": EndpointResponse(contentType: "text/plain; charset=utf-8", body: "ok")
                    case "/configz": EndpointResponse(contentType: "application/json", body: configz)
                    default: nil
                    }
                })
        }
        return servers
    }
}
