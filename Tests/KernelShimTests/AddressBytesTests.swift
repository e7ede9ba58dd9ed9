import InternetAddress
import KernelShim
import Testing

/// The shim's 16-byte address fields, which IPVS keys, real servers, interface addresses and conntrack tuples share.
@Suite("The shim's address fields", .timeLimit(.minutes(2)))
struct AddressBytesTests {
    @Test(arguments: ["10.96.0.1", "255.255.255.255", "fd00:10:96::a", "::1"])
    func anAddressRoundTrips(_ text: String) throws {
        let address = try #require(IPAddress(text))
        var field: CAddressBytes = (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
        address.copy(into: &field)
        let bytes = withUnsafeBytes(of: field) { Array($0) }
        // Network order first, zeros after an IPv4 address (whatever the field held before).
        #expect(bytes == address.bytes + [UInt8](repeating: 0, count: 16 - address.bytes.count))
        #expect(IPAddress(family: address.family.rawValue, cBytes: field) == address)
    }
}
