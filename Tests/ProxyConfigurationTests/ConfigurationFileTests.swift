import Foundation
import Testing

@testable import ProxyConfiguration

/// kubeadm's file, as a v1.34.0 cluster's ConfigMap has it (Tests/Fixtures/kubeadm/README.md), unedited.
func kubeadmFixture(_ name: String = "kube-proxy-config.conf") -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/kubeadm/\(name)").path
}

/// A minimal file with `body` after its type lines.
func configuration(_ body: String) throws(ConfigurationFileError) -> KubeProxyConfiguration {
    try KubeProxyConfiguration.decode(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n" + body, file: "test.conf")
}

/// The error a file body gets.
func refusal(_ body: String) -> ConfigurationFileError? {
    do {
        _ = try configuration(body)
        return nil
    } catch {
        return error
    }
}

@Suite("kube-proxy's configuration file", .timeLimit(.minutes(2)))
struct ConfigurationFileTests {
    @Test func kubeadmsFileTakesKubeProxysDefaultsForItsZeroValues() throws {
        let file = try KubeProxyConfiguration.load(path: kubeadmFixture())
        try file.validate(file: "kube-proxy-config.conf")
        var expected = KubeProxyConfiguration()
        expected.clusterCIDR = "172.17.0.0/16"
        expected.clientConnection.kubeconfig = "/var/lib/kube-proxy/kubeconfig.conf"
        #expect(file == expected)
        // The values that matter most, spelled out rather than only compared with the type's own defaults.
        #expect(file.ipvs.syncPeriod == .seconds(30))
        #expect(file.ipvs.minSyncPeriod == .zero)
        #expect(file.iptables.masqueradeBit == 14)
        #expect(file.conntrack.maxPerCore == 32768)
        #expect(file.conntrack.min == 131072)
        #expect(file.conntrack.tcpEstablishedTimeout == .seconds(86400))
        #expect(file.conntrack.tcpCloseWaitTimeout == .seconds(3600))
        #expect(file.oomScoreAdj == -999)
        #expect(file.configSyncPeriod == .seconds(900))
        #expect(file.healthzBindAddress == "0.0.0.0:10256")
        #expect(file.metricsBindAddress == "127.0.0.1:10249")
        #expect(file.logging.flushFrequency == .seconds(5))
        #expect(file.detectLocalMode == "ClusterCIDR")
        #expect(file.clientConnection.qps == 5 && file.clientConnection.burst == 10)
    }

    @Test func explicitValuesAreKeptAndPointerZerosAreValues() throws {
        let file = try configuration(
            """
            ipvs: {scheduler: lc, syncPeriod: 1m, minSyncPeriod: 2s, strictARP: true, tcpTimeout: 900s}
            iptables: {masqueradeBit: 0, masqueradeAll: true}
            conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, udpTimeout: 30s, tcpBeLiberal: true}
            oomScoreAdj: 0
            healthzBindAddress: 10.0.0.5
            metricsBindAddress: "0.0.0.0:9999"
            nodePortAddresses: [10.0.0.0/8]
            logging: {format: json, verbosity: 4, flushFrequency: 1000000000}
            """)
        #expect(file.ipvs.scheduler == "lc")
        #expect(file.ipvs.syncPeriod == .seconds(60))
        #expect(file.ipvs.minSyncPeriod == .seconds(2))
        #expect(file.ipvs.strictARP)
        #expect(file.ipvs.tcpTimeout == .seconds(900))
        #expect(file.iptables.masqueradeBit == 0)
        #expect(file.iptables.masqueradeAll)
        #expect(file.conntrack.maxPerCore == 0)
        #expect(file.conntrack.min == 0)
        #expect(file.conntrack.tcpEstablishedTimeout == .zero)
        #expect(file.conntrack.udpTimeout == .seconds(30))
        #expect(file.conntrack.tcpBeLiberal)
        #expect(file.oomScoreAdj == 0)
        #expect(file.healthzBindAddress == "10.0.0.5:10256")
        #expect(file.metricsBindAddress == "0.0.0.0:9999")
        #expect(file.nodePortAddresses == ["10.0.0.0/8"])
        #expect(file.logging.format == "json")
        #expect(file.logging.verbosity == 4)
        #expect(file.logging.flushFrequency == .seconds(1))
    }

    @Test func anIPv6BindAddressMovesTheDefaultEndpoints() throws {
        let file = try configuration("bindAddress: \"::\"\nhealthzBindAddress: \"fd00::1\"\n")
        #expect(file.healthzBindAddress == "[fd00::1]:10256")
        #expect(file.metricsBindAddress == "[::1]:10249")
    }

    @Test func jsonIsReadToo() throws {
        let text = """
            {"apiVersion":"kubeproxy.config.k8s.io/v1alpha1","kind":"KubeProxyConfiguration","mode":"ipvs",\
            "ipvs":{"scheduler":"sh","excludeCIDRs":["10.1.0.0/16"]},"clusterCIDR":"10.244.0.0/16,fd00:10::/56"}
            """
        let file = try KubeProxyConfiguration.decode(text, file: "c.json")
        try file.validate(file: "c.json")
        #expect(file.ipvs.scheduler == "sh")
        #expect(file.ipvs.excludeCIDRs == ["10.1.0.0/16"])
        #expect(file.clusterCIDRs == ["10.244.0.0/16", "fd00:10::/56"])
    }

    @Test(arguments: [
        ("ipvs:\n  schedular: lc\n", "ipvs.schedular", "unknown field"),
        (
            "logging:\n  options:\n    text:\n      infoBufferSiz: 0\n", "logging.options.text.infoBufferSiz",
            "unknown field"
        ),
        ("conntrak: {}\n", "conntrak", "unknown field"),
        ("ipvs:\n  scheduler: lc\n  scheduler: rr\n", "ipvs.scheduler", "given twice"),
        ("ipvs:\n  scheduler: lc\nipvs:\n  strictARP: true\n", "ipvs", "given twice"),
        (
            "logging: {vmodule: [{filePattern: a, verbosity: 1, verbosity: 2}]}\n", "logging.vmodule[0].verbosity",
            "given twice"
        ),
        ("mode: iptables\n", "mode", #""iptables" is not supported"#),
        ("ipvs: {syncPeriod: 30}\n", "ipvs.syncPeriod", "must be a string"),
        ("ipvs: {syncPeriod: thirty}\n", "ipvs.syncPeriod", "is not a duration"),
        ("ipvs: {strictARP: \"true\"}\n", "ipvs.strictARP", "must be true or false"),
        ("iptables: {masqueradeBit: 3000000000}\n", "iptables.masqueradeBit", "out of range"),
        ("ipvs: 5\n", "ipvs", "must be a mapping"),
        ("nodePortAddresses: [1]\n", "nodePortAddresses[0]", "must be a string"),
    ])
    func refusesNamingTheField(_ body: String, _ path: String, _ reason: String) throws {
        let error = try #require(refusal(body))
        #expect(error.path == path)
        #expect(error.reason.contains(reason), "\(error)")
        #expect(error.description.hasPrefix("test.conf: \(path): "))
    }

    @Test func refusesAnotherTypeOrVersion() throws {
        #expect(throws: ConfigurationFileError.self) {
            try KubeProxyConfiguration.decode("apiVersion: v1\nkind: ConfigMap\n", file: "cm.yaml")
        }
        let error = try #require(
            throws: ConfigurationFileError.self,
            performing: {
                try KubeProxyConfiguration.decode(
                    "apiVersion: kubeproxy.config.k8s.io/v1alpha2\nkind: KubeProxyConfiguration\n", file: "c")
            })
        #expect(error.path == "apiVersion")
    }

    @Test(arguments: [
        ("ipvs: {scheduler: fastest}\n", "ipvs.scheduler"),
        ("clusterCIDR: 10.244.0.0/16,10.245.0.0/16\n", "clusterCIDR"),
        ("clusterCIDR: 10.244.0.0\n", "clusterCIDR"),
        ("nodePortAddresses: [primary, 10.0.0.0/8]\n", "nodePortAddresses"),
        ("detectLocalMode: BridgeInterface\n", "detectLocal.bridgeInterface"),
        ("detectLocalMode: Magic\n", "detectLocalMode"),
        ("iptables: {masqueradeBit: 32}\n", "iptables.masqueradeBit"),
        ("metricsBindAddress: \"127.0.0.1:99999\"\n", "metricsBindAddress"),
        ("oomScoreAdj: -1001\n", "oomScoreAdj"),
        ("ipvs: {excludeCIDRs: [nonsense]}\n", "ipvs.excludeCIDRs[0]"),
        ("ipvs: {syncPeriod: 1s, minSyncPeriod: 2s}\n", "ipvs.minSyncPeriod"),
    ])
    func validationNamesTheField(_ body: String, _ path: String) throws {
        let file = try configuration(body)
        let error = try #require(
            throws: ConfigurationFileError.self, performing: { try file.validate(file: "test.conf") })
        #expect(error.path == path, "\(error)")
    }

    @Test func configzServesTheConfigurationUnderItsGroup() throws {
        var file = try KubeProxyConfiguration.load(path: kubeadmFixture())
        file.hostnameOverride = "node-a"
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(file.configzBody.utf8)) as? [String: Any])
        let body = try #require(object["kubeproxy.config.k8s.io"] as? [String: Any])
        #expect(body["hostnameOverride"] as? String == "node-a")
        #expect((body["ipvs"] as? [String: Any])?["syncPeriod"] as? String == "30s")
        #expect((body["conntrack"] as? [String: Any])?["maxPerCore"] as? Int == 32768)
        #expect(body["mode"] as? String == "ipvs")
    }
}

@Suite("kube-proxy's configuration file: what is not one", .timeLimit(.minutes(2)))
struct ConfigurationFileShapeTests {
    @Test func refusesASecondDocument() throws {
        let error = try #require(refusal("---\napiVersion: v1\nkind: ConfigMap\n"))
        #expect(error.path.isEmpty)
        #expect(error.reason.contains("document"), "\(error)")
    }

    @Test func refusesWhatIsNotYAML() throws {
        let error = try #require(refusal("ipvs: [\n"))
        #expect(error.reason.contains("is not YAML or JSON"), "\(error)")
    }
}
