// nf_tables over this shim's own netlink transport, for what libnftables (CNFTables) does not expose: the
// ruleset's generation id, through an NFT_MSG_GETGEN request.

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <netlink/attr.h>
#include <netlink/msg.h>

#include "CNetlink.h"
#include "transport.h"

struct cnetlink_nftables {
    struct cnetlink_transport transport;
};
_Static_assert(offsetof(struct cnetlink_nftables, transport) == 0, "a handle starts with its transport");

int cnetlink_nftables_open(const char *netns_path, cnetlink_nftables **handle) {
    int result;
    *handle = transport_handle_new(sizeof(**handle), NETLINK_NETFILTER, netns_path, &result);
    return result;
}

void cnetlink_nftables_close(cnetlink_nftables *handle) { transport_handle_free(handle); }

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

int cnetlink_nftables_generation(cnetlink_nftables *handle, uint32_t *generation) {
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
