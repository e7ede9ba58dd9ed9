#!/usr/bin/env python3
"""Writes the seed corpora of the netlink fuzz targets: valid IPVS generic netlink replies.

The layout follows the kernel's ip_vs_genl_fill_service / ip_vs_genl_fill_dest (and
Tests/IPVSTests/NetlinkBytes.swift + ReplyParsingTests.swift): nlmsghdr, genlmsghdr, then one nested
IPVS_CMD_ATTR_SERVICE (1) or IPVS_CMD_ATTR_DEST (2) with NLA_F_NESTED set. Little-endian host order,
ports in network order.

Writes the same messages twice: Corpus/netlink-reply/NAME holds the bytes, Corpus/netlink-attributes/NAME the
program that FuzzNetlinkAttributes turns into those bytes.

Usage: Tests/Fuzz/Tools/make-netlink-seeds.py [CORPUS_DIR]   (default: Tests/Fuzz/Corpus)
"""
import os
import struct
import sys

NLA_F_NESTED = 0x8000
IPVS_FAMILY_ID = 0x20  # whatever the kernel assigned; the parsers do not look at it
IPVS_CMD_NEW_SERVICE, IPVS_CMD_NEW_DEST = 1, 5
CMD_ATTR_SERVICE, CMD_ATTR_DEST = 1, 2
# IPVS_SVC_ATTR_*
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK, SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK, \
    SVC_STATS, SVC_PE_NAME, SVC_STATS64 = range(1, 13)
# IPVS_DEST_ATTR_*
DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT, DEST_U_THRESH, DEST_L_THRESH, DEST_ACTIVE_CONNS, \
    DEST_INACT_CONNS, DEST_PERSIST_CONNS, DEST_STATS, DEST_ADDR_FAMILY, DEST_STATS64 = range(1, 13)
AF_INET, AF_INET6 = 2, 10


# A message is a tree: ("attr", type, payload) or ("nest", type, [children]). It is written two ways:
# as the netlink bytes (netlink-reply seeds) and as the program FuzzNetlinkAttributes builds it from.

def attr(kind, payload): return ("attr", kind, payload)
def nest(kind, *children): return ("nest", kind | NLA_F_NESTED, list(children))
def u16(kind, value): return attr(kind, struct.pack("<H", value))
def be16(kind, value): return attr(kind, struct.pack(">H", value))
def u32(kind, value): return attr(kind, struct.pack("<I", value))
def u64(kind, value): return attr(kind, struct.pack("<Q", value))
def string(kind, text): return attr(kind, text.encode() + b"\0")
def address(kind, octets): return attr(kind, bytes(octets) + b"\0" * (16 - len(octets)))


def message(command, *children): return ("message", command, list(children))


def to_bytes(node):
    if node[0] == "message":
        body = bytes([node[1], 1, 0, 0]) + b"".join(to_bytes(c) for c in node[2])
        # nlmsghdr: length, type (the IPVS family id), flags (NLM_F_MULTI), sequence, port id
        return struct.pack("<IHHII", 16 + len(body), IPVS_FAMILY_ID, 0x2, 1, 0) + body
    if node[0] == "attr":
        data = struct.pack("<HH", 4 + len(node[2]), node[1]) + node[2]
        return data + b"\0" * (-len(data) % 4)
    body = b"".join(to_bytes(c) for c in node[2])
    return struct.pack("<HH", 4 + len(body), node[1]) + body


def to_program(node):
    """The FuzzNetlinkAttributes program that builds the same bytes."""
    if node[0] == "message":
        return bytes([node[1]]) + b"".join(to_program(c) for c in node[2])
    if node[0] == "attr":
        assert len(node[2]) < 256
        return bytes([0]) + struct.pack("<HB", node[1], len(node[2])) + node[2]
    return bytes([1]) + struct.pack("<H", node[1]) + b"".join(to_program(c) for c in node[2]) + bytes([2])


