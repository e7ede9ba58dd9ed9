import InternetAddress

/// An address field of the shim's structs (`uint8_t address[16]`, network order, IPv4 in the first 4 bytes), as
/// Swift imports it.
package typealias CAddressBytes = (
    UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
)

extension IPAddress {
    /// The address in one of the shim's address fields; `family` is `AF_INET` or `AF_INET6` (anything else reads
    /// as IPv4).
    package init(family: UInt16, cBytes: CAddressBytes) {
        let addressFamily = AddressFamily(rawValue: family) ?? .ipv4
        self = withUnsafeBytes(of: cBytes) { IPAddress(family: addressFamily, bytes: $0) }
    }

    /// Writes the address into one of the shim's address fields, zeros after it.
    package func copy(into cBytes: inout CAddressBytes) {
        withUnsafeMutableBytes(of: &cBytes) { target in
            target.initializeMemory(as: UInt8.self, repeating: 0)
            withBytes { target.copyMemory(from: $0) }
        }
    }
}
