import FakeKernel
import InterfaceModel
import Sync
import SystemPackage
import Testing

/// The fake kernel's local routes answer as the kernel does (`LocalRouteKernelTests` checks the same cases in the VM),
/// so that a part planned against it meets the same refusals.
@Suite("The fake kernel's local routes")
struct FakeRouteTests {
    private let range = IPNetwork("10.96.0.0/12")!
    private let rangeIPv6 = IPNetwork("fd00:10:96::/108")!

    /// A fake node with the dummy link, seen through the sync engine's connection.
    private func node() throws -> (FakeInterfaces, any InterfaceConnection, Int32) {
        let fake = FakeInterfaces()
        let index = try fake.addDummyLink(named: "kube-ipvs0")
        return (fake, fake, index)
    }

    @Test func addedRoutesAreReadBackAndRefusedWhenThere() throws {
        let (fake, connection, index) = try node()
        let ours = [range, rangeIPv6].map { LocalRoute(network: $0, linkIndex: index) }
        #expect(try connection.apply(ours.map(RouteChange.add)).isEmpty)
        #expect(try connection.localRoutes(linkIndex: index, routeProtocol: .ipvsProxy) == ours)
        let failures = try connection.apply([.add(ours[1]), .add(LocalRoute(network: range, linkIndex: 99))])
        #expect(failures.map(\.index) == [0, 1])
        #expect(failures.map(\.error.errno) == [.fileExists, .operationNotSupportedByDevice])
        #expect(fake.routeBatches.count == 2)
    }

    @Test func deletingNeedsTheSameProtocolAndLink() throws {
        let (fake, connection, index) = try node()
        let theirs = LocalRoute(network: IPNetwork("192.0.2.20/32")!, linkIndex: index, routeProtocol: .static)
        let theirsIPv6 = LocalRoute(network: IPNetwork("fd00:20::/64")!, linkIndex: index, routeProtocol: .static)
        fake.add(theirs)
        fake.add(theirsIPv6)
        let ours = LocalRoute(network: theirs.network, linkIndex: index)
        // IPv4 keeps both routes of one network (they differ by protocol); IPv6 refuses the second on the link.
        let added = try connection.apply([
            .add(ours), .add(LocalRoute(network: theirsIPv6.network, linkIndex: index)),
        ])
        #expect(added.map(\.index) == [1])
        #expect(added.first?.error.errno == .fileExists)
        #expect(try connection.localRoutes(linkIndex: index, routeProtocol: .ipvsProxy) == [ours])
        let deleted = try connection.apply([
            .delete(ours), .delete(ours), .delete(LocalRoute(network: theirsIPv6.network, linkIndex: index)),
        ])
        #expect(deleted.map(\.index) == [1, 2])
        #expect(deleted.map(\.error.errno) == [.noSuchProcess, .noSuchProcess])
        #expect(try connection.localRoutes(linkIndex: nil, routeProtocol: nil) == [theirs, theirsIPv6])
    }

    @Test func aLinkThatGoesAwayTakesItsRoutes() throws {
        let (fake, connection, index) = try node()
        #expect(try connection.apply([.add(LocalRoute(network: range, linkIndex: index))]).isEmpty)
        try connection.deleteLink(index: index)
        #expect(fake.routes.isEmpty)
    }
}
