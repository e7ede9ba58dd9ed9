import Foundation
import Logging
import ProxyConfiguration
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
            let resolved = try command.resolved()
            // The file's values: its empty scheduler is kube-proxy's rr, its zero sync period 30s.
            #expect(resolved.command.node.scheduler == "rr")
            #expect(resolved.command.syncPeriod == .seconds(30))
            #expect(resolved.command.minSyncPeriod == .zero)
            #expect(resolved.command.netfilter.clusterCIDRs == ["172.17.0.0/16"])
            #expect(resolved.command.healthzBindAddress == "0.0.0.0:10256")
            // --hostname-override beats the file; ipvs-proxy's own flags have no field and stay.
            #expect(resolved.command.node.resolvedNodeName == "node-a")
            #expect(resolved.configuration.hostnameOverride == "Node-A")
            #expect(resolved.command.manifests == [folder])
            #expect(resolved.command.state.stateDir == folder)
            #expect(resolved.command.state.linkName == "svc0")
            // With --manifests the file's kubeconfig goes unused, without an error.
            #expect(resolved.command.kubeconfig == nil)
            // The flags the file overrode are named in a warning.
            #expect(resolved.warnings.count == 1)
            let warning = try #require(resolved.warnings.first)
            #expect(warning.contains("ipvs.scheduler") && warning.contains("ipvs.syncPeriod"), "\(warning)")
            #expect(!warning.contains("hostnameOverride"))
        }
    }

    @Test func theFilesKubeconfigIsUsedWithoutManifests() throws {
        let resolved = try RunCommand.parse(["--config", kubeadmConfig]).resolved()
        #expect(resolved.command.kubeconfig == "/var/lib/kube-proxy/kubeconfig.conf")
        #expect(resolved.warnings.isEmpty)
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
            let command = try RunCommand.parse(["--config", file]).resolved().command
            #expect(command.node.validatedScheduler.rawValue == "sh")
            #expect(command.syncPeriod == .seconds(60))
            #expect(command.minSyncPeriod == .seconds(2))
            #expect(command.strictArp)
            #expect(command.udpTimeout == .seconds(10))
            #expect(command.node.nodePortAddresses.primary)
            #expect(command.metricsBindAddress == "0.0.0.0:10249")
            #expect(command.conntrackMaxPerCore == 0)
            #expect(command.conntrackTcpBeLiberal)
            #expect(command.oomScoreAdj == -500)
            #expect(command.loggingFormat == .json)
            #expect(command.effectiveLogLevel == .debug)
            let rules = try command.netfilter.rules()
            #expect(rules.masqueradeAll)
            #expect(rules.markBit == 5)
            #expect(rules.localTraffic == .interfaceNamePrefix("veth"))
        }
    }

    @Test func loggingFlagsBeatTheFile() throws {
        let command = try RunCommand.parse(["--config", kubeadmConfig, "-v", "5", "--logging-format", "json"])
            .resolved().command
        #expect(command.effectiveLogLevel == .trace)
        #expect(command.loggingFormat == .json)
        // With neither, the file's verbosity 0 leaves --log-level in charge.
        let quiet = try RunCommand.parse(["--config", kubeadmConfig, "--log-level", "debug"]).resolved().command
        #expect(quiet.effectiveLogLevel == .debug)
    }

    @Test func withoutAFileTheFlagsStand() throws {
        let resolved = try RunCommand.parse(["--ipvs-scheduler", "lc", "--cluster-cidr", "10.0.0.0/8"]).resolved()
        #expect(resolved.command.node.scheduler == "lc")
        #expect(resolved.configuration.ipvs.scheduler == "lc")
        #expect(resolved.configuration.clusterCIDR == "10.0.0.0/8")
        #expect(resolved.configuration.ipvs.minSyncPeriod == .seconds(1))
        #expect(resolved.warnings.isEmpty)
    }

    @Test func aBadFileIsRefusedNamingTheField() throws {
        try withTemporaryFolder("config-bad") { folder in
            let file = folder + "/bad.conf"
            try "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: iptables\n"
                .write(toFile: file, atomically: true, encoding: .utf8)
            let error = try #require(
                throws: ConfigurationFileError.self,
                performing: { try RunCommand.parse(["--config", file]).resolved() })
            #expect(error.description.hasPrefix("\(file): mode: \"iptables\" is not supported"))
        }
    }
}
