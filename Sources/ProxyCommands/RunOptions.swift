import ArgumentParser
import Logging
import ProxyConfiguration
import ProxyDaemon

extension GoDuration: ExpressibleByArgument {
    package init?(argument: String) { self.init(argument) }
    package var defaultValueDescription: String { description }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension LoggingFormat: ExpressibleByArgument {}

/// Where `run` reads Services and endpoints from, besides `--config`'s kubeconfig.
struct SourceOptions: ParsableArguments {
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

    func validate() throws {
        if !manifests.isEmpty && kubeconfig != nil {
            throw ValidationError("Give either --manifests or --kubeconfig, not both.")
        }
    }
}

/// How often `run` syncs and looks.
struct PacingOptions: ParsableArguments {
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

    func validate() throws {
        if syncPeriod.duration <= .zero || minSyncPeriod.duration < .zero || drainCheckPeriod.duration <= .zero {
            throw ValidationError("--sync-period and --drain-check-period must be above 0, --min-sync-period 0 or more")
        }
    }
}

/// The kernel settings `run` makes at start, with kube-proxy's flag names.
struct KernelOptions: ParsableArguments {
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

    func validate() throws {
        if !(-1000...1000).contains(oomScoreAdj) {
            throw ValidationError("--oom-score-adj: \(oomScoreAdj) is not within -1000 to 1000")
        }
        if conntrackMaxPerCore < 0 || conntrackMin < 0 {
            throw ValidationError("--conntrack-max-per-core and --conntrack-min must be 0 or more")
        }
    }

    /// What the flags stand for in kube-proxy's configuration.
    func configure(_ configuration: inout KubeProxyConfiguration) {
        configuration.ipvs.strictARP = strictArp
        configuration.ipvs.tcpTimeout = tcpTimeout
        configuration.ipvs.tcpFinTimeout = tcpfinTimeout
        configuration.ipvs.udpTimeout = udpTimeout
        configuration.conntrack.maxPerCore = Int32(clamping: conntrackMaxPerCore)
        configuration.conntrack.min = Int32(clamping: conntrackMin)
        configuration.conntrack.tcpEstablishedTimeout = conntrackTcpTimeoutEstablished
        configuration.conntrack.tcpCloseWaitTimeout = conntrackTcpTimeoutCloseWait
        configuration.conntrack.tcpBeLiberal = conntrackTcpBeLiberal
        configuration.conntrack.udpTimeout = conntrackUdpTimeout
        configuration.conntrack.udpStreamTimeout = conntrackUdpTimeoutStream
        configuration.oomScoreAdj = Int32(clamping: oomScoreAdj)
    }
}

/// Where `run` serves its HTTP endpoints, and how many connections they hold.
struct EndpointOptions: ParsableArguments {
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

    func validate() throws {
        for (flag, value) in [
            ("--healthz-bind-address", healthzBindAddress), ("--metrics-bind-address", metricsBindAddress),
        ]
        where !value.isEmpty && HostPort(value) == nil {
            throw ValidationError("\(flag): '\(value)' is not host:port")
        }
        if httpMaxConnections < 1 {
            throw ValidationError("--http-max-connections: \(httpMaxConnections) is below 1")
        }
        if httpRequestTimeout.duration <= .zero {
            throw ValidationError("--http-request-timeout: \(httpRequestTimeout) is not above 0")
        }
    }

    /// The limits of the HTTP servers' connections.
    var limits: HTTPConnectionLimits {
        HTTPConnectionLimits(maximumPerServer: httpMaxConnections, requestTimeout: httpRequestTimeout.duration)
    }
}

/// How `run` logs, with kube-proxy's `-v` and `--logging-format` beside `--log-level`.
struct LoggingOptions: ParsableArguments {
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

    func validate() throws {
        if let verbosity, verbosity < 0 { throw ValidationError("-v: \(verbosity) is below 0") }
    }

    /// What the flags stand for in kube-proxy's configuration: they beat a configuration file's.
    func configure(_ configuration: inout KubeProxyConfiguration, overriding file: Bool) {
        if !file || verbosity != nil { configuration.logging.verbosity = UInt32(clamping: verbosity ?? 0) }
        if !file || loggingFormat != nil { configuration.logging.format = (loggingFormat ?? .text).rawValue }
    }
}
