import IPVS
import IPVSModel
import InterfaceModel
import Interfaces
import Testing

@Suite("Links and addresses against the kernel", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct InterfaceHandleTests {
    @Test func dummyLinkHoldsAddressesBoundInABatch() throws {
        let namespace = try TestNamespace("links")
        let interfaces = try namespace.interfaces()
        let index = try interfaces.addDummyLink(named: "kube-ipvs0")
        let link = try #require(try interfaces.link(named: "kube-ipvs0"))
        #expect(link.index == index)
        #expect(link.kind == "dummy")
        #expect(try interfaces.links().contains { $0.isLoopback && $0.name == "lo" })
        #expect(throws: KernelCallError.self) { try interfaces.addDummyLink(named: "kube-ipvs0") }

        let addresses = ["10.96.0.1", "10.96.0.10", "fd00:10:96::1"].map {
            InterfaceAddress(linkIndex: index, address: IPAddress($0)!)
        }
        #expect(try interfaces.apply(addresses.map(AddressChange.bind)).isEmpty)
        let bound = try interfaces.addresses().filter { $0.linkIndex == index }
        #expect(Set(bound) == Set(addresses))
        #expect(bound.allSatisfy { $0.prefixLength == $0.address.family.hostPrefixLength })
        let shown = try namespace.ip("-o", "addr", "show", "dev", "kube-ipvs0").output
        #expect(shown.contains("10.96.0.10/32"))
        #expect(shown.contains("fd00:10:96::1/128"))

        // Binding again fails per address (EEXIST); unbinding a missing one fails too.
        let failures = try interfaces.apply([
            .bind(addresses[0]), .unbind(addresses[1]),
            .unbind(InterfaceAddress(linkIndex: index, address: IPAddress("10.96.7.7")!)),
        ])
        #expect(failures.map(\.index) == [0, 2])
        #expect(failures.first?.error.errno == .fileExists)
        #expect(Set(try interfaces.addresses().filter { $0.linkIndex == index }) == [addresses[0], addresses[2]])

        try interfaces.deleteLink(index: index)
        #expect(try interfaces.link(named: "kube-ipvs0") == nil)
    }
}
