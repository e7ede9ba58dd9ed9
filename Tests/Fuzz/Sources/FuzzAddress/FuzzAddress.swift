// libFuzzer target: arbitrary text through the address and key parsers (IPAddress(_:) in InternetAddress,
// VirtualServerKey(_:) in IPVS), with properties a parser must keep:
// - what parses prints back as text that parses to the same value (LosslessStringConvertible);
// - IPAddress agrees with glibc's inet_pton (IPv4 first, then IPv6) on text without NUL bytes;
// - the address survives bytes -> IPAddress(family:bytes:).

import IPVSModel

#if canImport(Glibc)
    import Glibc
#endif

/// What inet_pton makes of `text`: IPv4 first, as IPAddress tries it.
private func systemParse(_ text: String) -> IPAddress? {
    var bytes = [UInt8](repeating: 0, count: 16)
    if inet_pton(AF_INET, text, &bytes) == 1 { return IPAddress(family: .ipv4, bytes: bytes.prefix(4)) }
    if inet_pton(AF_INET6, text, &bytes) == 1 { return IPAddress(family: .ipv6, bytes: bytes) }
    return nil
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let raw = UnsafeRawBufferPointer(start: start, count: count)
    let text = String(decoding: raw, as: UTF8.self)

    let address = IPAddress(text)
    if let address {
        let printed = address.description
        precondition(IPAddress(printed) == address, "IPAddress round trip: \(text.debugDescription) -> \(printed)")
        precondition(
            IPAddress(family: address.family, bytes: address.bytes) == address, "IPAddress bytes round trip")
        precondition(
            IPAddress(address.bracketedDescription.trimmingBrackets) == address, "bracketed description")
    }
    if !text.utf8.contains(0) {
        let system = systemParse(text)
        precondition(
            address == system,
            "IPAddress(\(text.debugDescription)) = \(address.map { "\($0)" } ?? "nil"), "
                + "inet_pton says \(system.map { "\($0)" } ?? "nil")")
    }

    if let key = VirtualServerKey(text) {
        let printed = key.description
        precondition(
            VirtualServerKey(printed) == key, "VirtualServerKey round trip: \(text.debugDescription) -> \(printed)")
    }
    return 0
}

extension String {
    fileprivate var trimmingBrackets: String {
        hasPrefix("[") && hasSuffix("]") ? String(dropFirst().dropLast()) : self
    }
}
