// CNFTables: nftables commands through libnftables, in one network namespace. Commands are nft's own text, and
// each call is one transaction: all of it or nothing. No libnftables type reaches Swift.
//
// The ruleset's generation id, which libnftables does not expose, is read over netlink by CNetlink
// (`cnetlink_nftables_generation`).
#ifndef CNFTABLES_H
#define CNFTABLES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A libnftables context whose netlink socket lives in one network namespace. Not thread-safe: serialize calls.
typedef struct cnftables cnftables;

/// Flags of `cnftables_run`.
enum {
    /// Check the commands (and the kernel's answer to them) without committing anything.
    CNFTABLES_DRY_RUN = 1 << 0,
    /// Listings in libnftables' JSON.
    CNFTABLES_JSON = 1 << 1,
    /// Listings with rule and set handles.
    CNFTABLES_HANDLES = 1 << 2,
};

/// What `cnftables_run` returns when libnftables refused the commands or the kernel refused their transaction:
/// not an errno, but an outcome whose reason is libnftables' error text.
enum { CNFTABLES_REFUSED = 1 };

/// Opens a context whose socket lives in the network namespace at `netns_path` (or the caller's, when NULL).
/// Returns 0, or a negative errno.
int cnftables_open(const char *netns_path, cnftables **handle);
void cnftables_close(cnftables *handle);
/// Runs `commands` (nft syntax) as one transaction. `output` and `error` receive what libnftables printed, to be
/// released with `cnftables_free`. Returns 0, `CNFTABLES_REFUSED` (the error text says why), or a negative errno.
int cnftables_run(cnftables *handle, const char *commands, uint32_t flags, char **output, char **error);
/// Releases text `cnftables_run` allocated.
void cnftables_free(void *pointer);

#ifdef __cplusplus
}
#endif

#endif
