import Foundation
import IPVSModel
import Logging
import NetfilterModel
import ProxyConfiguration
import Sync
import Translation

/// Everything `ipvs-proxy run` runs with, resolved once: kube-proxy's settings from its configuration (the file, or
/// what its flags stand for, ``init(kubeProxy:)``), then ipvs-proxy's own, which have no field there.
package struct DaemonSettings: Sendable {
    /// Where Services, EndpointSlices and the Node come from.
    package enum Source: Sendable, Equatable {
        /// Manifest files and folders, checked for changes this often.
        case manifests([String], pollInterval: Duration)
        /// The Kubernetes API server: a kubeconfig's (else the in-cluster service account's), with `master` in place
        /// of its server when given.
        case api(kubeconfig: String?, context: String?, master: String?)
    }

    package var source: Source = .api(kubeconfig: nil, context: nil, master: nil)
    /// The node's name, pacing, scheduler and node-port addresses.
    package var loop: SyncLoopConfiguration
    package var netfilter: NetfilterSettings
    /// Where the ownership record and the nftables ledger are kept.
    package var stateDirectory = "/run/ipvs-proxy"
    /// The dummy link that holds service addresses.
    package var linkName = "kube-ipvs0"
    /// The network namespace the rules go to, when not the daemon's own.
    package var networkNamespacePath: String?
    /// The sysctls, IPVS timeouts, conntrack sizing and OOM score set at start.
    package var kernel: KernelSetup
    /// Where `/healthz` and `/livez` are served, and `/metrics` (`nil`: not served).
    package var healthzAddress: HostPort?
    package var metricsAddress: HostPort?
    /// Whether an address that cannot be bound ends the daemon.
    package var bindAddressHardFail: Bool
    package var http = HTTPConnectionLimits()
    package var logLevel: Logger.Level
    package var loggingFormat: LoggingFormat
    /// kube-proxy's configuration in effect (the file's, or what the flags stand for), which `/configz` answers.
    package var configuration: KubeProxyConfiguration
    /// The version the start line says.
    package var version = ""
    /// What the operator should hear of at start (flags a configuration file overrode).
    package var warnings: [String] = []

    /// kube-proxy's settings, from its configuration (a file's, or the one kube-proxy's flags stand for), already
    /// validated; ipvs-proxy's own keep their defaults until set.
    /// - Parameter logLevel: `--log-level`, in charge while the configuration's verbosity is 0.
    package init(kubeProxy configuration: KubeProxyConfiguration, logLevel: Logger.Level = .info) {
        var loop = SyncLoopConfiguration(
            nodeName: Self.nodeName(
                override: configuration.hostnameOverride, hostName: ProcessInfo.processInfo.hostName))
        loop.syncPeriod = configuration.ipvs.syncPeriod.duration
        loop.minSyncPeriod = configuration.ipvs.minSyncPeriod.duration
        loop.scheduler =
            (try? Scheduler(validating: configuration.ipvs.scheduler.isEmpty ? "rr" : configuration.ipvs.scheduler))
            ?? .roundRobin
        loop.nodePortAddresses = NodePortAddressSelection(
            addresses: [], networks: configuration.nodePortAddresses.compactMap(IPNetwork.init),
            primary: configuration.nodePortAddresses == ["primary"])
        self.loop = loop
        netfilter = NetfilterSettings(rules: MasqueradeRules(kubeProxy: configuration))
        var kernel = KernelSetup()
        kernel.strictARP = configuration.ipvs.strictARP
        kernel.tcpTimeout = configuration.ipvs.tcpTimeout.duration
        kernel.tcpFinTimeout = configuration.ipvs.tcpFinTimeout.duration
        kernel.udpTimeout = configuration.ipvs.udpTimeout.duration
        // A field left out (a null pointer in kube-proxy) is kube-proxy's default; zero sizes leave the kernel's.
        let conntrack = configuration.conntrack
        kernel.conntrack = ConntrackSizing(
            maxPerCore: Int(conntrack.maxPerCore ?? 32768), minimum: Int(conntrack.min ?? 131072),
            tcpEstablishedTimeout: (conntrack.tcpEstablishedTimeout ?? .seconds(86400)).duration,
            tcpCloseWaitTimeout: (conntrack.tcpCloseWaitTimeout ?? .seconds(3600)).duration)
        kernel.conntrack.tcpBeLiberal = conntrack.tcpBeLiberal
        kernel.conntrack.udpTimeout = conntrack.udpTimeout.duration
        kernel.conntrack.udpStreamTimeout = conntrack.udpStreamTimeout.duration
        kernel.oomScoreAdjustment = Int(configuration.oomScoreAdj ?? -999)
        self.kernel = kernel
        healthzAddress = HostPort(configuration.healthzBindAddress)
        metricsAddress = HostPort(configuration.metricsBindAddress)
        bindAddressHardFail = configuration.bindAddressHardFail
        let verbosity = configuration.logging.verbosity
        // Verbosity 0 leaves --log-level in charge.
        self.logLevel = verbosity == 0 ? logLevel : verbosity <= 2 ? .info : verbosity <= 4 ? .debug : .trace
        loggingFormat = LoggingFormat(rawValue: configuration.logging.format) ?? .text
        self.configuration = configuration
        let kubeconfig = configuration.clientConnection.kubeconfig
        source = .api(kubeconfig: kubeconfig.isEmpty ? nil : kubeconfig, context: nil, master: nil)
    }

    /// kube-proxy's rule (`GetHostname` in k8s.io/component-helpers/node/util, Kubernetes 1.34): the override,
    /// or the host name; trimmed and lower-cased either way.
    package static func nodeName(override: String?, hostName: String) -> String {
        let name = (override.flatMap { $0.isEmpty ? nil : $0 } ?? hostName).trimmingCharacters(in: .whitespaces)
        return name.lowercased()
    }

    /// What the operator should hear of the netfilter settings at start.
    package var netfilterWarnings: [String] { netfilter.unmasqueradedWarnings }
}

extension NetfilterSettings {
    /// What will not be masqueraded, said at start as kube-proxy says it.
    package var unmasqueradedWarnings: [String] {
        guard !rules.masqueradeAll, case .networks(let networks) = rules.localTraffic, networks.isEmpty else {
            return []
        }
        return [
            "no --cluster-cidr: traffic to ClusterIPs from outside the cluster will not be masqueraded (give "
                + "--cluster-cidr, or --masquerade-all)"
        ]
    }
}

/// kube-proxy's `--logging-format`.
package enum LoggingFormat: String, CaseIterable, Sendable {
    case text
    case json
}

extension MasqueradeRules {
    /// The masquerade rules a (validated) kube-proxy configuration asks for.
    package init(kubeProxy configuration: KubeProxyConfiguration) {
        let networks = configuration.clusterCIDRs.compactMap(IPNetwork.init)
        let detection: LocalTrafficDetection =
            switch configuration.detectLocalMode {
            case "NodeCIDR": .nodePodNetworks
            case "BridgeInterface": .bridgeInterface(configuration.detectLocal.bridgeInterface)
            case "InterfaceNamePrefix": .interfaceNamePrefix(configuration.detectLocal.interfaceNamePrefix)
            default: .networks(networks)
            }
        self.init(
            markBit: Int(configuration.iptables.masqueradeBit ?? 14),
            masqueradeAll: configuration.iptables.masqueradeAll,
            localTraffic: detection)
    }
}