def stats32(kind):
    # The 32-bit set: u32 counters and rates, u64 byte counts.
    return nest(kind, u32(1, 5), u32(2, 12), u32(3, 11), u64(4, 1000), u64(5, 3000),
                u32(6, 1), u32(7, 2), u32(8, 3), u32(9, 400), u32(10, 500))


def stats64(kind):
    return nest(kind, *(u64(i, (1 << 33) + i) for i in range(1, 11)))


def service(family=AF_INET, protocol=6, addr=(10, 0, 0, 1), port=80, fwmark=None, scheduler="wrr",
            flags=0x3, timeout=300, netmask=0xFFFFFFFF, with_stats64=True):
    key = [u16(SVC_AF, family)]
    if fwmark is not None:
        key.append(u32(SVC_FWMARK, fwmark))
    else:
        key += [u16(SVC_PROTOCOL, protocol), address(SVC_ADDR, addr), be16(SVC_PORT, port)]
    rest = [string(SVC_SCHED_NAME, scheduler), string(SVC_PE_NAME, ""),
            attr(SVC_FLAGS, struct.pack("<II", flags, 0xFFFFFFFF)),
            u32(SVC_TIMEOUT, timeout), u32(SVC_NETMASK, netmask), stats32(SVC_STATS)]
    if with_stats64:
        rest.append(stats64(SVC_STATS64))
    return message(IPVS_CMD_NEW_SERVICE, nest(CMD_ATTR_SERVICE, *key, *rest))


def destination(addr=(10, 244, 1, 5), family=AF_INET, port=8080, method=0, weight=1, active=3, inactive=4,
                persistent=1, with_stats64=True):
    attrs = [address(DEST_ADDR, addr), be16(DEST_PORT, port), u32(DEST_FWD_METHOD, method),
             u32(DEST_WEIGHT, weight), u32(DEST_U_THRESH, 0), u32(DEST_L_THRESH, 0),
             u32(DEST_ACTIVE_CONNS, active), u32(DEST_INACT_CONNS, inactive),
             u32(DEST_PERSIST_CONNS, persistent), stats32(DEST_STATS)]
    if family is not None:
        attrs.append(u16(DEST_ADDR_FAMILY, family))
    if with_stats64:
        attrs.append(stats64(DEST_STATS64))
    return message(IPVS_CMD_NEW_DEST, nest(CMD_ATTR_DEST, *attrs))


V6 = (0xfd, 0, 0, 0x10, 0, 0x96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a)
SEEDS = {
    "service-tcp4-wrr": service(),
    "service-udp4-rr-no-stats64": service(protocol=17, addr=(10, 96, 0, 10), port=53, scheduler="rr",
                                          flags=0x2, timeout=0, with_stats64=False),
    "service-sctp6-sh": service(family=AF_INET6, protocol=132, addr=V6, port=3868, scheduler="sh",
                                flags=0x2 | 0x8 | 0x10, netmask=128),
    "service-fwmark6": service(family=AF_INET6, fwmark=42, scheduler="lc", netmask=128),
    "service-long-scheduler": service(scheduler="a-scheduler-name-longer-than-15"),
    "destination-ipv4-masq": destination(),
    "destination-ipv6-droute": destination(addr=V6, family=AF_INET6, port=443, method=3, weight=100),
    "destination-old-kernel-no-family": destination(family=None, with_stats64=False, weight=0),
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    corpus = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "Corpus")
    for target, write in (("netlink-reply", to_bytes), ("netlink-attributes", to_program)):
        out = os.path.join(corpus, target)
        os.makedirs(out, exist_ok=True)
        for name, tree in SEEDS.items():
            with open(os.path.join(out, name), "wb") as f:
                f.write(write(tree))
        if target == "netlink-reply":
            # A dump's reply holds several messages; the parsers read the first.
            with open(os.path.join(out, "two-messages"), "wb") as f:
                f.write(to_bytes(SEEDS["service-tcp4-wrr"]) + to_bytes(SEEDS["destination-ipv4-masq"]))
        print(f"wrote the {target} seeds to {os.path.normpath(out)}")


if __name__ == "__main__":
    main()
