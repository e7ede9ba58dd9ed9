import ArgumentParser
import Foundation
import HostSystem
import IPVS
import IPVSModel
import Interfaces
import Logging
import ProxyConfiguration
import ProxyDaemon
import ServiceLifecycle
import StateSources
import Sync
import UnixSignals

extension GoDuration: ExpressibleByArgument {
    package init?(argument: String) { self.init(argument) }
    package var defaultValueDescription: String { description }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run as the node's service proxy: keep IPVS in step with the Kubernetes API or a manifest folder.",
        discussion: """
            Watches Services, EndpointSlices and this node's Node (--node-name), from the Kubernetes API \
            (--kubeconfig, or in a pod the service account) or from the manifest files and folders given with \
            --manifests, and keeps the kernel's IPVS table, ipvs-proxy's nftables tables (masquerade, filtering, \
            source ranges) and conntrack in step with them, within --min-sync-period of a change; node ports \
            follow the node's addresses as they come and go. While the API server is unreachable the kernel keeps \
            the last good state. A full resync every --sync-period repairs changes others made to virtual servers \
            and tables ipvs-proxy owns; SIGHUP forces one. Removed TCP real servers with connections drain at \
            weight 0 and are deleted once their last connection ends (checked every --drain-check-period). A file \
            with a problem keeps its last good content in use; other files are unaffected. SIGTERM and SIGINT stop \
            the daemon and leave the rules in place.

            kube-proxy's configuration file (--config, KubeProxyConfiguration v1alpha1) can stand in for \
            kube-proxy's flags, as kube-proxy reads it.

            Serves /healthz and /livez (kube-proxy's JSON) on --healthz-bind-address, Prometheus metrics at \
            /metrics (and /proxyMode, /configz) on --metrics-bind-address, and a load balancer's probe on the health-check node port of each \
            LoadBalancer Service with externalTrafficPolicy Local. Durations are written as kube-proxy writes \
            them: 500ms, 2s, 1m.
            """
    )

    @Option(
        help: ArgumentHelp(
            "kube-proxy's configuration file (KubeProxyConfiguration v1alpha1, YAML or JSON). Its values are used "
                + "and kube-proxy's other flags ignored, except --hostname-override and the logging flags; "
                + "ipvs-proxy's own flags still apply. Unknown fields are refused.",
            valueName: "file"))
    var config: String?

    @Option(
        name: [.customShort("f"), .long],
        help: ArgumentHelp("A manifest file or folder to watch (repeatable), instead of the API.", valueName: "path"))
    var manifests: [String] = []

    @Option(
        help: ArgumentHelp(
            "A kubeconfig for the API server (its current context). Without it and --manifests: the in-cluster "
                + "service account.",
            valueName: "path"))
    var kubeconfig: String?

    @Option(help: ArgumentHelp("The kubeconfig context to use instead of its current one.", valueName: "name"))
    var context: String?

    @OptionGroup var node: NodeOptions
    @OptionGroup var netfilter: NetfilterOptions
    @OptionGroup var state: StateOptions
    @OptionGroup var namespace: NamespaceOptions

    @Option(
        name: [.long, .customLong("ipvs-sync-period")],
        help: ArgumentHelp("The longest time between full resyncs.", valueName: "duration"))
    var syncPeriod = GoDuration(.seconds(30))

    @Option(
        name: [.long, .customLong("ipvs-min-sync-period")],
        help: ArgumentHelp(
            "The shortest time between two syncs; changes within it are applied together.", valueName: "duration"))
    var minSyncPeriod = GoDuration(.seconds(1))

    @Option(
        help: ArgumentHelp(
            "How often draining real servers (weight 0) are checked for their last connection.", valueName: "duration"))
    var drainCheckPeriod = GoDuration(.seconds(5))

    @Option(help: ArgumentHelp("How often manifest files are checked for changes.", valueName: "duration"))
    var pollInterval = GoDuration(.milliseconds(200))

    @Flag(
        name: [.long, .customLong("ipvs-strict-arp")],
        help: "Set arp_ignore=1 and arp_announce=2 so service addresses are not announced by ARP.")
    var strictArp = false

    @Option(
        name: [.long, .customLong("ipvs-tcp-timeout")],
        help: ArgumentHelp("The IPVS TCP idle timeout (0 leaves the kernel's).", valueName: "duration"))
    var tcpTimeout = GoDuration(.zero)

    @Option(
        name: [.long, .customLong("ipvs-tcpfin-timeout")],
        help: ArgumentHelp("The IPVS TCP FIN_WAIT timeout (0 leaves the kernel's).", valueName: "duration"))
    var tcpfinTimeout = GoDuration(.zero)

    @Option(
        name: [.long, .customLong("ipvs-udp-timeout")],
        help: ArgumentHelp("The IPVS UDP timeout (0 leaves the kernel's).", valueName: "duration"))
    var udpTimeout = GoDuration(.zero)

    @Option(
        help: ArgumentHelp(
            "Connections to track per CPU; the conntrack table is sized to this times the CPUs, at least "
                + "--conntrack-min (0 leaves the kernel's size).",
            valueName: "count"))
    var conntrackMaxPerCore = 32768

    @Option(help: ArgumentHelp("The smallest conntrack table size to set.", valueName: "count"))
    var conntrackMin = 131072

    @Option(
        help: ArgumentHelp(
            "How long an idle established TCP connection stays tracked (0 leaves the kernel's).",
            valueName: "duration"))
    var conntrackTcpTimeoutEstablished = GoDuration(.seconds(86400))

    @Option(
        help: ArgumentHelp(
            "How long a TCP connection in CLOSE_WAIT stays tracked (0 leaves the kernel's).", valueName: "duration"))
    var conntrackTcpTimeoutCloseWait = GoDuration(.seconds(3600))

    @Flag(help: "Set nf_conntrack_tcp_be_liberal, so out-of-window TCP packets are not marked INVALID.")
    var conntrackTcpBeLiberal = false

    @Option(help: ArgumentHelp("The conntrack UDP timeout (0 leaves the kernel's).", valueName: "duration"))
    var conntrackUdpTimeout = GoDuration.zero

    @Option(help: ArgumentHelp("The conntrack UDP stream timeout (0 leaves the kernel's).", valueName: "duration"))
    var conntrackUdpTimeoutStream = GoDuration.zero

    @Option(
        help: ArgumentHelp(
            "The daemon's oom_score_adj, -1000 to 1000 (kube-proxy's default keeps it among the last killed).",
            valueName: "score"))
    var oomScoreAdj = -999

    @Flag(
        help:
            "Exit when the healthz or metrics address cannot be bound (otherwise that endpoint is logged and skipped).")
    var bindAddressHardFail = false

    @Option(help: ArgumentHelp("Where /healthz and /livez are served (empty: not served).", valueName: "host:port"))
    var healthzBindAddress = "0.0.0.0:10256"

    @Option(help: ArgumentHelp("Where /metrics is served (empty: not served).", valueName: "host:port"))
    var metricsBindAddress = "127.0.0.1:10249"

    @Option(
        help: ArgumentHelp(
            "The most connections each HTTP server (healthz, metrics, each health-check node port) holds at once; "
                + "past it, and past the process's budget (its open-file limit less a reserve), a new connection is "
                + "closed at once.",
            valueName: "count"))
    var httpMaxConnections = HTTPConnectionLimits.defaultMaximumPerServer

    @Option(
        help: ArgumentHelp(
            "How long an HTTP connection may stay open to send its request and take the answer; then it is "
                + "closed.",
            valueName: "duration"))
    var httpRequestTimeout = GoDuration(HTTPConnectionLimits.defaultRequestTimeout)

    @Option(help: "The lowest level of log messages printed: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: ArgumentHelp("kube-proxy's log format: text, or json (one JSON object per line)."))
    var loggingFormat: LoggingFormat?

    @Option(
        name: [.customShort("v"), .customLong("v")],
        help: ArgumentHelp(
            "kube-proxy's log verbosity, in place of --log-level: up to 2 info, 3 and 4 debug, 5 and more trace.",
            valueName: "level"))
    var verbosity: Int?

    @Option(
        help: ArgumentHelp(
            "kube-proxy's flag: the API server's URL, in place of the kubeconfig's (or the in-cluster) server.",
            valueName: "url"))
    var master: String?

    @Option(help: ArgumentHelp("kube-proxy's flag: only ipvs (the default) is accepted.", valueName: "mode"))
    var proxyMode = "ipvs"

    @Flag(
        help: ArgumentHelp(
            "kube-proxy's flag: remove what ipvs-proxy owns, as the cleanup command does, and exit (kube-proxy's "
                + "--cleanup flushes every IPVS rule; this leaves what others made)."))
    var cleanup = false

    /// The level to log at: -v when given, else --log-level.
    var effectiveLogLevel: Logger.Level {
        guard let verbosity else { return logLevel }
        return verbosity <= 2 ? .info : verbosity <= 4 ? .debug : .trace
    }

    func validate() throws {
        if !["ipvs", ""].contains(proxyMode) {
            throw ValidationError(
                "--proxy-mode: '\(proxyMode)' is not supported: ipvs-proxy is kube-proxy's IPVS mode only")
        }
        if let verbosity, verbosity < 0 { throw ValidationError("-v: \(verbosity) is below 0") }
        if !manifests.isEmpty && kubeconfig != nil {
            throw ValidationError("Give either --manifests or --kubeconfig, not both.")
        }
        for (flag, value) in [
            ("--healthz-bind-address", healthzBindAddress), ("--metrics-bind-address", metricsBindAddress),
        ]
        where !value.isEmpty && HostPort(value) == nil {
            throw ValidationError("\(flag): '\(value)' is not host:port")
        }
        if !(-1000...1000).contains(oomScoreAdj) {
            throw ValidationError("--oom-score-adj: \(oomScoreAdj) is not within -1000 to 1000")
        }
        if conntrackMaxPerCore < 0 || conntrackMin < 0 {
            throw ValidationError("--conntrack-max-per-core and --conntrack-min must be 0 or more")
        }
        if syncPeriod.duration <= .zero || minSyncPeriod.duration < .zero || drainCheckPeriod.duration <= .zero {
            throw ValidationError("--sync-period and --drain-check-period must be above 0, --min-sync-period 0 or more")
        }
        if httpMaxConnections < 1 {
            throw ValidationError("--http-max-connections: \(httpMaxConnections) is below 1")
        }
        if httpRequestTimeout.duration <= .zero {
            throw ValidationError("--http-request-timeout: \(httpRequestTimeout) is not above 0")
        }
    }

    func run() async throws {
        if cleanup {
            try CleanupCommand.cleanUp(state: state, namespace: namespace, dryRun: false)
            return
        }
        let resolved: Resolved
        do {
            resolved = try self.resolved()
        } catch {
            printError("\(error)")
            throw ExitStatus.badInput
        }
        try await resolved.command.runDaemon(configuration: resolved.configuration, warnings: resolved.warnings)
    }

    /// Runs the daemon with kube-proxy's flags already resolved against the configuration file.
    private func runDaemon(configuration kubeProxyConfiguration: KubeProxyConfiguration, warnings: [String])
        async throws
    {
        HeapMemory.configure()
        let level = effectiveLogLevel
        let format = loggingFormat ?? .text
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
        let logger = Logger(label: "ipvs-proxy")
        let descriptors = DescriptorLimit.raiseSoftLimitToHard()
        Self.log(descriptors, logger: logger)
        for warning in warnings { logger.warning("\(warning)") }
        try requireNetworkAdministration()
        let lock: StateLock
        let syncer: Syncer
        let addressMonitor: AddressMonitor
        do {
            lock = try StateLock(directory: state.stateDir)
            let kernel = try KernelAccess(namespace: namespace)
            syncer = kernel.syncer(state: state, netfilter: netfilter.settings)
            addressMonitor = try AddressMonitor(networkNamespacePath: namespace.networkNamespacePath)
            var setup = KernelSetup()
            setup.strictARP = strictArp
            setup.tcpTimeout = tcpTimeout.duration
            setup.tcpFinTimeout = tcpfinTimeout.duration
            setup.udpTimeout = udpTimeout.duration
            setup.conntrack = ConntrackSizing(
                maxPerCore: conntrackMaxPerCore, minimum: conntrackMin,
                tcpEstablishedTimeout: conntrackTcpTimeoutEstablished.duration,
                tcpCloseWaitTimeout: conntrackTcpTimeoutCloseWait.duration)
            setup.conntrack.tcpBeLiberal = conntrackTcpBeLiberal
            setup.conntrack.udpTimeout = conntrackUdpTimeout.duration
            setup.conntrack.udpStreamTimeout = conntrackUdpTimeoutStream.duration
            setup.oomScoreAdjustment = oomScoreAdj
            try setup.apply(
                settings: KernelSettings(networkNamespacePath: namespace.networkNamespacePath), ipvs: kernel.ipvs,
                inInitialNamespace: namespace.networkNamespacePath == nil, logger: logger)
            for warning in netfilter.warnings + kernel.forwardPolicyWarnings() {
                logger.warning("\(warning)")
            }
        } catch {
            printError("\(error)")
            throw ExitStatus.failure
        }

        var configuration = SyncLoopConfiguration(nodeName: node.resolvedNodeName)
        configuration.syncPeriod = syncPeriod.duration
        configuration.minSyncPeriod = minSyncPeriod.duration
        configuration.drainCheckPeriod = drainCheckPeriod.duration
        configuration.nodePortAddresses = node.nodePortAddresses
        configuration.scheduler = node.validatedScheduler
        let metrics = ProxyMetrics()
        // kube-proxy's health timeout: twice the sync period.
        let health = HealthState(timeout: syncPeriod.duration * 2)
        let source: any ClusterSource
        var apiClient: KubernetesAPIClient?
        if manifests.isEmpty {
            do {
                let server = try apiServer()
                logger.info("using the Kubernetes API", metadata: ["connection": "\(server)"])
                let client = try KubernetesAPIClient(configuration: server)
                apiClient = client
                source = KubernetesAPISource(client: client, nodeName: configuration.nodeName, logger: logger)
            } catch {
                printError("\(error)")
                throw ExitStatus.failure
            }
        } else {
            source = ManifestFolderSource(paths: manifests, pollInterval: pollInterval.duration, logger: logger)
        }
        let connections = HTTPConnectionLimiter(
            limits: HTTPConnectionLimits(
                maximumPerServer: httpMaxConnections, requestTimeout: httpRequestTimeout.duration),
            // A limit that cannot be read leaves nothing to budget against: the caps per server still hold.
            budget: descriptors.after.map { .processBudget(softLimit: $0.soft) } ?? .unlimited, metrics: metrics,
            logger: logger)
        let healthCheckPorts = HealthCheckPorts(
            health: health, metrics: metrics, logger: logger, networkNamespacePath: namespace.networkNamespacePath,
            connections: connections)
        let loop = SyncLoop(
            syncer: syncer, source: source, configuration: configuration, metrics: metrics, health: health,
            logger: logger, clock: ContinuousClock(), healthCheckPorts: healthCheckPorts)

        let addressWatch = NodeAddressWatch(
            monitor: addressMonitor, interfaces: syncer.addresses.connection, dummyLinkName: state.linkName,
            logger: logger
        ) { loop.nodeAddressesChanged() }
        var services: [any ServiceLifecycle.Service] = [loop, SignalService(loop: loop), addressWatch]
        let hardFail = bindAddressHardFail
        if let endpoint = HostPort(healthzBindAddress) {
            services.append(
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
        if let endpoint = HostPort(metricsBindAddress) {
            let configz = kubeProxyConfiguration.configzBody
            services.append(
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
        logger.info(
            "starting",
            metadata: [
                "version": "\(ProxyVersion.current)", "node": "\(configuration.nodeName)",
                "scheduler": "\(configuration.scheduler)", "syncPeriod": "\(syncPeriod)",
                "minSyncPeriod": "\(minSyncPeriod)",
                "source": "\(manifests.isEmpty ? "api" : "manifests \(manifests)")",
                "httpConnections": "\(connections.description)",
            ])
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        try await apiClient?.shutdown()
        withExtendedLifetime(lock) {}
    }
}

extension RunCommand {
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

    /// The API server to watch: the kubeconfig's, else the in-cluster service account's, with `--master` in
    /// place of its server when given; with `--master` alone (no kubeconfig, not in a pod), that URL with no
    /// credentials, as kube-proxy does.
    func apiServer() throws -> APIServerConfiguration {
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
}

/// Forces a full resync on SIGHUP.
struct SignalService: ServiceLifecycle.Service {
    let loop: SyncLoop<ContinuousClock>

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                loop.requestFullSync()
            }
        }
    }
}
