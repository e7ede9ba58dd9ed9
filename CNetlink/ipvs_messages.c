// IPVS generic netlink messages: building requests and parsing replies. Pure functions of their arguments: no
// socket, no handle (the handle's I/O is in ipvs.c), so they are tested without a kernel and fuzzed.

// glibc's socket headers must come before the <linux/...> ones, or their definitions collide.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/ip_vs.h>

#include <netlink/attr.h>
#include <netlink/genl/genl.h>

#include "CNetlink.h"
#include "ipvs_messages.h"
#include "transport.h"

_Static_assert(CNETLINK_SCHEDULER_NAME_SIZE == IP_VS_SCHEDNAME_MAXLEN, "scheduler name size");
_Static_assert(IPVS_CMD_FLUSH == 17, "IPVS command numbering");

// MARK: - Building

static int put_service_key(struct nl_msg *message, const cnetlink_service_key *key) {
    NLA_PUT_U16(message, IPVS_SVC_ATTR_AF, key->family);
    if (key->fwmark != 0) {
        NLA_PUT_U32(message, IPVS_SVC_ATTR_FWMARK, key->fwmark);
    } else {
        NLA_PUT_U16(message, IPVS_SVC_ATTR_PROTOCOL, key->protocol);
        NLA_PUT(message, IPVS_SVC_ATTR_ADDR, sizeof(key->address), key->address);
        // Ports travel in network byte order; nla_put_u16 writes host order.
        NLA_PUT_U16(message, IPVS_SVC_ATTR_PORT, htons(key->port));
    }
    return 0;
nla_put_failure:
    return -EMSGSIZE;
}

int ipvs_put_service(struct nl_msg *message, const cnetlink_service *service, int full) {
    struct nlattr *nest = nla_nest_start(message, IPVS_CMD_ATTR_SERVICE);
    if (nest == NULL) {
        return -EMSGSIZE;
    }
    if (put_service_key(message, &service->key) < 0) {
        return -EMSGSIZE;
    }
    if (full) {
        char scheduler[CNETLINK_SCHEDULER_NAME_SIZE];
        memcpy(scheduler, service->scheduler, sizeof(scheduler));
        scheduler[sizeof(scheduler) - 1] = '\0';
        // HASHED belongs to the kernel; every other bit is set exactly as given.
        struct ip_vs_flags flags = {.flags = service->flags & ~IP_VS_SVC_F_HASHED, .mask = ~0U};
        NLA_PUT_STRING(message, IPVS_SVC_ATTR_SCHED_NAME, scheduler);
        NLA_PUT(message, IPVS_SVC_ATTR_FLAGS, sizeof(flags), &flags);
        NLA_PUT_U32(message, IPVS_SVC_ATTR_TIMEOUT, service->timeout);
        NLA_PUT_U32(message, IPVS_SVC_ATTR_NETMASK, service->netmask);
    }
    nla_nest_end(message, nest);
    return 0;
nla_put_failure:
    return -EMSGSIZE;
}

static int put_destination(struct nl_msg *message, const cnetlink_destination *destination, int full) {
    struct nlattr *nest = nla_nest_start(message, IPVS_CMD_ATTR_DEST);
    if (nest == NULL) {
        return -EMSGSIZE;
    }
    NLA_PUT(message, IPVS_DEST_ATTR_ADDR, sizeof(destination->address), destination->address);
    NLA_PUT_U16(message, IPVS_DEST_ATTR_PORT, htons(destination->port));
    NLA_PUT_U16(message, IPVS_DEST_ATTR_ADDR_FAMILY, destination->family);
    if (full) {
        NLA_PUT_U32(message, IPVS_DEST_ATTR_FWD_METHOD, destination->forwarding_method & IP_VS_CONN_F_FWD_MASK);
        NLA_PUT_U32(message, IPVS_DEST_ATTR_WEIGHT, (uint32_t)destination->weight);
        NLA_PUT_U32(message, IPVS_DEST_ATTR_U_THRESH, destination->upper_threshold);
        NLA_PUT_U32(message, IPVS_DEST_ATTR_L_THRESH, destination->lower_threshold);
    }
    nla_nest_end(message, nest);
    return 0;
nla_put_failure:
    return -EMSGSIZE;
}

