// conntrack (ctnetlink): dumping the connection tracking table and deleting entries, with libnl-nf's message
// parser and builder over this shim's transport (namespaces, batches, the kernel's errno kept).

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <netlink/addr.h>
#include <netlink/msg.h>
#include <netlink/netfilter/ct.h>
#include <netlink/netfilter/nfnl.h>

#include "CNetlink.h"
#include "transport.h"

struct cnetlink_conntrack {
    struct cnetlink_transport transport;
};
_Static_assert(offsetof(struct cnetlink_conntrack, transport) == 0, "a handle starts with its transport");

int cnetlink_conntrack_open(const char *netns_path, cnetlink_conntrack **handle) {
    int result;
    *handle = transport_handle_new(sizeof(**handle), NETLINK_NETFILTER, netns_path, &result);
    return result;
}

void cnetlink_conntrack_close(cnetlink_conntrack *handle) { transport_handle_free(handle); }

/// Copies an address; 0, or -CNETLINK_EBADREPLY when the message had none (or not of the entry's family).
static int copy_address(struct nl_addr *address, int family, uint8_t target[16]) {
    memset(target, 0, 16);
    unsigned int expected = family == AF_INET6 ? 16 : 4;
    if (address == NULL || nl_addr_get_len(address) != expected) {
        return -CNETLINK_EBADREPLY;
    }
    memcpy(target, nl_addr_get_binary_addr(address), expected);
    return 0;
}

static int copy_tuple(const struct nfnl_ct *ct, int reply, cnetlink_conntrack_tuple *tuple) {
    int family = nfnl_ct_get_family(ct);
    if (copy_address(nfnl_ct_get_src(ct, reply), family, tuple->source) < 0 ||
        copy_address(nfnl_ct_get_dst(ct, reply), family, tuple->destination) < 0) {
        return -CNETLINK_EBADREPLY;
    }
    tuple->source_port = nfnl_ct_get_src_port(ct, reply);
    tuple->destination_port = nfnl_ct_get_dst_port(ct, reply);
    return 0;
}

int cnetlink_conntrack_parse(const void *message, size_t length, cnetlink_conntrack_entry *entry) {
    const struct nlmsghdr *header = message;
    if (length < NLMSG_HDRLEN + sizeof(struct nfgenmsg) || header->nlmsg_len > length ||
        header->nlmsg_len < NLMSG_HDRLEN + sizeof(struct nfgenmsg)) {
        return -CNETLINK_EBADREPLY;
    }
    struct nfnl_ct *ct = NULL;
    int result = nfnlmsg_ct_parse((struct nlmsghdr *)header, &ct);
    if (result < 0 || ct == NULL) {
        return result < 0 ? transport_translate_libnl(result) : -CNETLINK_EBADREPLY;
    }
    result = 0;
    memset(entry, 0, sizeof(*entry));
    entry->family = nfnl_ct_get_family(ct);
    entry->protocol = nfnl_ct_get_proto(ct);
    // An address left out is not 0.0.0.0: zeros in its place would make the entry look like one to a
    // deleted endpoint, and the sync would delete it as stale.
    if (entry->family != AF_INET && entry->family != AF_INET6) {
        result = -CNETLINK_EBADREPLY;
    } else if (copy_tuple(ct, 0, &entry->original) < 0 || copy_tuple(ct, 1, &entry->reply) < 0) {
        result = -CNETLINK_EBADREPLY;
    }
    nfnl_ct_put(ct);
    return result;
}

struct entry_dump {
    cnetlink_conntrack_visitor visitor;
    void *context;
};

static int handle_entry(const struct nlmsghdr *message, void *context) {
    struct entry_dump *dump = context;
    if (NFNL_SUBSYS_ID(message->nlmsg_type) != NFNL_SUBSYS_CTNETLINK ||
        NFNL_MSG_TYPE(message->nlmsg_type) != IPCTNL_MSG_CT_NEW) {
        return 0;
    }
    cnetlink_conntrack_entry entry;
    if (cnetlink_conntrack_parse(message, message->nlmsg_len, &entry) < 0) {
        // An entry this shim cannot read whole (an unusual protocol, a missing address) is not one the
        // proxy deletes.
        return 0;
    }
    return dump->visitor(&entry, dump->context);
}

