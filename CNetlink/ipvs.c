// IPVS generic netlink: the handle and its commands, over the transport. What goes into the messages and what is
// read out of the replies is in ipvs_messages.c.

// glibc's socket headers must come before the <linux/...> ones, or their definitions collide.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>

#include <linux/netfilter.h>
#include <linux/ip_vs.h>

#include <netlink/errno.h>
#include <netlink/genl/ctrl.h>

#include "CNetlink.h"
#include "ipvs_messages.h"
#include "transport.h"

struct cnetlink_ipvs {
    struct cnetlink_transport transport;
    uint16_t family_id;
};
_Static_assert(offsetof(struct cnetlink_ipvs, transport) == 0, "a handle starts with its transport");

int cnetlink_ipvs_open(const char *netns_path, cnetlink_ipvs **handle) {
    int result;
    cnetlink_ipvs *ipvs = transport_handle_new(sizeof(*ipvs), NETLINK_GENERIC, netns_path, &result);
    *handle = NULL;
    if (ipvs == NULL) {
        return result;
    }
    int family = genl_ctrl_resolve(ipvs->transport.socket, IPVS_GENL_NAME);
    if (family <= 0) {
        transport_handle_free(ipvs);
        // A family id of 0 must never be used: the kernel would route every request to the controller.
        return family == -NLE_OBJ_NOTFOUND || family == 0 ? -CNETLINK_ENOIPVS : transport_translate_libnl(family);
    }
    ipvs->family_id = (uint16_t)family;
    *handle = ipvs;
    return 0;
}

int cnetlink_ipvs_set_receive_buffer(cnetlink_ipvs *handle, int bytes) {
    return transport_set_receive_buffer(&handle->transport, bytes);
}

void cnetlink_ipvs_close(cnetlink_ipvs *handle) { transport_handle_free(handle); }

/// Starts a request in the scratch message with a fresh sequence number.
static struct nl_msg *begin_request(cnetlink_ipvs *handle, int flags, uint8_t command) {
    struct nl_msg *message = transport_reset_message(&handle->transport);
    uint32_t sequence = transport_take_sequence(&handle->transport);
    return ipvs_begin_message(message, handle->family_id, sequence, flags, command) == 0 ? message : NULL;
}

struct info_reply {
    uint32_t *version;
    uint32_t *table_size;
    int found;
};

static int handle_info(const struct nlmsghdr *message, void *context) {
    struct info_reply *reply = context;
    int result = ipvs_parse_info(message, reply->version, reply->table_size);
    reply->found = result == 0;
    return result;
}

/// Runs an exchange that must deliver exactly one reply message.
static int exchange_single(cnetlink_ipvs *handle, transport_message_handler handler, void *context, int *found) {
    int result = transport_exchange(&handle->transport, handler, context);
    if (result < 0) {
        return result;
    }
    return *found ? 0 : -CNETLINK_EBADREPLY;
}

int cnetlink_ipvs_get_info(cnetlink_ipvs *handle, uint32_t *version, uint32_t *connection_table_size) {
    if (begin_request(handle, NLM_F_ACK, IPVS_CMD_GET_INFO) == NULL) {
        return -EMSGSIZE;
    }
    struct info_reply reply = {version, connection_table_size, 0};
    return exchange_single(handle, handle_info, &reply, &reply.found);
}

struct timeouts_reply {
    cnetlink_timeouts *timeouts;
    int found;
};

static int handle_timeouts(const struct nlmsghdr *message, void *context) {
    struct timeouts_reply *reply = context;
    int result = ipvs_parse_timeouts(message, reply->timeouts);
    reply->found = result == 0;
    return result;
}

int cnetlink_ipvs_get_timeouts(cnetlink_ipvs *handle, cnetlink_timeouts *timeouts) {
    if (begin_request(handle, NLM_F_ACK, IPVS_CMD_GET_CONFIG) == NULL) {
        return -EMSGSIZE;
    }
    struct timeouts_reply reply = {timeouts, 0};
    return exchange_single(handle, handle_timeouts, &reply, &reply.found);
}

int cnetlink_ipvs_set_timeouts(cnetlink_ipvs *handle, const cnetlink_timeouts *timeouts) {
    struct nl_msg *message = begin_request(handle, NLM_F_ACK, IPVS_CMD_SET_CONFIG);
    if (message == NULL || ipvs_put_timeouts(message, timeouts) < 0) {
        return -EMSGSIZE;
    }
    return transport_exchange(&handle->transport, NULL, NULL);
}

struct service_dump {
    cnetlink_service_visitor visitor;
    void *context;
};

static int handle_service(const struct nlmsghdr *message, void *context) {
    struct service_dump *dump = context;
    cnetlink_service_entry entry;
    int result = cnetlink_ipvs_parse_service(message, message->nlmsg_len, &entry);
    if (result < 0) {
        return result;
    }
    return dump->visitor(&entry, dump->context);
}

