import ArgumentParser
import Foundation
import ProxyConfiguration

/// How `run`'s flags and a `--config` file combine, by kube-proxy's rule (`Complete` in cmd/kube-proxy/app,
/// Kubernetes 1.34): with a file, the file's values are used and kube-proxy's other flags are ignored, except
/// `--hostname-override` and the logging flags, which beat it; ipvs-proxy's own flags (`--manifests`,
/// `--state-dir`, ...) have no field in the file and always apply.
extension RunCommand {
    /// The configuration in effect, and what the caller should be warned of.
    struct Resolved {
        /// This command with kube-proxy's flags set from the configuration in effect.
        var command: RunCommand
        var configuration: KubeProxyConfiguration
        var warnings: [String]
    }

    /// Reads `--config` when given and combines it with the flags.
    /// - Throws: ``ConfigurationFileError`` for a bad file (exit 2).
    func resolved() throws -> Resolved {
        guard let config else {
            return Resolved(command: self, configuration: flagConfiguration, warnings: [])
        }
        var configuration = try KubeProxyConfiguration.load(path: config)
        try configuration.validate(file: config)
        if let nodeName = node.nodeName, !nodeName.isEmpty { configuration.hostnameOverride = nodeName }
        if let verbosity { configuration.logging.verbosity = UInt32(verbosity) }
        if let loggingFormat { configuration.logging.format = loggingFormat.rawValue }
        var command = self
        command.apply(configuration)
        return Resolved(command: command, configuration: configuration, warnings: ignoredFlagWarnings(config))
    }

    /// kube-proxy's flags, as the configuration they stand for.
    var flagConfiguration: KubeProxyConfiguration {
        var configuration = KubeProxyConfiguration()
        configuration.hostnameOverride = node.nodeName ?? ""
        configuration.ipvs.scheduler = node.scheduler
        configuration.nodePortAddresses = node.nodePortAddressTexts
        configuration.clusterCIDR = netfilter.clusterCIDRs.joined(separator: ",")
        configuration.detectLocalMode = netfilter.detectLocalMode
        configuration.detectLocal.bridgeInterface = netfilter.podBridgeInterface ?? ""
        configuration.detectLocal.interfaceNamePrefix = netfilter.podInterfaceNamePrefix ?? ""
        configuration.iptables.masqueradeAll = netfilter.masqueradeAll
        configuration.iptables.masqueradeBit = Int32(clamping: netfilter.masqueradeBit)
        configuration.ipvs.syncPeriod = syncPeriod
        configuration.ipvs.minSyncPeriod = minSyncPeriod
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
        configuration.healthzBindAddress = healthzBindAddress
        configuration.metricsBindAddress = metricsBindAddress
        configuration.bindAddressHardFail = bindAddressHardFail
        configuration.oomScoreAdj = Int32(clamping: oomScoreAdj)
        configuration.clientConnection.kubeconfig = kubeconfig ?? ""
        configuration.logging.verbosity = UInt32(clamping: verbosity ?? 0)
        configuration.logging.format = (loggingFormat ?? .text).rawValue
        return configuration
    }

    /// Sets kube-proxy's flags from a configuration.
    mutating func apply(_ configuration: KubeProxyConfiguration) {
        node.nodeName = configuration.hostnameOverride.isEmpty ? nil : configuration.hostnameOverride
        node.scheduler = configuration.ipvs.scheduler.isEmpty ? "rr" : configuration.ipvs.scheduler
        node.nodePortAddressFlags = configuration.nodePortAddresses
        netfilter.clusterCIDRs = configuration.clusterCIDRs
        netfilter.detectLocalMode = configuration.detectLocalMode
        netfilter.podBridgeInterface = configuration.detectLocal.bridgeInterface
        netfilter.podInterfaceNamePrefix = configuration.detectLocal.interfaceNamePrefix
        netfilter.masqueradeAll = configuration.iptables.masqueradeAll
        netfilter.masqueradeBit = Int(configuration.iptables.masqueradeBit ?? 14)
        syncPeriod = configuration.ipvs.syncPeriod
        minSyncPeriod = configuration.ipvs.minSyncPeriod
        strictArp = configuration.ipvs.strictARP
        tcpTimeout = configuration.ipvs.tcpTimeout
        tcpfinTimeout = configuration.ipvs.tcpFinTimeout
        udpTimeout = configuration.ipvs.udpTimeout
        // A null pointer is kube-proxy's default; zero sizes leave the kernel's table alone.
        conntrackMaxPerCore = Int(configuration.conntrack.maxPerCore ?? 32768)
        conntrackMin = Int(configuration.conntrack.min ?? 131072)
        conntrackTcpTimeoutEstablished = configuration.conntrack.tcpEstablishedTimeout ?? .seconds(86400)
        conntrackTcpTimeoutCloseWait = configuration.conntrack.tcpCloseWaitTimeout ?? .seconds(3600)
        conntrackTcpBeLiberal = configuration.conntrack.tcpBeLiberal
        conntrackUdpTimeout = configuration.conntrack.udpTimeout
        conntrackUdpTimeoutStream = configuration.conntrack.udpStreamTimeout
        healthzBindAddress = configuration.healthzBindAddress
        metricsBindAddress = configuration.metricsBindAddress
        bindAddressHardFail = configuration.bindAddressHardFail
        oomScoreAdj = Int(configuration.oomScoreAdj ?? -999)
        // With --manifests the file's kubeconfig goes unused, as --master does.
        kubeconfig =
            manifests.isEmpty && !configuration.clientConnection.kubeconfig.isEmpty
            ? configuration.clientConnection.kubeconfig : nil
        // Verbosity 0 leaves --log-level in charge.
        if configuration.logging.verbosity > 0 { verbosity = Int(configuration.logging.verbosity) }
        loggingFormat = LoggingFormat(rawValue: configuration.logging.format)
        proxyMode = "ipvs"
    }

    /// The kube-proxy flags given with `--config` that the file overrides (kube-proxy ignores them silently).
    private func ignoredFlagWarnings(_ file: String) -> [String] {
        guard let defaults = try? RunCommand.parse([]) else { return [] }
        var given = flagConfiguration
        // These beat the file: not ignored.
        given.hostnameOverride = ""
        given.logging = KubeProxyConfiguration.Logging()
        var fallback = defaults.flagConfiguration
        fallback.logging = KubeProxyConfiguration.Logging()
        let defaultFields = Self.flattened(fallback)
        let fields = Self.flattened(given).filter { defaultFields[$0.key] != $0.value }.keys.sorted()
        guard !fields.isEmpty else { return [] }
        return [
            "--config \(file) is in use: the flags for \(fields.joined(separator: ", ")) are ignored, as kube-proxy "
                + "ignores them; set these fields in the file"
        ]
    }

    /// A configuration's fields by path, as JSON text.
    private static func flattened(_ configuration: KubeProxyConfiguration) -> [String: String] {
        guard let data = try? JSONEncoder().encode(configuration),
            let object = try? JSONSerialization.jsonObject(with: data)
        else { return [:] }
        var fields: [String: String] = [:]
        func walk(_ value: Any, _ path: String) {
            if let map = value as? [String: Any], !map.isEmpty {
                for (key, nested) in map { walk(nested, path.isEmpty ? key : "\(path).\(key)") }
            } else if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed]) {
                fields[path] = String(decoding: data, as: UTF8.self)
            }
        }
        walk(object, "")
        return fields
    }
}

/// kube-proxy's `--logging-format`.
enum LoggingFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    case text
    case json
}