int ipvs_begin_message(struct nl_msg *message, uint16_t family_id, uint32_t sequence, int flags, uint8_t command) {
    if (genlmsg_put(message, NL_AUTO_PORT, sequence, family_id, 0, NLM_F_REQUEST | flags, command,
                    IPVS_GENL_VERSION) == NULL) {
        return -EMSGSIZE;
    }
    return 0;
}

int ipvs_build_operation(struct nl_msg *message, const cnetlink_operation *operation, uint16_t family_id,
                         uint32_t sequence, int flags) {
    static const struct {
        uint8_t command;
        uint8_t full_service;
        uint8_t has_destination;
        uint8_t full_destination;
    } layouts[] = {
        [CNETLINK_ADD_SERVICE] = {IPVS_CMD_NEW_SERVICE, 1, 0, 0},
        [CNETLINK_EDIT_SERVICE] = {IPVS_CMD_SET_SERVICE, 1, 0, 0},
        [CNETLINK_DELETE_SERVICE] = {IPVS_CMD_DEL_SERVICE, 0, 0, 0},
        [CNETLINK_ADD_DESTINATION] = {IPVS_CMD_NEW_DEST, 0, 1, 1},
        [CNETLINK_EDIT_DESTINATION] = {IPVS_CMD_SET_DEST, 0, 1, 1},
        [CNETLINK_DELETE_DESTINATION] = {IPVS_CMD_DEL_DEST, 0, 1, 0},
    };
    if (operation->kind < CNETLINK_ADD_SERVICE || operation->kind > CNETLINK_DELETE_DESTINATION) {
        return -EINVAL;
    }
    int result = ipvs_begin_message(message, family_id, sequence, flags, layouts[operation->kind].command);
    if (result == 0) {
        result = ipvs_put_service(message, &operation->service, layouts[operation->kind].full_service);
    }
    if (result == 0 && layouts[operation->kind].has_destination) {
        result = put_destination(message, &operation->destination, layouts[operation->kind].full_destination);
    }
    return result;
}

int cnetlink_ipvs_encode_operation(const cnetlink_operation *operation, uint16_t family_id, uint32_t sequence,
                                   uint16_t extra_flags, void *buffer, size_t capacity) {
    struct nl_msg *message = nlmsg_alloc();
    if (message == NULL) {
        return -ENOMEM;
    }
    int built = ipvs_build_operation(message, operation, family_id, sequence, extra_flags);
    return transport_copy_out(message, built, buffer, capacity);
}

// MARK: - Parsing

static struct nla_policy command_policy[IPVS_CMD_ATTR_MAX + 1] = {
    [IPVS_CMD_ATTR_SERVICE] = {.type = NLA_NESTED},
    [IPVS_CMD_ATTR_DEST] = {.type = NLA_NESTED},
    [IPVS_CMD_ATTR_TIMEOUT_TCP] = {.type = NLA_U32},
    [IPVS_CMD_ATTR_TIMEOUT_TCP_FIN] = {.type = NLA_U32},
    [IPVS_CMD_ATTR_TIMEOUT_UDP] = {.type = NLA_U32},
};

static struct nla_policy service_policy[IPVS_SVC_ATTR_MAX + 1] = {
    [IPVS_SVC_ATTR_AF] = {.type = NLA_U16},
    [IPVS_SVC_ATTR_PROTOCOL] = {.type = NLA_U16},
    [IPVS_SVC_ATTR_ADDR] = {.type = NLA_UNSPEC, .minlen = 4},
    [IPVS_SVC_ATTR_PORT] = {.type = NLA_U16},
    [IPVS_SVC_ATTR_FWMARK] = {.type = NLA_U32},
    [IPVS_SVC_ATTR_SCHED_NAME] = {.type = NLA_STRING},
    [IPVS_SVC_ATTR_FLAGS] = {.type = NLA_UNSPEC, .minlen = sizeof(struct ip_vs_flags)},
    [IPVS_SVC_ATTR_TIMEOUT] = {.type = NLA_U32},
    [IPVS_SVC_ATTR_NETMASK] = {.type = NLA_U32},
    [IPVS_SVC_ATTR_STATS] = {.type = NLA_NESTED},
    [IPVS_SVC_ATTR_PE_NAME] = {.type = NLA_STRING},
    [IPVS_SVC_ATTR_STATS64] = {.type = NLA_NESTED},
};

