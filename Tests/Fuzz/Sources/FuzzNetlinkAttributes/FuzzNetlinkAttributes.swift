// libFuzzer target `netlink-attributes`: structure-aware. The input is a small program that builds an IPVS
// generic netlink message, with every length (message, nests) and padding filled in, so mutations change
// attribute types, payload sizes and nesting instead of breaking the framing. That reaches the parsers'
// attribute handling far more often than raw bytes do; attribute payloads may have any size (0-255).
//
// Program: byte 0 is the generic netlink command; then records until the input ends:
//   op & 3 == 0  attribute:     type (2 bytes LE, flags included), size n (1 byte), n payload bytes
//   op & 3 == 1  begin a nest:  type (2 bytes LE; NLA_F_NESTED is not added, set it in the type)
//   op & 3 == 2  end the innermost nest (ignored when none is open; open nests end with the input)
//   op & 3 == 3  raw bytes:     size n (1 byte), n bytes appended as they are (no padding)
// A record cut short by the end of the input is dropped. Tools/make-netlink-seeds.py writes seeds.
//
// To turn a program (a crash file) into the netlink bytes it stands for, e.g. for a unit test:
//   FUZZ_NETLINK_WRITE=message.bin .build-fuzz/debug/FuzzNetlinkAttributes crash-file

import NetlinkFuzzSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Where to write each built message (FUZZ_NETLINK_WRITE), for turning programs into bytes.
private let writePath: String? = getenv("FUZZ_NETLINK_WRITE").map { String(cString: $0) }

private struct Builder {
    var bytes: [UInt8]
    var nests: [Int] = []

    init(command: UInt8) {
        bytes = [UInt8](repeating: 0, count: 16)  // nlmsghdr, length patched in `finish`
        bytes[4] = 0x20  // nlmsg_type: some IPVS family id
        bytes[6] = 0x02  // NLM_F_MULTI
        bytes[8] = 1  // sequence
        bytes += [command, 1, 0, 0]  // genlmsghdr: command, version
    }

    mutating func header(type: UInt16, length: Int) {
        let length = UInt16(clamping: length)
        bytes += [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(type & 0xFF), UInt8(type >> 8)]
    }

    mutating func pad() { while bytes.count % 4 != 0 { bytes.append(0) } }

    mutating func endNest() {
        let start = nests.removeLast()
        let length = UInt16(clamping: bytes.count - start)
        bytes[start] = UInt8(length & 0xFF)
        bytes[start + 1] = UInt8(length >> 8)
    }

    mutating func finish() -> [UInt8] {
        while !nests.isEmpty { endNest() }
        let length = UInt32(bytes.count)
        for index in 0..<4 { bytes[index] = UInt8(truncatingIfNeeded: length >> (8 * index)) }
        return bytes
    }
}

private func build(_ program: UnsafeRawBufferPointer) -> [UInt8] {
    var builder = Builder(command: program.first ?? 1)
    var at = 1
    func take(_ n: Int) -> UnsafeRawBufferPointer.SubSequence? {
        guard at + n <= program.count else { return nil }
        defer { at += n }
        return program[at..<(at + n)]
    }
    func type() -> UInt16? { take(2).map { UInt16($0.first!) | UInt16($0.last!) << 8 } }
    while let op = take(1)?.first, builder.bytes.count < 60_000 {
        switch op & 3 {
        case 0:
            guard let type = type(), let size = take(1)?.first, let payload = take(Int(size)) else { break }
            builder.header(type: type, length: 4 + payload.count)
            builder.bytes += payload
            builder.pad()
        case 1:
            guard let type = type() else { break }
            builder.nests.append(builder.bytes.count)
            builder.header(type: type, length: 0)
        case 2:
            if !builder.nests.isEmpty { builder.endNest() }
        default:
            guard let size = take(1)?.first, let raw = take(Int(size)) else { break }
            builder.bytes += raw
        }
    }
    return builder.finish()
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let message = build(UnsafeRawBufferPointer(start: start, count: count))
    if let writePath, let file = fopen(writePath, "wb") {
        _ = message.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    // An exactly sized heap copy, so AddressSanitizer sees the end of the message.
    let exact = UnsafeMutableRawPointer.allocate(byteCount: max(message.count, 1), alignment: 8)
    defer { exact.deallocate() }
    message.withUnsafeBytes { exact.copyMemory(from: $0.baseAddress!, byteCount: message.count) }
    checkReply(exact, message.count)
    return 0
}
