// libFuzzer target: arbitrary bytes as an IPVS generic netlink reply, through the shim's real parsers
// (CNetlink/ipvs.c: cnetlink_ipvs_parse_service, cnetlink_ipvs_parse_destination).
//
// Each input is parsed three ways:
// 1. from libFuzzer's own buffer, which is exactly `count` bytes long, so AddressSanitizer reports any
//    read past the end by instrumented code (the shim);
// 2. from a copy that ends exactly at an inaccessible guard page, because the attribute accessors
//    (nla_get_u32, nla_data, ...) live in the system's libnl, which is not instrumented: a read past the
//    message there becomes a SEGV;
// 3. a successfully parsed service is encoded again with cnetlink_ipvs_encode_operation (ADD_SERVICE) and
//    parsed back, and must come back equal (the shim's encoder and parser agree on every field).
//
// The return value is always 0 (libFuzzer reserves other values); failures are crashes.

import CNetlink

#if canImport(Glibc)
    import Glibc
#endif

/// A read-write region followed by a PROT_NONE page; inputs are copied so they end at the guard.
private let guardedCapacity = 64 * 1024
nonisolated(unsafe) private let guardedRegion: UnsafeMutableRawPointer = {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let size = guardedCapacity + page
    guard let region = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
        region != MAP_FAILED
    else { fatalError("mmap failed") }
    guard mprotect(region + guardedCapacity, page, PROT_NONE) == 0 else { fatalError("mprotect failed") }
    return region
}()

private func parseBoth(_ message: UnsafeRawPointer, _ count: Int) -> (Int32, cnetlink_service_entry) {
    var service = cnetlink_service_entry()
    var destination = cnetlink_destination_entry()
    let serviceResult = cnetlink_ipvs_parse_service(message, count, &service)
    _ = cnetlink_ipvs_parse_destination(message, count, &destination)
    return (serviceResult, service)
}

private func sameService(_ a: cnetlink_service, _ b: cnetlink_service) -> Bool {
    var a = a
    var b = b
    // HASHED (0x2) is the kernel's flag: the encoder never sends it.
    a.flags &= ~UInt32(0x2)
    b.flags &= ~UInt32(0x2)
    return withUnsafeBytes(of: &a) { x in withUnsafeBytes(of: &b) { y in x.elementsEqual(y) } }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let (result, entry) = parseBoth(start, count)

    if count <= guardedCapacity {
        let copy = guardedRegion + (guardedCapacity - count)
        copy.copyMemory(from: start, byteCount: count)
        let (guardedResult, _) = parseBoth(UnsafeRawPointer(copy), count)
        precondition(guardedResult == result, "parse result depends on the buffer's address")
    }

    guard result == 0 else { return 0 }
    var operation = cnetlink_operation()
    operation.kind = CNETLINK_ADD_SERVICE.rawValue
    operation.service = entry.service
    var buffer = [UInt8](repeating: 0, count: 512)
    let length = cnetlink_ipvs_encode_operation(&operation, 0x20, 1, 0, &buffer, buffer.count)
    precondition(length > 0, "cannot encode a parsed service: \(length)")
    var again = cnetlink_service_entry()
    let reparsed = cnetlink_ipvs_parse_service(buffer, Int(length), &again)
    precondition(reparsed == 0, "an encoded service does not parse: \(reparsed)")
    precondition(sameService(entry.service, again.service), "service changed in an encode/parse round trip")
    return 0
}
