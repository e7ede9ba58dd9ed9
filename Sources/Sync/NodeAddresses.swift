import IPVSModel

/// The node's addresses, as the proxy uses them.
package struct NodeAddresses: Sendable {
    /// Where NodePort services listen: every address of the node's interfaces except loopback, link-local
    /// and the dummy link's.
    package var nodePortAddresses: [IPAddress]
    /// Every address of the node's interfaces except the dummy link's.
    package var localAddresses: Set<IPAddress>

    package init(nodePortAddresses: [IPAddress], localAddresses: Set<IPAddress>) {
        self.nodePortAddresses = nodePortAddresses
        self.localAddresses = localAddresses
    }

    /// Reads the node's links and addresses.
    package static func discover(
        _ interfaces: any InterfaceConnection, excludingLink linkName: String
    ) throws -> NodeAddresses {
        let links = try interfaces.links()
        let excluded = Set(links.filter { $0.name == linkName }.map(\.index))
        let loopbacks = Set(links.filter(\.isLoopback).map(\.index))
        let addresses = try interfaces.addresses().filter { !excluded.contains($0.linkIndex) }
        let nodePort = addresses.filter {
            !loopbacks.contains($0.linkIndex) && !$0.address.isLoopback && !$0.address.isLinkLocal
        }.map(\.address)
        return NodeAddresses(
            nodePortAddresses: Array(Set(nodePort)).sorted(), localAddresses: Set(addresses.map(\.address)))
    }
}
