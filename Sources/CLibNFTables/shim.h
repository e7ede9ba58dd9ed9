// The system library target exists only to pass libnftables' pkg-config flags (include path and link library) to
// the CNFTables C target. Nothing in Swift imports it directly.
#ifndef CLIBNFTABLES_SHIM_H
#define CLIBNFTABLES_SHIM_H
#include <nftables/libnftables.h>
#endif
