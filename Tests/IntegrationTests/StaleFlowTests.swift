import Foundation
import IPVSModel
import Testing

/// A UDP Service (port 53 to 5353) with endpoints on node-b.
private func dnsService(clusterIP: String, nodePort: Int?, endpoints: [Int]) -> ServiceManifest {
    ServiceManifest(
        name: "dns", type: nodePort == nil ? "ClusterIP" : "NodePort", clusterIPs: [clusterIP], port: 53,
        targetPort: 5353, nodePort: nodePort, transportProtocol: "UDP",
        endpoints: endpoints.map { (ClusterLab.podAddress(node: 2, $0), "node-b") })
}

/// How a UDP client with one fixed source port (sending every 100 ms) fares when its Service's endpoint on node-b
/// is replaced by another: seconds from the end of the sync that replaced it until the answers came from the new
/// endpoint, or `nil` when they never did within `window`.
///
/// The node uses conntrack before ipvs-proxy starts (a CNI's rules would), so a flow can be older than the proxy.
private func switchover(
    client: (ClusterLab) -> TestNamespace, address: String, port: UInt16, nodePort: Int? = nil,
    cleanup: Bool, startWithoutEndpoints: Bool = false, beforeProxy: Bool = false, window: Double = 5
) throws -> Double? {
    let lab = try ClusterLab(podsPerNode: 2)
    let servers = try (0..<2).map { index in
        try ReplyServer(
            in: lab.podsB[index], address: ClusterLab.podAddress(node: 2, index), port: 5353, protocol: .udp,
            reply: "pod-b\(index)")
    }
    try lab.nodeA.exec(
        Tools.nft,
        [
            "add table inet cni; add chain inet cni pre { type filter hook prerouting priority 0; policy accept; "
                + "ct state new counter; }"
        ])
    let proxy = try ProxyRun(lab.nodeA)
    let flags = cleanup ? [] : ["--no-conntrack-cleanup"]
    let folder = try temporaryFolder("dns")
    try write(
        dnsService(clusterIP: "10.96.0.53", nodePort: nodePort, endpoints: startWithoutEndpoints ? [] : [0]).yaml,
        to: folder, as: "dns.yaml")
    if !beforeProxy { try lab.sync(proxy, folder, extra: flags) }
    let probe = try UDPProbe(from: client(lab), to: IPAddress(address)!, port: port)
    if beforeProxy || startWithoutEndpoints {
        // The client's flow began: it sent (nothing answers yet), and a flow older than the proxy is in the node's
        // conntrack table, made without the proxy's rules. (Without an endpoint, IPVS drops the packets before
        // conntrack keeps them: there is no entry to wait for.)
        guard eventually(timeoutSeconds: 5, { probe.sent >= 3 ? true : nil }) != nil else {
            Issue.record("the client sent nothing")
            return nil
        }
        if beforeProxy {
            let tracked = try eventually(timeoutSeconds: 5) {
                let listing = ["-L", "-p", "udp", "--dport", "\(port)"]
                return try lab.nodeA.exec(Tools.conntrack, listing, allowFailure: true).output
                    .contains("dport=\(port)") ? true : nil
            }
            guard tracked != nil else {
                Issue.record("no conntrack entry for the client's flow")
                return nil
            }
        }
    } else {
        guard probe.delay(until: "pod-b0", since: .distantPast, timeout: 5) != nil else {
            Issue.record("no answer from the first endpoint")
            return nil
        }
    }
    try write(dnsService(clusterIP: "10.96.0.53", nodePort: nodePort, endpoints: [1]).yaml, to: folder, as: "dns.yaml")
    try lab.sync(proxy, folder, extra: flags)
    let synced = Date()
    let delay = probe.delay(until: "pod-b1", since: synced, timeout: window)
    withExtendedLifetime(servers) {}
    return delay
}

/// Who sends, and to where.
struct FlowCase: CustomTestStringConvertible, Sendable {
    var name: String
    var fromOutside: Bool
    var nodePort: Bool
    var testDescription: String { name }

