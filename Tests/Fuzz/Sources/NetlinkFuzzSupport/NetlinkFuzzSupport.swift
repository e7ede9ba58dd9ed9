// What both netlink fuzz targets check for one message, through the shim's real parsers
// (CNetlink/ipvs_messages.c: cnetlink_ipvs_parse_service, cnetlink_ipvs_parse_destination):
// 1. parsed where it is (libFuzzer's buffer is exactly `count` bytes, so AddressSanitizer reports a read
//    past the end by instrumented code: the shim);
// 2. parsed again from a copy that ends exactly at an inaccessible guard page, because the attribute
//    accessors (nla_get_u32, nla_data, nla_strlcpy, ...) are in the system's libnl, which is not
//    instrumented: a read past the message there becomes a SEGV instead of going unnoticed;
// 3. a parsed service is encoded again (cnetlink_ipvs_encode_operation, ADD_SERVICE) and parsed back,
//    and must come back the same (the shim's encoder and parser agree on every field).

import CNetlink

#if canImport(Glibc)
    import Glibc
#endif

/// Messages up to this size are also parsed from the guarded copy.
public let guardedCapacity = 64 * 1024

/// A read-write region followed by a PROT_NONE page.
nonisolated(unsafe) private let guardedRegion: UnsafeMutableRawPointer = {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    guard let region = mmap(nil, guardedCapacity + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
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

/// The C string in a fixed-size char array (everything before the first NUL).
private func cString<T>(_ tuple: T) -> [UInt8] {
    withUnsafeBytes(of: tuple) { Array($0.prefix { $0 != 0 }) }
}

private func bytes<T>(_ tuple: T) -> [UInt8] { withUnsafeBytes(of: tuple) { Array($0) } }

/// Field by field: Swift copies of C structs do not keep padding bytes.
private func sameService(_ a: cnetlink_service, _ b: cnetlink_service) -> Bool {
    // HASHED (0x2) is the kernel's flag: the encoder never sends it.
    a.key.family == b.key.family && a.key.protocol == b.key.protocol && a.key.fwmark == b.key.fwmark
        && bytes(a.key.address) == bytes(b.key.address) && a.key.port == b.key.port
        && cString(a.scheduler) == cString(b.scheduler) && a.flags & ~0x2 == b.flags & ~0x2
        && a.timeout == b.timeout && a.netmask == b.netmask
}

// MARK: - Known bugs

/// FUZZ_NETLINK_SKIP_KNOWN=1 skips messages that would hit a bug already found and reported, so that a long
/// run can look for others instead of stopping at the same one. Off by default: `scripts/fuzz` must keep
/// failing until the bug is fixed.
private let skipKnown = getenv("FUZZ_NETLINK_SKIP_KNOWN").map { String(cString: $0) == "1" } ?? false

/// Walks attributes the way libnl's nla_ok/nla_next do; calls `body(type, payload offset, payload size)`.
private func forEachAttribute(
    _ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int, _ body: (UInt16, Int, Int) -> Void
) {
    var offset = start
    while end - offset >= 4 {
        let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self).littleEndian)
        let type = bytes.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self).littleEndian & 0x3FFF
        guard length >= 4, length <= end - offset else { return }
        body(type, offset + 4, length - 4)
        offset += (length + 3) & ~3
    }
}

/// Crashes/netlink-*/stats-attribute-without-payload: parse_stats (CNetlink/ipvs_messages.c) parses the STATS and
/// STATS64 nests with no policy and reads 4 bytes from a counter attribute whatever its size, past the end
/// of the message when a counter with 0-3 payload bytes comes last. True for any message with such a counter
/// in a stats nest of a service or destination (a superset of the crashing ones).
private func hitsShortStatsCounter(_ bytes: UnsafeRawBufferPointer) -> Bool {
    var found = false
    forEachAttribute(bytes, from: 20, to: bytes.count) { type, start, size in
        guard type == 1 || type == 2 else { return }  // IPVS_CMD_ATTR_SERVICE, IPVS_CMD_ATTR_DEST
        forEachAttribute(bytes, from: start, to: start + size) { type, start, size in
            guard type == 10 || type == 12 else { return }  // *_ATTR_STATS, *_ATTR_STATS64
            forEachAttribute(bytes, from: start, to: start + size) { type, _, size in
                if (1...10).contains(type) && size < 4 { found = true }
            }
        }
    }
    return found
}

// MARK: - Checks

/// Runs every check on the `count` bytes at `message`.
public func checkReply(_ message: UnsafeRawPointer, _ count: Int) {
    if skipKnown && hitsShortStatsCounter(UnsafeRawBufferPointer(start: message, count: count)) { return }
    let (result, entry) = parseBoth(message, count)

    if count <= guardedCapacity {
        let copy = guardedRegion + (guardedCapacity - count)
        copy.copyMemory(from: message, byteCount: count)
        let (guardedResult, _) = parseBoth(UnsafeRawPointer(copy), count)
        precondition(guardedResult == result, "the parse result depends on where the message is")
    }

    guard result == 0 else { return }
    var operation = cnetlink_operation()
    operation.kind = CNETLINK_ADD_SERVICE.rawValue
    operation.service = entry.service
    var buffer = [UInt8](repeating: 0, count: 512)
    let length = cnetlink_ipvs_encode_operation(&operation, 0x20, 1, 0, &buffer, buffer.count)
    precondition(length > 0, "cannot encode a parsed service: \(length)")
    var again = cnetlink_service_entry()
    let reparsed = cnetlink_ipvs_parse_service(buffer, Int(length), &again)
    precondition(reparsed == 0, "an encoded service does not parse: \(reparsed)")
    precondition(
        sameService(entry.service, again.service),
        "service changed in an encode/parse round trip: \(entry.service) became \(again.service)")
}
