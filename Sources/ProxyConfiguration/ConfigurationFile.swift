import Foundation
import Yams

extension KubeProxyConfiguration {
    /// Reads a `KubeProxyConfiguration` file (YAML or JSON), as kube-proxy's `--config` does, but strictly.
    ///
    /// kube-proxy decodes v1alpha1 leniently: it logs unknown and duplicate fields and goes on, so a misspelled
    /// field silently keeps its default. A proxy that takes over a node's traffic should not guess, so this
    /// refuses them, naming the field's path (`ipvs.schedular`).
    /// - Throws: ``ConfigurationFileError`` naming the file and the field.
    package static func load(path: String) throws(ConfigurationFileError) -> KubeProxyConfiguration {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationFileError(file: path, path: "", reason: "cannot be read: \(error.localizedDescription)")
        }
        return try decode(text, file: path)
    }

    /// Decodes a configuration document; `file` names it in errors.
    package static func decode(_ text: String, file: String) throws(ConfigurationFileError) -> KubeProxyConfiguration {
        let root = try compose(text, file: file)
        var reader = try FieldReader(root, file: file, path: "")
        let apiVersion = try reader.string("apiVersion")
        let kind = try reader.string("kind")
        guard kind == Self.kind else {
            throw ConfigurationFileError(
                file: file, path: "kind", reason: "is \(kind.map { "'\($0)'" } ?? "missing"), not '\(Self.kind)'")
        }
        guard apiVersion == Self.apiVersion else {
            throw ConfigurationFileError(
                file: file, path: "apiVersion",
                reason: "is \(apiVersion.map { "'\($0)'" } ?? "missing"), not '\(Self.apiVersion)' (the only version "
                    + "kube-proxy reads)")
        }
        var configuration = KubeProxyConfiguration()
        try configuration.read(&reader)
        try reader.finish()
        return configuration
    }

    /// The document's root node. Yams refuses duplicate fields without saying where they are nested; the
    /// duplicate is then renamed and the document read again, so that the walk names its path.
    private static func compose(_ text: String, file: String) throws(ConfigurationFileError) -> Node? {
        var text = text
        var duplicates: [String: String] = [:]
        for _ in 0..<100 {
            do {
                // One document only: Yams refuses a second one.
                let root = try Yams.compose(yaml: text)
                if let root, let (path, name) = Self.renamedDuplicate(in: root, duplicates) {
                    throw ConfigurationFileError(file: file, path: path, reason: "'\(name)' is given twice")
                }
                return root
            } catch let error as ConfigurationFileError {
                throw error
            } catch YamlError.duplicatedKeysInMapping(let keys, let context) {
                let marker = "ipvs-proxy-duplicate-\(duplicates.count)-"
                guard let key = keys.first, let renamed = rename(at: context.mark, in: text, prefix: marker) else {
                    throw ConfigurationFileError(file: file, path: "", reason: "a field is given twice: \(keys)")
                }
                duplicates[marker + key] = key
                text = renamed
            } catch {
                throw ConfigurationFileError(file: file, path: "", reason: "is not YAML or JSON: \(error)")
            }
        }
        throw ConfigurationFileError(file: file, path: "", reason: "has too many duplicate fields")
    }

    /// Prefixes the key that starts at `mark` (1-based line and column).
    private static func rename(at mark: Mark, in text: String, prefix: String) -> String? {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
        guard mark.line >= 1, mark.line <= lines.count, mark.column >= 1, mark.column <= lines[mark.line - 1].count
        else { return nil }
        var offset = mark.column - 1
        if ["\"", "'"].contains(lines[mark.line - 1][offset]) { offset += 1 }
        lines[mark.line - 1].insert(contentsOf: prefix.unicodeScalars, at: offset)
        return lines.map { String(String.UnicodeScalarView($0)) }.joined(separator: "\n")
    }

    /// The path of a renamed duplicate, and its original name.
    private static func renamedDuplicate(in node: Node, _ duplicates: [String: String], path: String = "")
        -> (String, String)?
    {
        switch node {
        case .mapping(let mapping):
            for (key, value) in mapping {
                let name = key.string ?? ""
                let original = duplicates[name] ?? name
                let here = path.isEmpty ? original : "\(path).\(original)"
                if duplicates[name] != nil { return (here, original) }
                if let found = renamedDuplicate(in: value, duplicates, path: here) { return found }
            }
        case .sequence(let sequence):
            for (index, item) in sequence.enumerated() {
                if let found = renamedDuplicate(in: item, duplicates, path: "\(path)[\(index)]") { return found }
            }
        default:
            break
        }
        return nil
    }
}

