import ArgumentParser
import Foundation
import IPVSModel
import NetfilterModel
import ProxyConfiguration
import ProxyDaemon
import ProxyRules
import Sync
import Translation

/// Where ipvs-proxy keeps what it owns, and the dummy link for service addresses.
struct StateOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Where ipvs-proxy records the virtual servers and addresses it owns.", valueName: "folder"))
    var stateDir = "/run/ipvs-proxy"

    @Option(help: ArgumentHelp("The dummy link that holds service addresses.", valueName: "name"))
    var linkName = "kube-ipvs0"
}

/// What translation needs to know about the node.
struct NodeOptions: ParsableArguments {
    @Option(
        name: [.long, .customLong("ipvs-scheduler")],
        help: ArgumentHelp(
            "The IPVS scheduler of every virtual server (rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, "
                + "mh, twos). A Service's ipvs-proxy.io/scheduler annotation overrides it.",
            valueName: "name"))
    var scheduler = "rr"

    @Option(
        name: [.long, .customLong("hostname-override")],
        help: ArgumentHelp(
            "This node's name: its Node, and endpoints' nodeName for traffic policy Local. Default: the host name, "
                + "lower-cased (as kube-proxy's).",
            valueName: "name"))
    var nodeName: String?

    @Option(
        help: ArgumentHelp(
            "An address NodePort services listen on (repeatable). Default: every address of the node's interfaces "
                + "except loopback, link-local and the dummy link's (see --nodeport-addresses).",
            valueName: "address"))
    var nodeIP: [String] = []

    @Option(
        name: .customLong("nodeport-addresses"),
        help: ArgumentHelp(
            "As kube-proxy: networks whose node addresses take node ports (repeatable, or comma-separated), or "
                + "'primary' for the node's primary address of each family (from its Node). Addresses added to the "
                + "node later are followed.",
            valueName: "cidrs|primary"))
    var nodePortAddressFlags: [String] = []

    func validate() throws {
        do {
            _ = try Scheduler(validating: scheduler)
        } catch {
            throw ValidationError("--scheduler: \(error)")
        }
        for address in nodeIP where IPAddress(address) == nil {
            throw ValidationError("--node-ip: '\(address)' is not a valid IPv4 or IPv6 address")
        }
        let texts = nodePortAddressTexts
        if texts.contains("primary") && texts.count > 1 {
            throw ValidationError("--nodeport-addresses: 'primary' stands alone, not with networks")
        }
        for text in texts where text != "primary" && IPNetwork(text) == nil {
            throw ValidationError(
                "--nodeport-addresses: '\(text)' is not a network in CIDR notation (192.168.0.0/24) or 'primary'")
        }
    }

    var nodePortAddressTexts: [String] {
        nodePortAddressFlags.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }

    var validatedScheduler: Scheduler { (try? Scheduler(validating: scheduler)) ?? .roundRobin }

    /// The node's addresses that take node ports.
    var nodePortAddresses: NodePortAddressSelection {
        NodePortAddressSelection(
            addresses: nodeIP.compactMap(IPAddress.init),
            networks: nodePortAddressTexts.compactMap(IPNetwork.init),
            primary: nodePortAddressTexts == ["primary"])
    }

    var resolvedNodeName: String {
        DaemonSettings.nodeName(override: nodeName, hostName: ProcessInfo.processInfo.hostName)
    }

    /// What the flags stand for in kube-proxy's configuration (`--node-ip` has no field there).
    func configure(_ configuration: inout KubeProxyConfiguration) {
        configuration.hostnameOverride = nodeName ?? ""
        configuration.ipvs.scheduler = scheduler
        configuration.nodePortAddresses = nodePortAddressTexts
    }
}

/// The netfilter half's settings, with kube-proxy's flag names.
struct NetfilterOptions: ParsableArguments {
    @Option(
        name: .customLong("cluster-cidr"),
        help: ArgumentHelp(
            "The cluster's pod network, one per family (repeatable, or comma-separated for dual-stack). With "
                + "--detect-local-mode ClusterCIDR, ClusterIP traffic from any other source is masqueraded.",
            valueName: "cidr"))
    var clusterCIDRs: [String] = []

