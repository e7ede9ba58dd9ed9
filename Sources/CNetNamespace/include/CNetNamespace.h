// CNetNamespace: running C code inside a network namespace, and the two things the proxy makes there without
// netlink.
//
// A socket belongs to the network namespace of the thread that makes it, and /proc/sys/net to the namespace of
// the thread that opens it; both are then used from anywhere. So each is made on a thread that has entered the
// namespace (`setns`) and gone back at once. The netlink transport (CNetlink) and the libnftables context
// (CNFTables) open their sockets the same way, through `cnetns_run`.
//
// Every function returns 0 (or a descriptor) on success and `-errno` on failure; `cnetns_run` returns what its
// body returned.
#ifndef CNETNAMESPACE_H
#define CNETNAMESPACE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Runs `body(context)` on the calling thread inside the network namespace at `netns_path` (e.g.
/// `/var/run/netns/NAME`), or where the thread is when `netns_path` is NULL, then returns the thread to its own
/// namespace. Returns `-errno` when the namespace cannot be entered, else what `body` returned. A thread that
/// cannot go back aborts the process: it would send everything after to the wrong kernel tables.
int cnetns_run(const char *netns_path, int (*body)(void *context), void *context);

/// Makes a non-blocking TCP socket in the network namespace at `netns_path` (or the caller's, when NULL), with
/// SO_REUSEADDR (and IPV6_V6ONLY for AF_INET6), bound to `address` (4 or 16 bytes in network order) and `port`,
/// not yet listening. Returns its descriptor, or a negative errno.
int cnetns_bound_tcp_socket(const char *netns_path, uint16_t family, const uint8_t *address, uint16_t port);

/// Writes `value` to a file under /proc/sys (e.g. `/proc/sys/net/ipv4/vs/conntrack`) as seen from the network
/// namespace at `netns_path` (or the caller's, when NULL): /proc/sys/net belongs to the opener's namespace.
int cnetns_sysctl_write(const char *netns_path, const char *path, const char *value);

#ifdef __cplusplus
}
#endif

#endif