extension KubeProxyConfiguration {
    /// Reads every field of the root; absent, null and zero values keep kube-proxy's defaults.
    fileprivate mutating func read(_ root: inout FieldReader) throws(ConfigurationFileError) {
        featureGates = try root.booleanMap("featureGates") ?? featureGates
        var client = try root.nested("clientConnection")
        try clientConnection.read(&client)
        var logs = try root.nested("logging")
        try logging.read(&logs)
        hostnameOverride = try root.string("hostnameOverride") ?? ""
        bindAddress = try root.nonEmptyString("bindAddress") ?? bindAddress
        let healthz = try root.string("healthzBindAddress") ?? ""
        let metrics = try root.string("metricsBindAddress") ?? ""
        defaultBindAddresses(healthz: healthz, metrics: metrics)
        bindAddressHardFail = try root.bool("bindAddressHardFail") ?? false
        enableProfiling = try root.bool("enableProfiling") ?? false
        showHiddenMetricsForVersion = try root.string("showHiddenMetricsForVersion") ?? ""
        if let mode = try root.nonEmptyString("mode") {
            guard mode == "ipvs" else {
                throw ConfigurationFileError(
                    file: root.file, path: "mode",
                    reason: "\"\(mode)\" is not supported: ipvs-proxy is kube-proxy's ipvs mode only (give ipvs, or "
                        + "leave it empty)")
            }
        }
        var iptablesReader = try root.nested("iptables")
        try iptables.read(&iptablesReader)
        var ipvsReader = try root.nested("ipvs")
        try ipvs.read(&ipvsReader)
        var nftablesReader = try root.nested("nftables")
        try nftables.read(&nftablesReader)
        var winkernelReader = try root.nested("winkernel")
        try winkernel.read(&winkernelReader)
        detectLocalMode = try root.nonEmptyString("detectLocalMode") ?? detectLocalMode
        var detect = try root.nested("detectLocal")
        detectLocal.bridgeInterface = try detect.string("bridgeInterface") ?? ""
        detectLocal.interfaceNamePrefix = try detect.string("interfaceNamePrefix") ?? ""
        try detect.finish()
        clusterCIDR = try root.string("clusterCIDR") ?? ""
        nodePortAddresses = try root.strings("nodePortAddresses") ?? []
        oomScoreAdj = try root.integer("oomScoreAdj", as: Int32.self) ?? oomScoreAdj
        var conntrackReader = try root.nested("conntrack")
        try conntrack.read(&conntrackReader)
        configSyncPeriod = try root.duration("configSyncPeriod").flatMap { $0 == .zero ? nil : $0 } ?? configSyncPeriod
        portRange = try root.string("portRange") ?? ""
        windowsRunAsService = try root.bool("windowsRunAsService") ?? false
    }
}

/// Durations whose zero value takes the default.
extension Optional where Wrapped == GoDuration {
    fileprivate func or(_ fallback: GoDuration) -> GoDuration {
        guard let self, self != .zero else { return fallback }
        return self
    }
}

extension KubeProxyConfiguration.ClientConnection {
    fileprivate mutating func read(_ reader: inout FieldReader) throws(ConfigurationFileError) {
        kubeconfig = try reader.string("kubeconfig") ?? ""
        acceptContentTypes = try reader.string("acceptContentTypes") ?? ""
        contentType = try reader.nonEmptyString("contentType") ?? contentType
        if let value = try reader.number("qps"), value != 0 { qps = Float(value) }
        if let value = try reader.integer("burst", as: Int32.self), value != 0 { burst = value }
        try reader.finish()
    }
}

