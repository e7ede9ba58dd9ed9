// nftables: commands through libnftables (one call is one atomic transaction), and the ruleset's generation
// id through a netlink request of our own (libnftables does not expose it).

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <netlink/attr.h>
#include <netlink/msg.h>
#include <nftables/libnftables.h>

#include "CNetlink.h"
#include "transport.h"

#include "CNetNamespace.h"

struct cnetlink_nft {
    struct cnetlink_transport transport;
    struct nft_ctx *context;
};
_Static_assert(offsetof(struct cnetlink_nft, transport) == 0, "a handle starts with its transport");

static int make_context(void *argument) {
    cnetlink_nft *handle = argument;
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

int cnetlink_nft_open(const char *netns_path, cnetlink_nft **handle) {
    int result;
    cnetlink_nft *nft = transport_handle_new(sizeof(*nft), NETLINK_NETFILTER, netns_path, &result);
    if (nft != NULL) {
        result = cnetns_run(netns_path, make_context, nft);
        if (result < 0) {
            cnetlink_nft_close(nft);
            nft = NULL;
        }
    }
    *handle = nft;
    return result;
}

void cnetlink_nft_close(cnetlink_nft *handle) {
    if (handle != NULL && handle->context != NULL) {
        nft_ctx_free(handle->context);
    }
    transport_handle_free(handle);
}

static char *copy_text(const char *text) { return strdup(text == NULL ? "" : text); }

int cnetlink_nft_run(cnetlink_nft *handle, const char *commands, uint32_t flags, char **output, char **error) {
    *output = NULL;
    *error = NULL;
    unsigned int output_flags = 0;
    if (flags & CNETLINK_NFT_JSON) {
        output_flags |= NFT_CTX_OUTPUT_JSON;
    }
    if (flags & CNETLINK_NFT_HANDLES) {
        output_flags |= NFT_CTX_OUTPUT_HANDLE;
    }
    nft_ctx_output_set_flags(handle->context, output_flags);
    nft_ctx_set_dry_run(handle->context, (flags & CNETLINK_NFT_DRY_RUN) != 0);
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
    return result == 0 ? 0 : -CNETLINK_ENFTABLES;
}

void cnetlink_free(void *pointer) { free(pointer); }

struct generation_reply {
    uint32_t generation;
    int found;
};

static int handle_generation(const struct nlmsghdr *message, void *context) {
    struct generation_reply *reply = context;
    struct nlattr *attributes[NFTA_GEN_MAX + 1];
    if ((message->nlmsg_type & 0xff) != NFT_MSG_NEWGEN ||
        nlmsg_parse((struct nlmsghdr *)message, sizeof(struct nfgenmsg), attributes, NFTA_GEN_MAX, NULL) < 0 ||
        attributes[NFTA_GEN_ID] == NULL) {
        return 0;
    }
    reply->generation = ntohl(nla_get_u32(attributes[NFTA_GEN_ID]));
    reply->found = 1;
    return 0;
}

int cnetlink_nft_generation(cnetlink_nft *handle, uint32_t *generation) {
    struct nl_msg *message = transport_reset_message(&handle->transport);
    uint32_t sequence = transport_take_sequence(&handle->transport);
    struct nlmsghdr *header = nlmsg_put(message, NL_AUTO_PORT, sequence, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
                                        sizeof(struct nfgenmsg), NLM_F_REQUEST | NLM_F_ACK);
    if (header == NULL) {
        return -EMSGSIZE;
    }
    struct nfgenmsg *family = nlmsg_data(header);
    memset(family, 0, sizeof(*family));
    family->nfgen_family = AF_UNSPEC;
    family->version = NFNETLINK_V0;
    struct generation_reply reply = {0, 0};
    int result = transport_exchange(&handle->transport, handle_generation, &reply);
    if (result < 0) {
        return result;
    }
    if (!reply.found) {
        return -CNETLINK_EBADREPLY;
    }
    *generation = reply.generation;
    return 0;
}