int cnetlink_ipvs_dump_services(cnetlink_ipvs *handle, cnetlink_service_visitor visitor, void *context) {
    if (begin_request(handle, NLM_F_DUMP, IPVS_CMD_GET_SERVICE) == NULL) {
        return -EMSGSIZE;
    }
    struct service_dump dump = {visitor, context};
    return transport_exchange(&handle->transport, handle_service, &dump);
}

struct single_service {
    cnetlink_service_entry *entry;
    int found;
};

static int handle_single_service(const struct nlmsghdr *message, void *context) {
    struct single_service *single = context;
    int result = cnetlink_ipvs_parse_service(message, message->nlmsg_len, single->entry);
    single->found = result == 0;
    return result;
}

int cnetlink_ipvs_get_service(cnetlink_ipvs *handle, const cnetlink_service_key *key, cnetlink_service_entry *entry) {
    struct nl_msg *message = begin_request(handle, NLM_F_ACK, IPVS_CMD_GET_SERVICE);
    if (message == NULL) {
        return -EMSGSIZE;
    }
    cnetlink_service service = {.key = *key};
    if (ipvs_put_service(message, &service, 0) < 0) {
        return -EMSGSIZE;
    }
    struct single_service single = {entry, 0};
    return exchange_single(handle, handle_single_service, &single, &single.found);
}

struct destination_dump {
    cnetlink_destination_visitor visitor;
    void *context;
    uint16_t service_family;
};

static int handle_destination(const struct nlmsghdr *message, void *context) {
    struct destination_dump *dump = context;
    cnetlink_destination_entry entry;
    int result = cnetlink_ipvs_parse_destination(message, message->nlmsg_len, &entry);
    if (result < 0) {
        return result;
    }
    if (entry.destination.family == 0) {
        entry.destination.family = dump->service_family;
    }
    return dump->visitor(&entry, dump->context);
}

int cnetlink_ipvs_dump_destinations(cnetlink_ipvs *handle, const cnetlink_service_key *key,
                                    cnetlink_destination_visitor visitor, void *context) {
    struct nl_msg *message = begin_request(handle, NLM_F_DUMP, IPVS_CMD_GET_DEST);
    if (message == NULL) {
        return -EMSGSIZE;
    }
    cnetlink_service service = {.key = *key};
    if (ipvs_put_service(message, &service, 0) < 0) {
        return -EMSGSIZE;
    }
    struct destination_dump dump = {visitor, context, key->family};
    return transport_exchange(&handle->transport, handle_destination, &dump);
}

int cnetlink_ipvs_execute(cnetlink_ipvs *handle, const cnetlink_operation *operation) {
    struct nl_msg *message = transport_reset_message(&handle->transport);
    uint32_t sequence = transport_take_sequence(&handle->transport);
    int result = ipvs_build_operation(message, operation, handle->family_id, sequence, NLM_F_ACK);
    if (result < 0) {
        return result;
    }
    return transport_exchange(&handle->transport, NULL, NULL);
}

int cnetlink_ipvs_flush(cnetlink_ipvs *handle) {
    if (begin_request(handle, NLM_F_ACK, IPVS_CMD_FLUSH) == NULL) {
        return -EMSGSIZE;
    }
    return transport_exchange(&handle->transport, NULL, NULL);
}

int cnetlink_ipvs_zero(cnetlink_ipvs *handle, const cnetlink_service_key *key) {
    struct nl_msg *message = begin_request(handle, NLM_F_ACK, IPVS_CMD_ZERO);
    if (message == NULL) {
        return -EMSGSIZE;
    }
    if (key != NULL) {
        cnetlink_service service = {.key = *key};
        if (ipvs_put_service(message, &service, 0) < 0) {
            return -EMSGSIZE;
        }
    }
    return transport_exchange(&handle->transport, NULL, NULL);
}

int cnetlink_ipvs_batch_begin(cnetlink_ipvs *handle) { return transport_batch_begin(&handle->transport); }

int cnetlink_ipvs_batch_append(cnetlink_ipvs *handle, const cnetlink_operation *operation) {
    struct nl_msg *message = transport_reset_message(&handle->transport);
    // The batch assigns the sequence number, which is how a failure finds its operation.
    int result = ipvs_build_operation(message, operation, handle->family_id, 0, 0);
    if (result < 0) {
        return result;
    }
    return transport_batch_append_scratch(&handle->transport);
}

int cnetlink_ipvs_batch_commit(cnetlink_ipvs *handle, cnetlink_failure_visitor visitor, void *context) {
    return transport_batch_commit(&handle->transport, visitor, context);
}
