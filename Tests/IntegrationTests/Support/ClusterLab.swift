import Foundation
import IPVSModel

/// Two nodes, pods on both, and clients outside the cluster, wired in network namespaces so that a reply that
/// was not masqueraded is lost, as on a real cluster:
///
/// - a LAN (a bridge in namespace `lan`): node-a 192.168.60.1, node-b .2, the clients .100 and .101 (and
///   fd00:60::1, ::2, ::100, ::101);
/// - node-a runs ipvs-proxy; its pods are 10.244.1.x and fd00:244:1::x on its bridge `cbr0` (gateway .1, ::1);
///   node-b's pods are 10.244.2.x and fd00:244:2::x on its own;
/// - each node routes the other node's pod network through it, and nothing else: node-b answers the clients
///   directly on the LAN;
/// - the clients route Service addresses (10.96.0.0/16, 192.0.2.0/24, fd00:96::/64, 2001:db8::/64) to node-a,
///   and know no pod network.
///
/// The cluster CIDRs are 10.244.0.0/16 and fd00:244::/32.
///
/// With `outsideAddresses`, node-a also has an address no other namespace has a route to (198.51.100.1 and
/// fd00:51::1, on a dummy link `uplink`), as a node's public address on a network the cluster does not use:
/// what node-a sends from it to node-b cannot be answered.
final class ClusterLab: @unchecked Sendable {
    let lan: TestNamespace
    let nodeA: TestNamespace
    let nodeB: TestNamespace
    let client: TestNamespace
    /// A second client, for source ranges that let the first one in only.
    let otherClient: TestNamespace
    let podsA: [TestNamespace]
    let podsB: [TestNamespace]

    static let clusterCIDRs = "10.244.0.0/16,fd00:244::/32"
    static let nodeAAddress = IPAddress("192.168.60.1")!
    static let nodeAAddressV6 = IPAddress("fd00:60::1")!
    static let clientAddress = IPAddress("192.168.60.100")!
    static let clientAddressV6 = IPAddress("fd00:60::100")!
    static let nodeAOutsideAddress = IPAddress("198.51.100.1")!
    static let nodeAOutsideAddressV6 = IPAddress("fd00:51::1")!