static struct nla_policy destination_policy[IPVS_DEST_ATTR_MAX + 1] = {
    [IPVS_DEST_ATTR_ADDR] = {.type = NLA_UNSPEC, .minlen = 4},
    [IPVS_DEST_ATTR_PORT] = {.type = NLA_U16},
    [IPVS_DEST_ATTR_FWD_METHOD] = {.type = NLA_U32},
    [IPVS_DEST_ATTR_WEIGHT] = {.type = NLA_U32},
    [IPVS_DEST_ATTR_U_THRESH] = {.type = NLA_U32},
    [IPVS_DEST_ATTR_L_THRESH] = {.type = NLA_U32},
    [IPVS_DEST_ATTR_ACTIVE_CONNS] = {.type = NLA_U32},
    [IPVS_DEST_ATTR_INACT_CONNS] = {.type = NLA_U32},
    [IPVS_DEST_ATTR_PERSIST_CONNS] = {.type = NLA_U32},
    [IPVS_DEST_ATTR_STATS] = {.type = NLA_NESTED},
    [IPVS_DEST_ATTR_ADDR_FAMILY] = {.type = NLA_U16},
    [IPVS_DEST_ATTR_STATS64] = {.type = NLA_NESTED},
};

/// Reads counters from STATS64 when present (kernel 4.1+), else from the 32-bit STATS.
static void parse_stats(struct nlattr *stats64, struct nlattr *stats32, cnetlink_stats *out) {
    memset(out, 0, sizeof(*out));
    struct nlattr *source = stats64 != NULL ? stats64 : stats32;
    if (source == NULL) {
        return;
    }
    struct nlattr *attributes[IPVS_STATS_ATTR_MAX + 1];
    if (nla_parse_nested(attributes, IPVS_STATS_ATTR_MAX, source, NULL) < 0) {
        return;
    }
    uint64_t *fields[] = {
        [IPVS_STATS_ATTR_CONNS] = &out->connections,
        [IPVS_STATS_ATTR_INPKTS] = &out->incoming_packets,
        [IPVS_STATS_ATTR_OUTPKTS] = &out->outgoing_packets,
        [IPVS_STATS_ATTR_INBYTES] = &out->incoming_bytes,
        [IPVS_STATS_ATTR_OUTBYTES] = &out->outgoing_bytes,
        [IPVS_STATS_ATTR_CPS] = &out->connection_rate,
        [IPVS_STATS_ATTR_INPPS] = &out->incoming_packet_rate,
        [IPVS_STATS_ATTR_OUTPPS] = &out->outgoing_packet_rate,
        [IPVS_STATS_ATTR_INBPS] = &out->incoming_byte_rate,
        [IPVS_STATS_ATTR_OUTBPS] = &out->outgoing_byte_rate,
    };
    for (int type = IPVS_STATS_ATTR_CONNS; type <= IPVS_STATS_ATTR_OUTBPS; type++) {
        struct nlattr *attribute = attributes[type];
        if (attribute == NULL) {
            continue;
        }
        // The 32-bit set mixes u32 counters and u64 byte counts; the 64-bit set is u64 throughout. A counter
        // too short for either is malformed and left at 0 rather than read past its end.
        int length = nla_len(attribute);
        if (length >= 8) {
            *fields[type] = nla_get_u64(attribute);
        } else if (length >= 4) {
            *fields[type] = nla_get_u32(attribute);
        }
    }
}

static void copy_address(uint8_t destination[16], struct nlattr *attribute) {
    memset(destination, 0, 16);
    int length = nla_len(attribute);
    memcpy(destination, nla_data(attribute), length > 16 ? 16 : (size_t)length);
}

/// Parses the generic netlink header and top-level attributes of `message`.
static int parse_command(const void *message, size_t length, struct nlattr **attributes) {
    const struct nlmsghdr *header = message;
    if (length < NLMSG_HDRLEN || header->nlmsg_len > length || header->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN) {
        return -CNETLINK_EBADREPLY;
    }
    if (genlmsg_parse((struct nlmsghdr *)header, 0, attributes, IPVS_CMD_ATTR_MAX, command_policy) < 0) {
        return -CNETLINK_EBADREPLY;
    }
    return 0;
}