    var address: String { nodePort ? "192.168.60.1" : "10.96.0.53" }
    var port: UInt16 { nodePort ? 30053 : 53 }
    func client(_ lab: ClusterLab) -> TestNamespace { fromOutside ? lab.client : lab.podsA[0] }
}

/// Stale UDP flows, with real traffic. Measured in the VM (`scripts/vm-test --filter StaleFlowTests`), a client
/// moves to a live endpoint within the same short time with or without the conntrack clean-up when its flow was
/// made while ipvs-proxy ran, whether it went to a ClusterIP from a pod or from outside (masqueraded), or to a
/// node port, and also when the Service had no endpoint at first: IPVS drops its own flows' conntrack entries when
/// it deletes their real server (`expire_nodest_conn` with `vs/conntrack`), and drops the packets of a Service
/// without an endpoint before conntrack keeps them. The clean-up matters for a flow older than the proxy that
/// must be masqueraded: its conntrack entry was made without masquerade, and only deleting it lets the next
/// packet be masqueraded.
@Suite("Stale UDP flows", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct StaleFlowTests {
    @Test(arguments: [
        FlowCase(name: "ClusterIP from a pod", fromOutside: false, nodePort: false),
        FlowCase(name: "ClusterIP from outside the cluster", fromOutside: true, nodePort: false),
        FlowCase(name: "NodePort from outside the cluster", fromOutside: true, nodePort: true),
    ])
    func aClientReachesALiveEndpointWithin2sOfItsEndpointsDeletion(_ flow: FlowCase) throws {
        let delay = try switchover(
            client: flow.client, address: flow.address, port: flow.port, nodePort: flow.nodePort ? 30053 : nil,
            cleanup: true)
        print("stale flows: \(flow.name): \(delay.map { "\($0) s" } ?? "no answer") after the sync")
        #expect(delay.map { $0 <= 2 } == true, "\(String(describing: delay))")
    }

    /// Without the clean-up IPVS alone moves these clients: it deletes its own connections' conntrack entries with
    /// the real server, and drops the packets of a Service without an endpoint before conntrack keeps them.
    @Test(arguments: [
        (FlowCase(name: "ClusterIP from a pod", fromOutside: false, nodePort: false), false),
        (FlowCase(name: "NodePort from outside the cluster", fromOutside: true, nodePort: true), false),
        (FlowCase(name: "ClusterIP from a pod, no endpoint at first", fromOutside: false, nodePort: false), true),
        (FlowCase(name: "NodePort from outside, no endpoint at first", fromOutside: true, nodePort: true), true),
    ])
    func withoutTheCleanupIPVSAloneMovesTheseClients(_ flow: FlowCase, _ noEndpointAtFirst: Bool) throws {
        let delay = try switchover(
            client: flow.client, address: flow.address, port: flow.port, nodePort: flow.nodePort ? 30053 : nil,
            cleanup: false, startWithoutEndpoints: noEndpointAtFirst)
        print("stale flows: \(flow.name), clean-up off: \(delay.map { "\($0) s" } ?? "no answer") after the sync")
        #expect(delay.map { $0 <= 2 } == true, "\(String(describing: delay))")
    }

    /// A masqueraded flow that began before the proxy: without the clean-up it never reaches an endpoint.
    @Test(arguments: [true, false])
    func aFlowOlderThanTheProxyNeedsTheCleanup(_ cleanup: Bool) throws {
        let delay = try switchover(
            client: { $0.client }, address: "192.168.60.1", port: 30053, nodePort: 30053, cleanup: cleanup,
            beforeProxy: true)
        print(
            "stale flows: NodePort flow older than the proxy, clean-up \(cleanup ? "on" : "off"): "
                + (delay.map { "\($0) s" } ?? "no answer within 5 s"))
        if cleanup {
            #expect(delay.map { $0 <= 2 } == true, "\(String(describing: delay))")
        } else {
            #expect(delay == nil)
        }
    }
}