    init(podsPerNode: Int = 1, outsideAddresses: Bool = false) throws {
        lan = try TestNamespace("lan")
        nodeA = try TestNamespace("node-a")
        nodeB = try TestNamespace("node-b")
        client = try TestNamespace("client")
        otherClient = try TestNamespace("client-2")
        podsA = try (0..<podsPerNode).map { try TestNamespace("pod-a\($0)") }
        podsB = try (0..<podsPerNode).map { try TestNamespace("pod-b\($0)") }

        try lan.ip("link", "add", "br0", "type", "bridge")
        try lan.ip("link", "set", "br0", "up")
        for (host, suffix, name) in [
            (nodeA, "1", "a"), (nodeB, "2", "b"), (client, "100", "c"), (otherClient, "101", "d"),
        ] {
            try lan.ip("link", "add", "lan-\(name)", "type", "veth", "peer", "name", "eth0", "netns", host.path)
            try lan.ip("link", "set", "lan-\(name)", "master", "br0")
            try lan.ip("link", "set", "lan-\(name)", "up")
            try host.ip("addr", "add", "192.168.60.\(suffix)/24", "dev", "eth0")
            try host.ip("addr", "add", "fd00:60::\(suffix)/64", "dev", "eth0", "nodad")
            try host.ip("link", "set", "eth0", "up")
        }
        for (node, index, pods) in [(nodeA, 1, podsA), (nodeB, 2, podsB)] {
            try node.exec(
                "/bin/busybox", ["sysctl", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"])
            try node.ip("link", "add", "cbr0", "type", "bridge")
            try node.ip("addr", "add", "10.244.\(index).1/24", "dev", "cbr0")
            try node.ip("addr", "add", "fd00:244:\(index)::1/64", "dev", "cbr0", "nodad")
            try node.ip("link", "set", "cbr0", "up")
            for (podIndex, pod) in pods.enumerated() {
                let host = podIndex + 2
                try node.ip("link", "add", "veth\(podIndex)", "type", "veth", "peer", "name", "eth0", "netns", pod.path)
                try node.ip("link", "set", "veth\(podIndex)", "master", "cbr0")
                try node.ip("link", "set", "veth\(podIndex)", "up")
                try pod.ip("addr", "add", "10.244.\(index).\(host)/24", "dev", "eth0")
                try pod.ip("addr", "add", "fd00:244:\(index)::\(host)/64", "dev", "eth0", "nodad")
                try pod.ip("link", "set", "eth0", "up")
                try pod.ip("route", "add", "default", "via", "10.244.\(index).1")
                try pod.ip("-6", "route", "add", "default", "via", "fd00:244:\(index)::1")
            }
        }
        try nodeA.ip("route", "add", "10.244.2.0/24", "via", "192.168.60.2")
        try nodeA.ip("-6", "route", "add", "fd00:244:2::/64", "via", "fd00:60::2")
        try nodeB.ip("route", "add", "10.244.1.0/24", "via", "192.168.60.1")
        try nodeB.ip("-6", "route", "add", "fd00:244:1::/64", "via", "fd00:60::1")
        if outsideAddresses {
            try nodeA.ip("link", "add", "uplink", "type", "dummy")
            try nodeA.ip("addr", "add", "\(Self.nodeAOutsideAddress)/24", "dev", "uplink")
            try nodeA.ip("addr", "add", "\(Self.nodeAOutsideAddressV6)/64", "dev", "uplink", "nodad")
            try nodeA.ip("link", "set", "uplink", "up")
        }
        for host in [client, otherClient] {
            for network in ["10.96.0.0/16", "192.0.2.0/24"] {
                try host.ip("route", "add", network, "via", "192.168.60.1")
            }
            for network in ["fd00:96::/64", "2001:db8::/64"] {
                try host.ip("-6", "route", "add", network, "via", "fd00:60::1")
            }
        }
    }

    /// Pod `index` on node-a (`node` 1) or node-b (2), IPv4 or IPv6.
    static func podAddress(node: Int, _ index: Int, family: AddressFamily = .ipv4) -> IPAddress {
        IPAddress(family == .ipv4 ? "10.244.\(node).\(index + 2)" : "fd00:244:\(node)::\(index + 2)")!
    }

    /// Syncs `manifests` into node-a with `ipvs-proxy sync`, as node `node-a` with the cluster CIDRs; fails the
    /// test's setup when the sync does.
    @discardableResult
    func sync(_ proxy: ProxyRun, _ folder: String, extra: [String] = []) throws -> CommandResult {
        let result = try proxy(
            ["sync", "-f", folder, "--node-name", "node-a", "--cluster-cidr", Self.clusterCIDRs] + extra)
        guard result.status == 0 else { throw CommandFailure(command: "ipvs-proxy sync", result: result) }
        return result
    }
}

extension ProxyRun {
    @discardableResult
    func callAsFunction(_ arguments: [String]) throws -> CommandResult { try run(arguments) }
}

/// One Service with one port and its EndpointSlices, as YAML for `ipvs-proxy sync`.
struct ServiceManifest {
    var name: String
    var type = "ClusterIP"
    var clusterIPs: [String]
    var port: Int = 80
    var targetPort: Int = 8080
    var nodePort: Int?
    var transportProtocol = "TCP"
    var externalIPs: [String] = []
    var loadBalancerIPs: [String] = []
    var sourceRanges: [String] = []
    var externalTrafficPolicy = "Cluster"
    var internalTrafficPolicy = "Cluster"
    var healthCheckNodePort: Int?
    /// Endpoints as (address, node name).
    var endpoints: [(IPAddress, String)] = []

    var yaml: String {
        var spec = """
            apiVersion: v1
            kind: Service
            metadata:
              name: \(name)
              namespace: lab
            spec:
              type: \(type)
              clusterIP: \(clusterIPs[0])
              clusterIPs: [\(clusterIPs.joined(separator: ", "))]
              ipFamilyPolicy: \(clusterIPs.count > 1 ? "PreferDualStack" : "SingleStack")
              externalTrafficPolicy: \(externalTrafficPolicy)
              internalTrafficPolicy: \(internalTrafficPolicy)
              ports:
              - name: p
                port: \(port)
                protocol: \(transportProtocol)
                targetPort: \(targetPort)

            """
        if let nodePort { spec += "    nodePort: \(nodePort)\n" }
        if let healthCheckNodePort { spec += "  healthCheckNodePort: \(healthCheckNodePort)\n" }
        if !externalIPs.isEmpty { spec += "  externalIPs: [\(externalIPs.joined(separator: ", "))]\n" }
        if !sourceRanges.isEmpty { spec += "  loadBalancerSourceRanges: [\(sourceRanges.joined(separator: ", "))]\n" }
        if !loadBalancerIPs.isEmpty {
            spec += "status:\n  loadBalancer:\n    ingress:\n"
            for address in loadBalancerIPs { spec += "    - ip: \(address)\n" }
        }
        for family in [AddressFamily.ipv4, .ipv6] {
            let members = endpoints.filter { $0.0.family == family }
            guard !members.isEmpty else { continue }
            spec += """
                ---
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata:
                  name: \(name)-\(family == .ipv4 ? "v4" : "v6")
                  namespace: lab
                  labels:
                    kubernetes.io/service-name: \(name)
                addressType: \(family == .ipv4 ? "IPv4" : "IPv6")
                ports:
                - name: p
                  port: \(targetPort)
                  protocol: \(transportProtocol)
                endpoints:

                """
            for (address, node) in members {
                spec += "- addresses: [\"\(address)\"]\n  nodeName: \(node)\n  conditions: {ready: true}\n"
            }
        }
        return spec + "---\n"
    }
}
