// libFuzzer target `netlink-reply`: arbitrary bytes as one IPVS generic netlink reply (header, attributes,
// lengths and all), through the shim's parsers. See NetlinkFuzzSupport for what is checked.

import NetlinkFuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    checkReply(start, count)
    return 0
}
