import ArgumentParser
import Foundation
import ProxyConfiguration
import ProxyDaemon

/// How `run`'s flags and a `--config` file combine, by kube-proxy's rule (`Complete` in cmd/kube-proxy/app,
/// Kubernetes 1.34), in one direction: kube-proxy's flags stand for a configuration; with a file, the file's
/// configuration is used instead, and kube-proxy's other flags are ignored, except `--hostname-override` and the
/// logging flags, which beat it; the daemon's settings are then made from that configuration alone, and
/// ipvs-proxy's own flags (`--manifests`, `--state-dir`, ...), which have no field in it, are added.
extension RunCommand {
    /// Reads `--config` when given and resolves the daemon's settings.
    /// - Throws: ``ConfigurationFileError`` for a bad file (exit 2).
    func settings() throws -> DaemonSettings {
        var configuration = flagConfiguration
        var warnings: [String] = []
        if let config {
            configuration = try KubeProxyConfiguration.load(path: config)
            try configuration.validate(file: config)
            if let nodeName = node.nodeName, !nodeName.isEmpty { configuration.hostnameOverride = nodeName }
            logging.configure(&configuration, overriding: true)
            warnings = ignoredFlagWarnings(config)
        }
        var settings = DaemonSettings(kubeProxy: configuration, logLevel: logging.logLevel)
        settings.warnings = warnings
        if !source.manifests.isEmpty {
            // A kubeconfig the file names goes unused with --manifests, as --master does.
            settings.source = .manifests(source.manifests, pollInterval: pacing.pollInterval.duration)
        } else if case .api(let kubeconfig, _, _) = settings.source {
            settings.source = .api(kubeconfig: kubeconfig, context: source.context, master: master)
        }
        settings.loop.drainCheckPeriod = pacing.drainCheckPeriod.duration
        settings.loop.nodePortAddresses.addresses = node.nodePortAddresses.addresses
        settings.netfilter.cleansStaleFlows = !netfilter.noConntrackCleanup
        settings.stateDirectory = state.stateDir
        settings.linkName = state.linkName
        settings.networkNamespacePath = namespace.networkNamespacePath
        settings.http = endpoints.limits
        settings.version = ProxyVersion.current
        return settings
    }

    /// kube-proxy's flags, as the configuration they stand for.
    var flagConfiguration: KubeProxyConfiguration {
        var configuration = KubeProxyConfiguration()
        node.configure(&configuration)
        netfilter.configure(&configuration)
        kernel.configure(&configuration)
        logging.configure(&configuration, overriding: false)
        configuration.ipvs.syncPeriod = pacing.syncPeriod
        configuration.ipvs.minSyncPeriod = pacing.minSyncPeriod
        configuration.healthzBindAddress = endpoints.healthzBindAddress
        configuration.metricsBindAddress = endpoints.metricsBindAddress
        configuration.bindAddressHardFail = endpoints.bindAddressHardFail
        configuration.clientConnection.kubeconfig = source.kubeconfig ?? ""
        return configuration
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