    @Option(
        help: ArgumentHelp(
            "How traffic from inside the cluster is told apart: ClusterCIDR (--cluster-cidr), NodeCIDR (the "
                + "Node's spec.podCIDRs), BridgeInterface or InterfaceNamePrefix.",
            valueName: "mode"))
    var detectLocalMode = "ClusterCIDR"

    @Option(
        help: ArgumentHelp(
            "With --detect-local-mode BridgeInterface: the bridge pods are attached to.", valueName: "name"))
    var podBridgeInterface: String?

    @Option(
        help: ArgumentHelp(
            "With --detect-local-mode InterfaceNamePrefix: the prefix of pods' interfaces on the node.",
            valueName: "prefix"))
    var podInterfaceNamePrefix: String?

    @Flag(help: "Masquerade all traffic to ClusterIPs, from inside the cluster too.")
    var masqueradeAll = false

    @Option(
        name: .customLong("iptables-masquerade-bit"),
        help: ArgumentHelp(
            "The bit of the packet mark (0-31) that asks for masquerade; keep it clear of the bits your CNI uses.",
            valueName: "bit"))
    var masqueradeBit = 14

    @Flag(help: "Leave stale UDP and SCTP flows in conntrack after endpoints change (for troubleshooting).")
    var noConntrackCleanup = false

    func validate() throws {
        _ = try rules()
    }

    /// The networks given with --cluster-cidr.
    var clusterNetworks: [IPNetwork] {
        clusterCIDRs.flatMap { $0.split(separator: ",") }.compactMap { IPNetwork(String($0)) }
    }

    /// The masquerade rules the flags ask for.
    /// - Throws: `ValidationError` naming the flag.
    func rules() throws -> MasqueradeRules {
        let texts = clusterCIDRs.flatMap { $0.split(separator: ",").map(String.init) }
        for text in texts where IPNetwork(text) == nil {
            throw ValidationError("--cluster-cidr: '\(text)' is not a network in CIDR notation (10.244.0.0/16)")
        }
        let networks = texts.compactMap(IPNetwork.init)
        for family in AddressFamily.allCases where networks.filter({ $0.family == family }).count > 1 {
            throw ValidationError("--cluster-cidr: at most one \(family) network (one per family for dual-stack)")
        }
        guard (0...31).contains(masqueradeBit) else {
            throw ValidationError("--iptables-masquerade-bit: \(masqueradeBit) is not a bit of the mark (0-31)")
        }
        switch detectLocalMode {
        case "ClusterCIDR", "", "NodeCIDR":
            break
        case "BridgeInterface":
            guard let name = podBridgeInterface, !name.isEmpty else {
                throw ValidationError("--detect-local-mode BridgeInterface needs --pod-bridge-interface")
            }
        case "InterfaceNamePrefix":
            guard let prefix = podInterfaceNamePrefix, !prefix.isEmpty else {
                throw ValidationError("--detect-local-mode InterfaceNamePrefix needs --pod-interface-name-prefix")
            }
        default:
            throw ValidationError(
                "--detect-local-mode: '\(detectLocalMode)' is not ClusterCIDR, NodeCIDR, BridgeInterface or "
                    + "InterfaceNamePrefix")
        }
        var configuration = KubeProxyConfiguration()
        configure(&configuration)
        return MasqueradeRules(kubeProxy: configuration)
    }

    /// What the flags stand for in kube-proxy's configuration (`--no-conntrack-cleanup` has no field there).
    func configure(_ configuration: inout KubeProxyConfiguration) {
        configuration.clusterCIDR = clusterCIDRs.joined(separator: ",")
        configuration.detectLocalMode = detectLocalMode
        configuration.detectLocal.bridgeInterface = podBridgeInterface ?? ""
        configuration.detectLocal.interfaceNamePrefix = podInterfaceNamePrefix ?? ""
        configuration.iptables.masqueradeAll = masqueradeAll
        configuration.iptables.masqueradeBit = Int32(clamping: masqueradeBit)
    }

    var settings: NetfilterSettings {
        NetfilterSettings(
            rules: (try? rules()) ?? MasqueradeRules(), cleansStaleFlows: !noConntrackCleanup)
    }

    /// What will not be masqueraded, said at start as kube-proxy says it.
    var warnings: [String] {
        (try? rules()).map { NetfilterSettings(rules: $0).unmasqueradedWarnings } ?? []
    }
}