int cnetlink_ipvs_parse_service(const void *message, size_t length, cnetlink_service_entry *entry) {
    struct nlattr *attributes[IPVS_CMD_ATTR_MAX + 1];
    struct nlattr *service[IPVS_SVC_ATTR_MAX + 1];
    if (parse_command(message, length, attributes) < 0 || attributes[IPVS_CMD_ATTR_SERVICE] == NULL ||
        nla_parse_nested(service, IPVS_SVC_ATTR_MAX, attributes[IPVS_CMD_ATTR_SERVICE], service_policy) < 0) {
        return -CNETLINK_EBADREPLY;
    }
    if (service[IPVS_SVC_ATTR_AF] == NULL || service[IPVS_SVC_ATTR_SCHED_NAME] == NULL ||
        service[IPVS_SVC_ATTR_FLAGS] == NULL || service[IPVS_SVC_ATTR_TIMEOUT] == NULL ||
        service[IPVS_SVC_ATTR_NETMASK] == NULL) {
        return -CNETLINK_EBADREPLY;
    }
    memset(entry, 0, sizeof(*entry));
    cnetlink_service_key *key = &entry->service.key;
    key->family = nla_get_u16(service[IPVS_SVC_ATTR_AF]);
    if (service[IPVS_SVC_ATTR_FWMARK] != NULL) {
        key->fwmark = nla_get_u32(service[IPVS_SVC_ATTR_FWMARK]);
    }
    if (key->fwmark == 0) {
        if (service[IPVS_SVC_ATTR_PROTOCOL] == NULL || service[IPVS_SVC_ATTR_ADDR] == NULL ||
            service[IPVS_SVC_ATTR_PORT] == NULL) {
            return -CNETLINK_EBADREPLY;
        }
        key->protocol = nla_get_u16(service[IPVS_SVC_ATTR_PROTOCOL]);
        copy_address(key->address, service[IPVS_SVC_ATTR_ADDR]);
        key->port = ntohs(nla_get_u16(service[IPVS_SVC_ATTR_PORT]));
    }
    nla_strlcpy(entry->service.scheduler, service[IPVS_SVC_ATTR_SCHED_NAME], sizeof(entry->service.scheduler));
    struct ip_vs_flags flags;
    memcpy(&flags, nla_data(service[IPVS_SVC_ATTR_FLAGS]), sizeof(flags));
    entry->service.flags = flags.flags;
    entry->service.timeout = nla_get_u32(service[IPVS_SVC_ATTR_TIMEOUT]);
    entry->service.netmask = nla_get_u32(service[IPVS_SVC_ATTR_NETMASK]);
    parse_stats(service[IPVS_SVC_ATTR_STATS64], service[IPVS_SVC_ATTR_STATS], &entry->stats);
    return 0;
}

