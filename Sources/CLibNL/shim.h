// The system library target exists only to pass libnl's pkg-config flags (include path and link libraries) to the
// CNetlink C target. Nothing in Swift imports it directly.
#ifndef CLIBNL_SHIM_H
#define CLIBNL_SHIM_H
#include <netlink/netlink.h>
#include <netlink/netfilter/ct.h>
#endif
