import Foundation
import IPVSModel
import Logging
import NetfilterModel
import ProxyConfiguration
import ProxyDaemon
import TestSupport
import Testing

@testable import ProxyCommands

/// kubeadm's file, as a v1.34.0 cluster's ConfigMap has it (Tests/Fixtures/kubeadm/README.md), unedited.
private let kubeadmConfig = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/kubeadm/kube-proxy-config.conf").path

@Suite("run's flags and --config, by kube-proxy's precedence", .timeLimit(.minutes(2)))
struct RunConfigurationTests {
    @Test func theFileBeatsKubeProxysFlagsButNotTheHostnameOrOurOwn() throws {
        try withTemporaryFolder("config") { folder in
            let command = try RunCommand.parse([
                "--config", kubeadmConfig, "--manifests", folder, "--hostname-override", "Node-A",
                "--ipvs-scheduler", "lc", "--ipvs-sync-period", "5s", "--state-dir", folder, "--link-name", "svc0",
            ])
            let settings = try command.settings()
            // The file's values: its empty scheduler is kube-proxy's rr, its zero sync period 30s.
            #expect(settings.loop.scheduler == .roundRobin)
            #expect(settings.loop.syncPeriod == .seconds(30))
            #expect(settings.loop.minSyncPeriod == .zero)
            #expect(settings.netfilter.rules.localTraffic == .networks([IPNetwork("172.17.0.0/16")!]))
            #expect(settings.healthzAddress == HostPort("0.0.0.0:10256"))
            // --hostname-override beats the file; ipvs-proxy's own flags have no field and stay.
            #expect(settings.loop.nodeName == "node-a")
            #expect(settings.configuration.hostnameOverride == "Node-A")
            // With --manifests the file's kubeconfig goes unused, without an error.
            #expect(settings.source == .manifests([folder], pollInterval: .milliseconds(200)))
            #expect(settings.stateDirectory == folder)
            #expect(settings.linkName == "svc0")
            // The flags the file overrode are named in a warning.
            #expect(settings.warnings.count == 1)
            let warning = try #require(settings.warnings.first)
            #expect(warning.contains("ipvs.scheduler") && warning.contains("ipvs.syncPeriod"), "\(warning)")
            #expect(!warning.contains("hostnameOverride"))
        }
    }

    @Test func theFilesKubeconfigIsUsedWithoutManifests() throws {
        let settings = try RunCommand.parse(["--config", kubeadmConfig]).settings()
        #expect(settings.source == .api(kubeconfig: "/var/lib/kube-proxy/kubeconfig.conf", context: nil, master: nil))
        #expect(settings.warnings.isEmpty)
    }

    @Test func theFilesValuesReachTheDaemonsSettings() throws {
        try withTemporaryFolder("config-values") { folder in
            let file = folder + "/proxy.yaml"
            try """
            apiVersion: kubeproxy.config.k8s.io/v1alpha1
            kind: KubeProxyConfiguration
            mode: ipvs
            ipvs: {scheduler: sh, syncPeriod: 1m, minSyncPeriod: 2s, strictARP: true, udpTimeout: 10s}
            iptables: {masqueradeAll: true, masqueradeBit: 5}
            detectLocalMode: InterfaceNamePrefix
            detectLocal: {interfaceNamePrefix: veth}
            nodePortAddresses: [primary]
            metricsBindAddress: 0.0.0.0
            conntrack: {maxPerCore: 0, tcpBeLiberal: true}
            oomScoreAdj: -500
            logging: {format: json, verbosity: 4}
            """.write(toFile: file, atomically: true, encoding: .utf8)
            let settings = try RunCommand.parse(["--config", file]).settings()
            #expect(settings.loop.scheduler.rawValue == "sh")
            #expect(settings.loop.syncPeriod == .seconds(60))
            #expect(settings.loop.minSyncPeriod == .seconds(2))
            #expect(settings.kernel.strictARP)
            #expect(settings.kernel.udpTimeout == .seconds(10))
            #expect(settings.loop.nodePortAddresses.primary)
            #expect(settings.metricsAddress == HostPort("0.0.0.0:10249"))
            #expect(settings.kernel.conntrack.maxPerCore == 0)
            #expect(settings.kernel.conntrack.tcpBeLiberal)
            #expect(settings.kernel.oomScoreAdjustment == -500)
            #expect(settings.loggingFormat == .json)
            #expect(settings.logLevel == .debug)
            let rules = settings.netfilter.rules
            #expect(rules.masqueradeAll)
            #expect(rules.markBit == 5)
            #expect(rules.localTraffic == .interfaceNamePrefix("veth"))
        }
    }

    @Test func loggingFlagsBeatTheFile() throws {
        let settings = try RunCommand.parse(["--config", kubeadmConfig, "-v", "5", "--logging-format", "json"])
            .settings()
        #expect(settings.logLevel == .trace)
        #expect(settings.loggingFormat == .json)
        // With neither, the file's verbosity 0 leaves --log-level in charge.
        let quiet = try RunCommand.parse(["--config", kubeadmConfig, "--log-level", "debug"]).settings()
        #expect(quiet.logLevel == .debug)
    }

    @Test func withoutAFileTheFlagsStand() throws {
        let settings = try RunCommand.parse(["--ipvs-scheduler", "lc", "--cluster-cidr", "10.0.0.0/8"]).settings()
        #expect(settings.loop.scheduler == .leastConnection)
        #expect(settings.configuration.ipvs.scheduler == "lc")
        #expect(settings.configuration.clusterCIDR == "10.0.0.0/8")
        #expect(settings.configuration.ipvs.minSyncPeriod == .seconds(1))
        #expect(settings.warnings.isEmpty)
    }

    @Test func aBadFileIsRefusedNamingTheField() throws {
        try withTemporaryFolder("config-bad") { folder in
            let file = folder + "/bad.conf"
            try "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: iptables\n"
                .write(toFile: file, atomically: true, encoding: .utf8)
            let error = try #require(
                throws: ConfigurationFileError.self,
                performing: { try RunCommand.parse(["--config", file]).settings() })
            #expect(error.description.hasPrefix("\(file): mode: \"iptables\" is not supported"))
        }
    }
}