int cnetlink_ipvs_parse_destination(const void *message, size_t length, cnetlink_destination_entry *entry) {
    struct nlattr *attributes[IPVS_CMD_ATTR_MAX + 1];
    struct nlattr *destination[IPVS_DEST_ATTR_MAX + 1];
    if (parse_command(message, length, attributes) < 0 || attributes[IPVS_CMD_ATTR_DEST] == NULL ||
        nla_parse_nested(destination, IPVS_DEST_ATTR_MAX, attributes[IPVS_CMD_ATTR_DEST], destination_policy) < 0) {
        return -CNETLINK_EBADREPLY;
    }
    static const int required[] = {IPVS_DEST_ATTR_ADDR,     IPVS_DEST_ATTR_PORT,     IPVS_DEST_ATTR_FWD_METHOD,
                                   IPVS_DEST_ATTR_WEIGHT,   IPVS_DEST_ATTR_U_THRESH, IPVS_DEST_ATTR_L_THRESH,
                                   IPVS_DEST_ATTR_ACTIVE_CONNS, IPVS_DEST_ATTR_INACT_CONNS};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (destination[required[i]] == NULL) {
            return -CNETLINK_EBADREPLY;
        }
    }
    memset(entry, 0, sizeof(*entry));
    cnetlink_destination *out = &entry->destination;
    copy_address(out->address, destination[IPVS_DEST_ATTR_ADDR]);
    out->port = ntohs(nla_get_u16(destination[IPVS_DEST_ATTR_PORT]));
    // Kernels before 3.18 do not send the family; it is then the service's, which the caller knows.
    out->family = destination[IPVS_DEST_ATTR_ADDR_FAMILY] != NULL ? nla_get_u16(destination[IPVS_DEST_ATTR_ADDR_FAMILY])
                                                                   : 0;
    out->forwarding_method = nla_get_u32(destination[IPVS_DEST_ATTR_FWD_METHOD]) & IP_VS_CONN_F_FWD_MASK;
    out->weight = (int32_t)nla_get_u32(destination[IPVS_DEST_ATTR_WEIGHT]);
    out->upper_threshold = nla_get_u32(destination[IPVS_DEST_ATTR_U_THRESH]);
    out->lower_threshold = nla_get_u32(destination[IPVS_DEST_ATTR_L_THRESH]);
    entry->active_connections = nla_get_u32(destination[IPVS_DEST_ATTR_ACTIVE_CONNS]);
    entry->inactive_connections = nla_get_u32(destination[IPVS_DEST_ATTR_INACT_CONNS]);
    if (destination[IPVS_DEST_ATTR_PERSIST_CONNS] != NULL) {
        entry->persistent_connections = nla_get_u32(destination[IPVS_DEST_ATTR_PERSIST_CONNS]);
    }
    parse_stats(destination[IPVS_DEST_ATTR_STATS64], destination[IPVS_DEST_ATTR_STATS], &entry->stats);
    return 0;
}

int ipvs_parse_info(const struct nlmsghdr *message, uint32_t *version, uint32_t *connection_table_size) {
    struct nlattr *attributes[IPVS_INFO_ATTR_MAX + 1];
    if (genlmsg_parse((struct nlmsghdr *)message, 0, attributes, IPVS_INFO_ATTR_MAX, NULL) < 0 ||
        attributes[IPVS_INFO_ATTR_VERSION] == NULL || attributes[IPVS_INFO_ATTR_CONN_TAB_SIZE] == NULL) {
        return -CNETLINK_EBADREPLY;
    }
    *version = nla_get_u32(attributes[IPVS_INFO_ATTR_VERSION]);
    *connection_table_size = nla_get_u32(attributes[IPVS_INFO_ATTR_CONN_TAB_SIZE]);
    return 0;
}

int ipvs_parse_timeouts(const struct nlmsghdr *message, cnetlink_timeouts *timeouts) {
    struct nlattr *attributes[IPVS_CMD_ATTR_MAX + 1];
    if (parse_command(message, message->nlmsg_len, attributes) < 0) {
        return -CNETLINK_EBADREPLY;
    }
    struct nlattr *tcp = attributes[IPVS_CMD_ATTR_TIMEOUT_TCP];
    struct nlattr *tcp_fin = attributes[IPVS_CMD_ATTR_TIMEOUT_TCP_FIN];
    struct nlattr *udp = attributes[IPVS_CMD_ATTR_TIMEOUT_UDP];
    timeouts->tcp = tcp != NULL ? nla_get_u32(tcp) : 0;
    timeouts->tcp_fin = tcp_fin != NULL ? nla_get_u32(tcp_fin) : 0;
    timeouts->udp = udp != NULL ? nla_get_u32(udp) : 0;
    return 0;
}

int ipvs_put_timeouts(struct nl_msg *message, const cnetlink_timeouts *timeouts) {
    // The kernel leaves a timeout unchanged when its attribute is absent or 0.
    if (timeouts->tcp != 0) {
        NLA_PUT_U32(message, IPVS_CMD_ATTR_TIMEOUT_TCP, timeouts->tcp);
    }
    if (timeouts->tcp_fin != 0) {
        NLA_PUT_U32(message, IPVS_CMD_ATTR_TIMEOUT_TCP_FIN, timeouts->tcp_fin);
    }
    if (timeouts->udp != 0) {
        NLA_PUT_U32(message, IPVS_CMD_ATTR_TIMEOUT_UDP, timeouts->udp);
    }
    return 0;
nla_put_failure:
    return -EMSGSIZE;
}
