import IPVSModel
import KubernetesModel
import ProxyRules
import Testing
import Translation

@Suite("Node-port addresses", .timeLimit(.minutes(2)))
struct NodePortAddressesTests {
    private let own = ["192.168.1.10", "10.0.0.5", "fd00:1::10", "2001:db8::5"].compactMap(IPAddress.init)

    private func node(_ addresses: [(String, String)]) -> Node {
        Node(
            metadata: ObjectMeta(name: "node-a"),
            status: NodeStatus(addresses: addresses.map { NodeAddress(type: $0.0, address: $0.1) }))
    }

    @Test func byDefaultEveryAddressOfTheNodeTakesNodePorts() {
        let selection = NodePortAddressSelection()
        #expect(selection.selectsAll)
        #expect(selection.select(from: own, node: nil) == own)
    }

    @Test func networksSelectTheNodesAddressesInThem() {
        let selection = NodePortAddressSelection(networks: ["192.168.0.0/16", "fd00::/8"].compactMap(IPNetwork.init))
        #expect(!selection.selectsAll)
        #expect(selection.select(from: own, node: nil).map(\.description) == ["192.168.1.10", "fd00:1::10"])
    }

    @Test func exactAddressesAreTakenAsGivenBesideNetworks() {
        let selection = NodePortAddressSelection(
            addresses: [IPAddress("172.16.0.9")!], networks: [IPNetwork("10.0.0.0/8")!])
        #expect(selection.select(from: own, node: nil).map(\.description) == ["10.0.0.5", "172.16.0.9"])
    }

    /// kube-proxy's primary IPs: the first InternalIP of each family, else the first ExternalIP.
    @Test func primaryIsTheNodesFirstInternalAddressOfEachFamily() {
        let selection = NodePortAddressSelection(primary: true)
        let node = node([
            ("Hostname", "node-a"), ("ExternalIP", "203.0.113.5"), ("InternalIP", "192.168.1.10"),
            ("InternalIP", "10.0.0.5"), ("ExternalIP", "2001:db8::5"),
        ])
        #expect(selection.select(from: own, node: node).map(\.description) == ["192.168.1.10", "2001:db8::5"])
        // Without a Node there is no primary address to go by.
        #expect(selection.select(from: own, node: nil).isEmpty)
    }

    @Test func theNodeContextTakesZoneAndPodNetworksFromTheNode() {
        var context = NodeContext(nodeName: "node-a", nodeAddresses: own)
        var node = node([])
        node.metadata.labels = [Node.zoneLabel: "zone-b"]
        node.spec = NodeSpec(podCIDR: "10.244.1.0/24", podCIDRs: ["10.244.1.0/24", "fd00:244:1::/64"])
        context.follow(node)
        #expect(context.zone == "zone-b")
        #expect(context.podNetworks.map(\.description) == ["10.244.1.0/24", "fd00:244:1::/64"])
        // An older Node with only podCIDR.
        node.spec = NodeSpec(podCIDR: "10.244.2.0/24")
        context.follow(node)
        #expect(context.podNetworks.map(\.description) == ["10.244.2.0/24"])
        context.follow(nil)
        #expect(context.zone == nil && context.podNetworks.isEmpty)
    }
}
