import Foundation
import InterfaceModel
import Interfaces
import Testing

/// Local routes on the dummy link against the kernel: made and read in one batch and one dump, seen by iproute2,
/// making every address of a range local (a listener on the wildcard address answers one bound nowhere), refused as
/// the fake kernel says (`EEXIST`, `ESRCH`), and never touching a route someone else made.
@Suite("Local routes against the kernel", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct LocalRouteKernelTests {
    private static let range = IPNetwork("10.96.0.0/12")!
    private static let rangeIPv6 = IPNetwork("fd00:10:96::/108")!
    private static let host = IPNetwork("192.0.2.10/32")!

    /// A namespace with `kube-ipvs0` up (IPv6 refuses a route on a link that is down, `ENETDOWN`).
    private func namespaceWithDummyLink(_ label: String) throws -> (TestNamespace, InterfaceHandle, Int32) {
        let namespace = try TestNamespace(label)
        let interfaces = try namespace.interfaces()
        let index = try interfaces.addDummyLink(named: "kube-ipvs0")
        try interfaces.setLinkUp(index: index)
        return (namespace, interfaces, index)
    }

    /// Asks for `reply` from a listener on the wildcard address at `address`, from the namespace itself.
    private func answer(_ namespace: TestNamespace, at address: String, port: UInt16) -> String? {
        try? request(from: namespace, to: IPAddress(address)!, port: port, timeoutSeconds: 2)
    }

    @Test func rangesAndHostsAreLocalWhileOurRoutesStand() throws {
        let (namespace, interfaces, index) = try namespaceWithDummyLink("routes")
        let ours = [Self.range, Self.rangeIPv6, Self.host].map { LocalRoute(network: $0, linkIndex: index) }
        let server = try ReplyServer(in: namespace, address: IPAddress("0.0.0.0")!, port: 8080, reply: "local")
        let serverIPv6 = try ReplyServer(in: namespace, address: IPAddress("::")!, port: 8081, reply: "local6")
        // Without a route no address of the range is local (nor reachable: the namespace has only lo).
        #expect(answer(namespace, at: "10.100.7.9", port: 8080) == nil)

        #expect(try interfaces.apply(ours.map(RouteChange.add)).isEmpty)
        #expect(Set(try interfaces.localRoutes(linkIndex: index)) == Set(ours))
        let shown = try namespace.ip("route", "show", "table", "local", "proto", "166").output
        #expect(shown.contains("local 10.96.0.0/12 dev kube-ipvs0 "))
        #expect(shown.contains("local 192.0.2.10 dev kube-ipvs0 "))
        #expect(shown.contains("scope host"))
        let shownIPv6 = try namespace.ip("-6", "route", "show", "table", "local", "proto", "166").output
        #expect(shownIPv6.contains("local fd00:10:96::/108 dev kube-ipvs0 "))
        // No address is bound on the link: the routes alone make the range local.
        #expect(try interfaces.addresses().filter { $0.linkIndex == index }.allSatisfy { $0.address.isLinkLocal })
        #expect(answer(namespace, at: "10.100.7.9", port: 8080) == "local")
        #expect(answer(namespace, at: "192.0.2.10", port: 8080) == "local")
        #expect(answer(namespace, at: "fd00:10:96::7:9", port: 8081) == "local6")
        #expect(answer(namespace, at: "10.112.0.1", port: 8080) == nil)  // past the /12

        // What the kernel answers, as the fake kernel does: an identical route is EEXIST, a missing one ESRCH.
        let missing = LocalRoute(network: IPNetwork("192.0.2.99/32")!, linkIndex: index)
        let failures = try interfaces.apply([.add(ours[0]), .add(ours[1]), .delete(missing)])
        #expect(failures.map(\.index) == [0, 1, 2])
        #expect(failures.map(\.error.errno) == [.fileExists, .fileExists, .noSuchProcess])

        #expect(try interfaces.apply(ours.map(RouteChange.delete)).isEmpty)
        #expect(try interfaces.localRoutes(linkIndex: index).isEmpty)
        #expect(try namespace.ip("route", "show", "table", "local", "proto", "166").output.isEmpty)
        #expect(answer(namespace, at: "10.100.7.9", port: 8080) == nil)
        _ = (server, serverIPv6)
    }

    @Test func routesSomeoneElseMadeAreNeitherOursNorRemoved() throws {
        let (namespace, interfaces, index) = try namespaceWithDummyLink("others")
        // Another's range, and another's host route where ours will stand too (IPv4 keeps both: they differ by
        // protocol).
        try namespace.ip(
            "route", "add", "local", "10.200.0.0/16", "dev", "kube-ipvs0", "table", "local", "proto", "static")
        try namespace.ip(
            "route", "add", "local", "192.0.2.20/32", "dev", "kube-ipvs0", "table", "local", "proto", "static")
        try namespace.ip(
            "-6", "route", "add", "local", "fd00:20::/64", "dev", "kube-ipvs0", "table", "local", "proto", "static")
        let theirs = [
            LocalRoute(network: IPNetwork("10.200.0.0/16")!, linkIndex: index, routeProtocol: .static),
            LocalRoute(network: IPNetwork("192.0.2.20/32")!, linkIndex: index, routeProtocol: .static),
            LocalRoute(network: IPNetwork("fd00:20::/64")!, linkIndex: index, routeProtocol: .static),
        ]
        #expect(try interfaces.localRoutes(linkIndex: index).isEmpty)
        #expect(Set(try interfaces.localRoutes(linkIndex: index, routeProtocol: nil)).isSuperset(of: theirs))

        let ourHost = LocalRoute(network: IPNetwork("192.0.2.20/32")!, linkIndex: index)
        #expect(try interfaces.apply([.add(ourHost)]).isEmpty)
        #expect(try interfaces.localRoutes(linkIndex: index) == [ourHost])
        // IPv6 compares routes of one metric by their next hop, not their protocol: the same network on the same
        // link is there already.
        let ourIPv6 = LocalRoute(network: IPNetwork("fd00:20::/64")!, linkIndex: index)
        #expect(try interfaces.apply([.add(ourIPv6)]).map(\.error.errno) == [.fileExists])

        // Deleting ours, or naming theirs as ours, deletes nothing of theirs.
        let failures = try interfaces.apply([
            .delete(ourHost), .delete(LocalRoute(network: IPNetwork("10.200.0.0/16")!, linkIndex: index)),
            .delete(ourIPv6),
        ])
        #expect(failures.map(\.index) == [1, 2])
        #expect(failures.map(\.error.errno) == [.noSuchProcess, .noSuchProcess])
        #expect(try interfaces.localRoutes(linkIndex: index).isEmpty)
        #expect(Set(try interfaces.localRoutes(linkIndex: index, routeProtocol: nil)).isSuperset(of: theirs))
        let shown = try namespace.ip("route", "show", "table", "local", "proto", "static").output
        #expect(shown.contains("local 10.200.0.0/16 dev kube-ipvs0"))
        #expect(shown.contains("local 192.0.2.20 dev kube-ipvs0"))
    }

    @Test func aHostRouteStandsBesideABoundAddressAndGoesWithTheLinksLastOne() throws {
        let (namespace, interfaces, index) = try namespaceWithDummyLink("bound")
        let addresses = ["10.96.0.10", "10.96.0.11"].map {
            InterfaceAddress(linkIndex: index, address: IPAddress($0)!)
        }
        #expect(try interfaces.apply(addresses.map(AddressChange.bind)).isEmpty)
        // The address's own route (proto kernel) has the same key: the route is added beside it, not refused.
        let routes = [
            LocalRoute(network: IPNetwork(host: addresses[0].address), linkIndex: index),
            LocalRoute(network: IPNetwork("10.100.0.0/16")!, linkIndex: index),
        ]
        #expect(try interfaces.apply(routes.map(RouteChange.add)).isEmpty)
        let kernels = try interfaces.localRoutes(linkIndex: index, routeProtocol: .kernel)
        #expect(kernels.contains(LocalRoute(network: routes[0].network, linkIndex: index, routeProtocol: .kernel)))
        let server = try ReplyServer(in: namespace, address: IPAddress("0.0.0.0")!, port: 8080, reply: "local")
        // Unbinding an address takes the kernel's route only: the address stays local through ours.
        #expect(try interfaces.apply([.unbind(addresses[0])]).isEmpty)
        #expect(Set(try interfaces.localRoutes(linkIndex: index)) == Set(routes))
        #expect(answer(namespace, at: "10.96.0.10", port: 8080) == "local")
        // Unbinding the link's last IPv4 address disables IPv4 on it, and the kernel flushes every IPv4 route there
        // (fib_disable_ip), ours too: a move from bound addresses to routes must not leave the link without one.
        #expect(try interfaces.apply([.unbind(addresses[1])]).isEmpty)
        #expect(try interfaces.localRoutes(linkIndex: index).isEmpty)
        #expect(answer(namespace, at: "10.96.0.10", port: 8080) == nil)
        _ = server
    }
}
