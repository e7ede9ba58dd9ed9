import ArgumentParser
import ProxyConfiguration
import ProxyDaemon

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

    @OptionGroup var source: SourceOptions
    @OptionGroup var node: NodeOptions
    @OptionGroup var netfilter: NetfilterOptions
    @OptionGroup var state: StateOptions
    @OptionGroup var namespace: NamespaceOptions
    @OptionGroup var pacing: PacingOptions
    @OptionGroup var kernel: KernelOptions
    @OptionGroup var endpoints: EndpointOptions
    @OptionGroup var logging: LoggingOptions

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

    func validate() throws {
        if !["ipvs", ""].contains(proxyMode) {
            throw ValidationError(
                "--proxy-mode: '\(proxyMode)' is not supported: ipvs-proxy is kube-proxy's IPVS mode only")
        }
    }

    func run() async throws {
        if cleanup {
            try CleanupCommand.cleanUp(state: state, namespace: namespace, dryRun: false)
            return
        }
        let settings: DaemonSettings
        do {
            settings = try self.settings()
        } catch {
            printError("\(error)")
            throw ExitStatus.badInput
        }
        do {
            try await Daemon(settings: settings).run()
        } catch let failure as Daemon.StartFailure {
            printError("\(failure)")
            throw ExitStatus.failure
        }
    }
}