extension KubeProxyConfiguration.Logging {
    fileprivate mutating func read(_ reader: inout FieldReader) throws(ConfigurationFileError) {
        format = try reader.nonEmptyString("format") ?? format
        guard ["text", "json"].contains(format) else {
            throw ConfigurationFileError(
                file: reader.file, path: reader.fieldPath("format"), reason: "'\(format)' is not text or json")
        }
        flushFrequency = try reader.durationOrNanoseconds("flushFrequency").or(flushFrequency)
        verbosity = try reader.integer("verbosity", as: UInt32.self) ?? 0
        vmodule = []
        for (index, node) in (try reader.sequence("vmodule") ?? []).enumerated() {
            var item = try reader.item(node, of: "vmodule", at: index)
            vmodule.append(
                VModuleItem(
                    filePattern: try item.string("filePattern") ?? "",
                    verbosity: try item.integer("verbosity", as: UInt32.self) ?? 0))
            try item.finish()
        }
        var optionsReader = try reader.nested("options")
        for stream in ["text", "json"] {
            var streamReader = try optionsReader.nested(stream)
            var streamOptions = StreamOptions()
            streamOptions.splitStream = try streamReader.bool("splitStream") ?? false
            streamOptions.infoBufferSize = try streamReader.quantity("infoBufferSize") ?? "0"
            try streamReader.finish()
            if stream == "text" { options.text = streamOptions } else { options.json = streamOptions }
        }
        try optionsReader.finish()
        try reader.finish()
    }
}

extension KubeProxyConfiguration.IPTables {
    fileprivate mutating func read(_ reader: inout FieldReader) throws(ConfigurationFileError) {
        masqueradeBit = try reader.integer("masqueradeBit", as: Int32.self) ?? masqueradeBit
        masqueradeAll = try reader.bool("masqueradeAll") ?? false
        localhostNodePorts = try reader.bool("localhostNodePorts") ?? localhostNodePorts
        syncPeriod = try reader.duration("syncPeriod").or(syncPeriod)
        minSyncPeriod = try reader.duration("minSyncPeriod").or(minSyncPeriod)
        try reader.finish()
    }
}

extension KubeProxyConfiguration.IPVS {
    fileprivate mutating func read(_ reader: inout FieldReader) throws(ConfigurationFileError) {
        syncPeriod = try reader.duration("syncPeriod").or(syncPeriod)
        minSyncPeriod = try reader.duration("minSyncPeriod") ?? .zero
        scheduler = try reader.string("scheduler") ?? ""
        excludeCIDRs = try reader.strings("excludeCIDRs") ?? []
        strictARP = try reader.bool("strictARP") ?? false
        tcpTimeout = try reader.duration("tcpTimeout") ?? .zero
        tcpFinTimeout = try reader.duration("tcpFinTimeout") ?? .zero
        udpTimeout = try reader.duration("udpTimeout") ?? .zero
        try reader.finish()
    }
}

extension KubeProxyConfiguration.NFTables {
    fileprivate mutating func read(_ reader: inout FieldReader) throws(ConfigurationFileError) {
        masqueradeBit = try reader.integer("masqueradeBit", as: Int32.self) ?? masqueradeBit
        masqueradeAll = try reader.bool("masqueradeAll") ?? false
        syncPeriod = try reader.duration("syncPeriod").or(syncPeriod)
        minSyncPeriod = try reader.duration("minSyncPeriod").or(minSyncPeriod)
        try reader.finish()
    }
}

extension KubeProxyConfiguration.Winkernel {
    fileprivate mutating func read(_ reader: inout FieldReader) throws(ConfigurationFileError) {
        networkName = try reader.string("networkName") ?? ""
        sourceVip = try reader.string("sourceVip") ?? ""
        enableDSR = try reader.bool("enableDSR") ?? false
        rootHnsEndpointName = try reader.string("rootHnsEndpointName") ?? ""
        forwardHealthCheckVip = try reader.bool("forwardHealthCheckVip") ?? false
        try reader.finish()
    }
}

extension KubeProxyConfiguration.Conntrack {
    fileprivate mutating func read(_ reader: inout FieldReader) throws(ConfigurationFileError) {
        maxPerCore = try reader.integer("maxPerCore", as: Int32.self) ?? maxPerCore
        min = try reader.integer("min", as: Int32.self) ?? min
        tcpEstablishedTimeout = try reader.duration("tcpEstablishedTimeout") ?? tcpEstablishedTimeout
        tcpCloseWaitTimeout = try reader.duration("tcpCloseWaitTimeout") ?? tcpCloseWaitTimeout
        tcpBeLiberal = try reader.bool("tcpBeLiberal") ?? false
        udpTimeout = try reader.duration("udpTimeout") ?? .zero
        udpStreamTimeout = try reader.duration("udpStreamTimeout") ?? .zero
        try reader.finish()
    }
}
