// nftables commands through libnftables: one call is one atomic transaction, its output and errors captured.

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <nftables/libnftables.h>

#include "CNFTables.h"
#include "CNetNamespace.h"

struct cnftables {
    struct nft_ctx *context;
};

static int make_context(void *argument) {
    cnftables *handle = argument;
    // The context opens its netlink socket here, on this thread, so it belongs to this thread's namespace.
    handle->context = nft_ctx_new(NFT_CTX_DEFAULT);
    if (handle->context == NULL) {
        return -ENOMEM;
    }
    if (nft_ctx_buffer_output(handle->context) != 0 || nft_ctx_buffer_error(handle->context) != 0) {
        return -ENOMEM;
    }
    return 0;
}

int cnftables_open(const char *netns_path, cnftables **handle) {
    *handle = NULL;
    cnftables *nft = calloc(1, sizeof(*nft));
    if (nft == NULL) {
        return -ENOMEM;
    }
    int result = cnetns_run(netns_path, make_context, nft);
    if (result < 0) {
        cnftables_close(nft);
        return result;
    }
    *handle = nft;
    return 0;
}

void cnftables_close(cnftables *handle) {
    if (handle == NULL) {
        return;
    }
    if (handle->context != NULL) {
        nft_ctx_free(handle->context);
    }
    free(handle);
}

static char *copy_text(const char *text) { return strdup(text == NULL ? "" : text); }

int cnftables_run(cnftables *handle, const char *commands, uint32_t flags, char **output, char **error) {
    *output = NULL;
    *error = NULL;
    unsigned int output_flags = 0;
    if (flags & CNFTABLES_JSON) {
        output_flags |= NFT_CTX_OUTPUT_JSON;
    }
    if (flags & CNFTABLES_HANDLES) {
        output_flags |= NFT_CTX_OUTPUT_HANDLE;
    }
    nft_ctx_output_set_flags(handle->context, output_flags);
    nft_ctx_set_dry_run(handle->context, (flags & CNFTABLES_DRY_RUN) != 0);
    int result = nft_run_cmd_from_buffer(handle->context, commands);
    // Reading a buffer resets it for the next command.
    *output = copy_text(nft_ctx_get_output_buffer(handle->context));
    *error = copy_text(nft_ctx_get_error_buffer(handle->context));
    nft_ctx_set_dry_run(handle->context, false);
    if (*output == NULL || *error == NULL) {
        free(*output);
        free(*error);
        *output = NULL;
        *error = NULL;
        return -ENOMEM;
    }
    return result == 0 ? 0 : CNFTABLES_REFUSED;
}

void cnftables_free(void *pointer) { free(pointer); }