int cnetlink_conntrack_dump(cnetlink_conntrack *handle, uint8_t family, cnetlink_conntrack_visitor visitor,
                            void *context) {
    struct nl_msg *message = transport_reset_message(&handle->transport);
    uint32_t sequence = transport_take_sequence(&handle->transport);
    if (nfnlmsg_put(message, NL_AUTO_PORT, sequence, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET,
                    NLM_F_REQUEST | NLM_F_DUMP, family, 0) < 0) {
        return -EMSGSIZE;
    }
    struct entry_dump dump = {visitor, context};
    return transport_exchange(&handle->transport, handle_entry, &dump);
}

/// A libnl-nf conntrack object holding the entry's original tuple, which is what a delete matches on.
static struct nfnl_ct *make_original(const cnetlink_conntrack_entry *entry) {
    struct nfnl_ct *ct = nfnl_ct_alloc();
    if (ct == NULL) {
        return NULL;
    }
    int length = entry->family == AF_INET6 ? 16 : 4;
    struct nl_addr *source = nl_addr_build(entry->family, entry->original.source, length);
    struct nl_addr *destination = nl_addr_build(entry->family, entry->original.destination, length);
    if (source == NULL || destination == NULL) {
        nl_addr_put(source);
        nl_addr_put(destination);
        nfnl_ct_put(ct);
        return NULL;
    }
    nfnl_ct_set_family(ct, entry->family);
    nfnl_ct_set_proto(ct, entry->protocol);
    nfnl_ct_set_src(ct, 0, source);
    nfnl_ct_set_dst(ct, 0, destination);
    nfnl_ct_set_src_port(ct, 0, entry->original.source_port);
    nfnl_ct_set_dst_port(ct, 0, entry->original.destination_port);
    nl_addr_put(source);
    nl_addr_put(destination);
    return ct;
}

int cnetlink_conntrack_encode_delete(const cnetlink_conntrack_entry *entry, uint32_t sequence, void *buffer,
                                     size_t capacity) {
    struct nfnl_ct *ct = make_original(entry);
    if (ct == NULL) {
        return -ENOMEM;
    }
    struct nl_msg *message = NULL;
    int result = nfnl_ct_build_delete_request(ct, 0, &message);
    nfnl_ct_put(ct);
    if (result < 0) {
        return transport_translate_libnl(result);
    }
    struct nlmsghdr *header = nlmsg_hdr(message);
    header->nlmsg_seq = sequence;
    // libnl adds this when it sends a message itself; this one goes out through the shim's own transport, and the
    // kernel skips a message that is not a request.
    header->nlmsg_flags |= NLM_F_REQUEST;
    size_t length = header->nlmsg_len;
    if (length > capacity) {
        nlmsg_free(message);
        return -EMSGSIZE;
    }
    memcpy(buffer, header, length);
    nlmsg_free(message);
    return (int)length;
}

int cnetlink_conntrack_batch_begin(cnetlink_conntrack *handle) { return transport_batch_begin(&handle->transport); }

int cnetlink_conntrack_batch_append_delete(cnetlink_conntrack *handle, const cnetlink_conntrack_entry *entry) {
    struct nl_msg *scratch = transport_reset_message(&handle->transport);
    struct nlmsghdr *header = nlmsg_hdr(scratch);
    // The batch assigns the sequence number, which is how a failure finds its entry.
    int length = cnetlink_conntrack_encode_delete(entry, 0, header, transport_scratch_capacity(&handle->transport));
    if (length < 0) {
        return length;
    }
    return transport_batch_append_scratch(&handle->transport);
}

int cnetlink_conntrack_batch_commit(cnetlink_conntrack *handle, cnetlink_failure_visitor visitor, void *context) {
    return transport_batch_commit(&handle->transport, visitor, context);
}
