import Foundation

/// kube-proxy's configuration, `kubeproxy.config.k8s.io/v1alpha1` `KubeProxyConfiguration`, with every field of
/// the type and kube-proxy's v1alpha1 defaults in place of absent, null and zero values.
///
/// The fields and their defaults follow Kubernetes 1.34 (`staging/src/k8s.io/kube-proxy/config/v1alpha1/types.go`
/// and `pkg/proxy/apis/config/v1alpha1/defaults.go`; the commits are cited in Docs/daemon.md). Property names are
/// the file's field names, so the value encodes to the JSON that `/configz` serves. Which fields ipvs-proxy uses,
/// and why it accepts but does not use the others, is in ``KubeProxyConfiguration/fieldUses``.
package struct KubeProxyConfiguration: Sendable, Hashable, Encodable {
    package static let apiVersion = "kubeproxy.config.k8s.io/v1alpha1"
    package static let kind = "KubeProxyConfiguration"

    package var featureGates: [String: Bool] = [:]
    package var clientConnection = ClientConnection()
    package var logging = Logging()
    package var hostnameOverride = ""
    package var bindAddress = "0.0.0.0"
    package var healthzBindAddress = "0.0.0.0:10256"
    package var metricsBindAddress = "127.0.0.1:10249"
    package var bindAddressHardFail = false
    package var enableProfiling = false
    package var showHiddenMetricsForVersion = ""
    /// `ipvs`; kube-proxy reads an empty mode as iptables, ipvs-proxy as ipvs (it has no other).
    package var mode = "ipvs"
    package var iptables = IPTables()
    package var ipvs = IPVS()
    package var nftables = NFTables()
    package var winkernel = Winkernel()
    package var detectLocalMode = "ClusterCIDR"
    package var detectLocal = DetectLocal()
    /// Comma-separated, one network per family.
    package var clusterCIDR = ""
    package var nodePortAddresses: [String] = []
    package var oomScoreAdj: Int32? = -999
    package var conntrack = Conntrack()
    package var configSyncPeriod = GoDuration.seconds(15 * 60)
    package var portRange = ""
    package var windowsRunAsService = false

    package init() {}

    /// component-base's `ClientConnectionConfiguration`.
    package struct ClientConnection: Sendable, Hashable, Encodable {
        package init() {}

        package var kubeconfig = ""
        package var acceptContentTypes = ""
        package var contentType = "application/vnd.kubernetes.protobuf"
        package var qps: Float = 5
        package var burst: Int32 = 10
    }

    /// component-base's `LoggingConfiguration` (logs/api/v1).
    package struct Logging: Sendable, Hashable, Encodable {
        package init() {}

        package var format = "text"
        package var flushFrequency = GoDuration.seconds(5)
        package var verbosity: UInt32 = 0
        package var vmodule: [VModuleItem] = []
        package var options = Options()

        package struct VModuleItem: Sendable, Hashable, Encodable {
            package init(filePattern: String = "", verbosity: UInt32 = 0) {
                self.filePattern = filePattern
                self.verbosity = verbosity
            }

            package var filePattern = ""
            package var verbosity: UInt32 = 0
        }

        package struct Options: Sendable, Hashable, Encodable {
            package init() {}

            package var text = StreamOptions()
            package var json = StreamOptions()
        }

        package struct StreamOptions: Sendable, Hashable, Encodable {
            package init() {}

            package var splitStream = false
            /// A resource quantity as written (`0`, `64Ki`).
            package var infoBufferSize = "0"
        }
    }

    package struct IPTables: Sendable, Hashable, Encodable {
        package init() {}

        package var masqueradeBit: Int32? = 14
        package var masqueradeAll = false
        package var localhostNodePorts: Bool? = true
        package var syncPeriod = GoDuration.seconds(30)
        package var minSyncPeriod = GoDuration.seconds(1)
    }

    package struct IPVS: Sendable, Hashable, Encodable {
        package init() {}

        package var syncPeriod = GoDuration.seconds(30)
        package var minSyncPeriod = GoDuration.zero
        /// Empty means kube-proxy's default, `rr`.
        package var scheduler = ""
        package var excludeCIDRs: [String] = []
        package var strictARP = false
        package var tcpTimeout = GoDuration.zero
        package var tcpFinTimeout = GoDuration.zero
        package var udpTimeout = GoDuration.zero
    }

    package struct NFTables: Sendable, Hashable, Encodable {
        package init() {}

        package var masqueradeBit: Int32? = 14
        package var masqueradeAll = false
        package var syncPeriod = GoDuration.seconds(30)
        package var minSyncPeriod = GoDuration.seconds(1)
    }

    package struct Winkernel: Sendable, Hashable, Encodable {
        package init() {}

        package var networkName = ""
        package var sourceVip = ""
        package var enableDSR = false
        package var rootHnsEndpointName = ""
        package var forwardHealthCheckVip = false
    }

    package struct DetectLocal: Sendable, Hashable, Encodable {
        package init() {}

        package var bridgeInterface = ""
        package var interfaceNamePrefix = ""
    }

    package struct Conntrack: Sendable, Hashable, Encodable {
        package init() {}

        package var maxPerCore: Int32? = 32768
        package var min: Int32? = 131072
        package var tcpEstablishedTimeout: GoDuration? = .seconds(24 * 3600)
        package var tcpCloseWaitTimeout: GoDuration? = .seconds(3600)
        package var tcpBeLiberal = false
        package var udpTimeout = GoDuration.zero
        package var udpStreamTimeout = GoDuration.zero
    }

    /// The healthz and metrics addresses kube-proxy derives from `bindAddress` when they are empty, and the port
    /// it appends when they have none (`getDefaultAddresses` and `AppendPortIfNeeded`).
    mutating func defaultBindAddresses(healthz: String, metrics: String) {
        let ipv6 = bindAddress.contains(":")
        healthzBindAddress = Self.withPort(healthz, default: (ipv6 ? "[::]" : "0.0.0.0"), port: 10256)
        metricsBindAddress = Self.withPort(metrics, default: (ipv6 ? "[::1]" : "127.0.0.1"), port: 10249)
    }

    private static func withPort(_ address: String, default host: String, port: Int) -> String {
        if address.isEmpty { return "\(host):\(port)" }
        // A bare host (IPv4, name, or an IPv6 address without brackets) gets the default port.
        let bracketed = address.hasPrefix("[")
        if bracketed ? address.contains("]:") : (address.filter { $0 == ":" }.count == 1) { return address }
        return bracketed || !address.contains(":") ? "\(address):\(port)" : "[\(address)]:\(port)"
    }
}

extension GoDuration: Encodable {
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension KubeProxyConfiguration {
    /// kube-proxy's `/configz` answer: the configuration in use under its API group's name.
    package var configzBody: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(["kubeproxy.config.k8s.io": self]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
