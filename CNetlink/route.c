// rtnetlink: the dummy link that holds service addresses, the node's links and addresses, the local routes that
// make service addresses local, and the kernel's announcements of address changes.

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <netlink/attr.h>
#include <netlink/msg.h>

#include "CNetlink.h"
#include "transport.h"

_Static_assert(CNETLINK_INTERFACE_NAME_SIZE == IFNAMSIZ, "interface name size");

struct cnetlink_route {
    struct cnetlink_transport transport;
};
_Static_assert(offsetof(struct cnetlink_route, transport) == 0, "a handle starts with its transport");

int cnetlink_route_open(const char *netns_path, cnetlink_route **handle) {
    int result;
    *handle = transport_handle_new(sizeof(**handle), NETLINK_ROUTE, netns_path, &result);
    return result;
}

int cnetlink_route_open_socket(int fd, cnetlink_route **handle) {
    int result;
    *handle = transport_handle_new_socket(sizeof(**handle), fd, &result);
    return result;
}

void cnetlink_route_close(cnetlink_route *handle) { transport_handle_free(handle); }

/// Starts a request in the scratch message: a netlink header plus a zeroed family header of `size` bytes.
static struct nl_msg *begin_request(cnetlink_route *handle, int type, int flags, size_t size, void **header) {
    struct nl_msg *message = transport_reset_message(&handle->transport);
    uint32_t sequence = transport_take_sequence(&handle->transport);
    if (nlmsg_put(message, NL_AUTO_PORT, sequence, type, (int)size, NLM_F_REQUEST | flags) == NULL) {
        return NULL;
    }
    *header = nlmsg_data(nlmsg_hdr(message));
    memset(*header, 0, size);
    return message;
}

struct link_dump {
    cnetlink_link_visitor visitor;
    void *context;
};

static int handle_link(const struct nlmsghdr *message, void *context) {
    struct link_dump *dump = context;
    struct nlattr *attributes[IFLA_MAX + 1];
    if (message->nlmsg_type != RTM_NEWLINK ||
        nlmsg_parse((struct nlmsghdr *)message, sizeof(struct ifinfomsg), attributes, IFLA_MAX, NULL) < 0) {
        return 0;
    }
    const struct ifinfomsg *info = nlmsg_data(message);
    cnetlink_link link = {.index = info->ifi_index, .flags = info->ifi_flags};
    if (attributes[IFLA_IFNAME] != NULL) {
        nla_strlcpy(link.name, attributes[IFLA_IFNAME], sizeof(link.name));
    }
    if (attributes[IFLA_LINKINFO] != NULL) {
        struct nlattr *info_attributes[IFLA_INFO_MAX + 1];
        if (nla_parse_nested(info_attributes, IFLA_INFO_MAX, attributes[IFLA_LINKINFO], NULL) == 0 &&
            info_attributes[IFLA_INFO_KIND] != NULL) {
            nla_strlcpy(link.kind, info_attributes[IFLA_INFO_KIND], sizeof(link.kind));
        }
    }
    return dump->visitor(&link, dump->context);
}

int cnetlink_route_dump_links(cnetlink_route *handle, cnetlink_link_visitor visitor, void *context) {
    void *header;
    if (begin_request(handle, RTM_GETLINK, NLM_F_DUMP, sizeof(struct ifinfomsg), &header) == NULL) {
        return -EMSGSIZE;
    }
    ((struct ifinfomsg *)header)->ifi_family = AF_UNSPEC;
    struct link_dump dump = {visitor, context};
    return transport_exchange(&handle->transport, handle_link, &dump);
}

struct address_dump {
    cnetlink_address_visitor visitor;
    void *context;
};

static int handle_address(const struct nlmsghdr *message, void *context) {
    struct address_dump *dump = context;
    struct nlattr *attributes[IFA_MAX + 1];
    if (message->nlmsg_type != RTM_NEWADDR ||
        nlmsg_parse((struct nlmsghdr *)message, sizeof(struct ifaddrmsg), attributes, IFA_MAX, NULL) < 0) {
        return 0;
    }
    const struct ifaddrmsg *info = nlmsg_data(message);
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on point-to-point links.
    struct nlattr *address = attributes[IFA_LOCAL] != NULL ? attributes[IFA_LOCAL] : attributes[IFA_ADDRESS];
    if (address == NULL || (info->ifa_family != AF_INET && info->ifa_family != AF_INET6)) {
        return 0;
    }
    cnetlink_address entry = {
        .link_index = (int32_t)info->ifa_index,
        .family = info->ifa_family,
        .prefix_length = info->ifa_prefixlen,
        .scope = info->ifa_scope,
    };
    int length = nla_len(address);
    memcpy(entry.address, nla_data(address), length > 16 ? 16 : (size_t)length);
    return dump->visitor(&entry, dump->context);
}

int cnetlink_route_dump_addresses(cnetlink_route *handle, cnetlink_address_visitor visitor, void *context) {
    void *header;
    if (begin_request(handle, RTM_GETADDR, NLM_F_DUMP, sizeof(struct ifaddrmsg), &header) == NULL) {
        return -EMSGSIZE;
    }
    ((struct ifaddrmsg *)header)->ifa_family = AF_UNSPEC;
    struct address_dump dump = {visitor, context};
    return transport_exchange(&handle->transport, handle_address, &dump);
}

struct link_index {
    const char *name;
    int32_t index;
};

static int find_link(const cnetlink_link *link, void *context) {
    struct link_index *wanted = context;
    if (strncmp(link->name, wanted->name, sizeof(link->name)) == 0) {
        wanted->index = link->index;
    }
    return 0;
}

int cnetlink_route_add_dummy_link(cnetlink_route *handle, const char *name, int32_t *index) {
    if (strlen(name) >= IFNAMSIZ) {
        return -ENAMETOOLONG;
    }
    void *header;
    struct nl_msg *message =
        begin_request(handle, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, sizeof(struct ifinfomsg), &header);
    if (message == NULL) {
        return -EMSGSIZE;
    }
    NLA_PUT_STRING(message, IFLA_IFNAME, name);
    struct nlattr *link_info = nla_nest_start(message, IFLA_LINKINFO);
    if (link_info == NULL) {
        return -EMSGSIZE;
    }
    NLA_PUT_STRING(message, IFLA_INFO_KIND, "dummy");
    nla_nest_end(message, link_info);
    int result = transport_exchange(&handle->transport, NULL, NULL);
    if (result < 0) {
        return result;
    }
    // The new link's index, asked for by name: one answer (ended by the acknowledgement), where a dump of
    // every link could come back interrupted by others' links changing meanwhile.
    message = begin_request(handle, RTM_GETLINK, NLM_F_ACK, sizeof(struct ifinfomsg), &header);
    if (message == NULL) {
        return -EMSGSIZE;
    }
    NLA_PUT_STRING(message, IFLA_IFNAME, name);
    struct link_index wanted = {name, 0};
    struct link_dump lookup = {find_link, &wanted};
    result = transport_exchange(&handle->transport, handle_link, &lookup);
    if (result < 0) {
        return result;
    }
    if (wanted.index == 0) {
        return -ENODEV;
    }
    *index = wanted.index;
    return 0;
nla_put_failure:
    return -EMSGSIZE;
}

int cnetlink_route_delete_link(cnetlink_route *handle, int32_t index) {
    void *header;
    if (begin_request(handle, RTM_DELLINK, NLM_F_ACK, sizeof(struct ifinfomsg), &header) == NULL) {
        return -EMSGSIZE;
    }
    ((struct ifinfomsg *)header)->ifi_index = index;
    return transport_exchange(&handle->transport, NULL, NULL);
}

int cnetlink_route_set_link_up(cnetlink_route *handle, int32_t index) {
    void *header;
    if (begin_request(handle, RTM_NEWLINK, NLM_F_ACK, sizeof(struct ifinfomsg), &header) == NULL) {
        return -EMSGSIZE;
    }
    struct ifinfomsg *info = header;
    info->ifi_index = index;
    info->ifi_flags = IFF_UP;
    info->ifi_change = IFF_UP;
    return transport_exchange(&handle->transport, NULL, NULL);
}

int cnetlink_route_batch_begin(cnetlink_route *handle) { return transport_batch_begin(&handle->transport); }

int cnetlink_route_batch_append_address(cnetlink_route *handle, int add, const cnetlink_address *address) {
    void *header;
    struct nl_msg *message = begin_request(handle, add ? RTM_NEWADDR : RTM_DELADDR,
                                           add ? NLM_F_CREATE | NLM_F_EXCL : 0, sizeof(struct ifaddrmsg), &header);
    if (message == NULL) {
        return -EMSGSIZE;
    }
    struct ifaddrmsg *info = header;
    info->ifa_family = (uint8_t)address->family;
    info->ifa_prefixlen = address->prefix_length;
    info->ifa_scope = address->scope;
    info->ifa_index = (uint32_t)address->link_index;
    // Service addresses are never used to probe for duplicates: skip IPv6 duplicate address detection.
    info->ifa_flags = address->family == AF_INET6 ? IFA_F_NODAD : 0;
    size_t length = address->family == AF_INET6 ? 16 : 4;
    NLA_PUT(message, IFA_LOCAL, length, address->address);
    NLA_PUT(message, IFA_ADDRESS, length, address->address);
    return transport_batch_append_scratch(&handle->transport);
nla_put_failure:
    return -EMSGSIZE;
}

int cnetlink_route_batch_commit(cnetlink_route *handle, cnetlink_failure_visitor visitor, void *context) {
    return transport_batch_commit(&handle->transport, visitor, context);
}

// MARK: - Routes of the local table

_Static_assert(CNETLINK_LOCAL_TABLE == RT_TABLE_LOCAL, "the local table");
_Static_assert(CNETLINK_ROUTE_TYPE_LOCAL == RTN_LOCAL, "route type local");
_Static_assert(CNETLINK_SCOPE_HOST == RT_SCOPE_HOST, "scope host");

static size_t address_length(uint16_t family) {
    return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

int cnetlink_route_parse_route(const void *message, size_t length, cnetlink_route_entry *route) {
    const struct nlmsghdr *header = message;
    if (length < NLMSG_HDRLEN || header->nlmsg_len > length ||
        header->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)) || header->nlmsg_type != RTM_NEWROUTE) {
        return -CNETLINK_EBADREPLY;
    }
    struct nlattr *attributes[RTA_MAX + 1];
    if (nlmsg_parse((struct nlmsghdr *)header, sizeof(struct rtmsg), attributes, RTA_MAX, NULL) < 0) {
        return -CNETLINK_EBADREPLY;
    }
    const struct rtmsg *info = nlmsg_data(header);
    size_t expected = address_length(info->rtm_family);
    if (expected == 0 || info->rtm_dst_len > expected * 8) {
        return -CNETLINK_EBADREPLY;
    }
    memset(route, 0, sizeof(*route));
    route->family = info->rtm_family;
    route->prefix_length = info->rtm_dst_len;
    route->type = info->rtm_type;
    route->protocol = info->rtm_protocol;
    route->scope = info->rtm_scope;
    route->table = info->rtm_table;
    // Tables above 255 are in RTA_TABLE only (the header then says RT_TABLE_COMPAT); the kernel sends it for all.
    if (attributes[RTA_TABLE] != NULL) {
        if (nla_len(attributes[RTA_TABLE]) < (int)sizeof(uint32_t)) {
            return -CNETLINK_EBADREPLY;
        }
        route->table = nla_get_u32(attributes[RTA_TABLE]);
    }
    if (attributes[RTA_OIF] != NULL) {
        if (nla_len(attributes[RTA_OIF]) < (int)sizeof(uint32_t)) {
            return -CNETLINK_EBADREPLY;
        }
        route->link_index = (int32_t)nla_get_u32(attributes[RTA_OIF]);
    }
    // A default route (prefix length 0) has no RTA_DST; any other has one of its family's length.
    if (attributes[RTA_DST] != NULL) {
        if ((size_t)nla_len(attributes[RTA_DST]) != expected) {
            return -CNETLINK_EBADREPLY;
        }
        memcpy(route->destination, nla_data(attributes[RTA_DST]), expected);
    } else if (route->prefix_length != 0) {
        return -CNETLINK_EBADREPLY;
    }
    return 0;
}

struct route_dump {
    cnetlink_route_entry_visitor visitor;
    void *context;
};

static int handle_route(const struct nlmsghdr *message, void *context) {
    struct route_dump *dump = context;
    if (message->nlmsg_type != RTM_NEWROUTE || message->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg))) {
        return 0;
    }
    // An AF_UNSPEC dump brings every family's routes: multicast routing's (RTNL_FAMILY_IPMR, ...) are not ours.
    const struct rtmsg *info = nlmsg_data(message);
    if (info->rtm_family != AF_INET && info->rtm_family != AF_INET6) {
        return 0;
    }
    cnetlink_route_entry route;
    // A route that cannot be read stops the dump: it may be of the local table, and what was visited is not it.
    int result = cnetlink_route_parse_route(message, message->nlmsg_len, &route);
    if (result < 0) {
        return result;
    }
    if (route.table != RT_TABLE_LOCAL) {
        return 0;
    }
    return dump->visitor(&route, dump->context);
}

int cnetlink_route_dump_local_table(cnetlink_route *handle, cnetlink_route_entry_visitor visitor, void *context) {
    void *header;
    if (begin_request(handle, RTM_GETROUTE, NLM_F_DUMP, sizeof(struct rtmsg), &header) == NULL) {
        return -EMSGSIZE;
    }
    // Without NETLINK_GET_STRICT_CHK the kernel ignores the table asked for and sends every table: the handler
    // keeps the local one. (Strict checking would change how every other request of this socket is read.)
    struct rtmsg *info = header;
    info->rtm_family = AF_UNSPEC;
    info->rtm_table = RT_TABLE_LOCAL;
    struct route_dump dump = {visitor, context};
    return transport_exchange(&handle->transport, handle_route, &dump);
}

/// Builds the request for a local route into `message` (empty). No NLM_F_EXCL: IPv4 would then refuse a /32 beside
/// the route of an address bound to the same link (the same key, another protocol), which the move from bound
/// addresses needs; without it the kernel still refuses an identical route with EEXIST.
static int build_local_route(struct nl_msg *message, int add, const cnetlink_route_entry *route, uint32_t sequence) {
    size_t length = address_length(route->family);
    if (length == 0 || route->prefix_length > length * 8) {
        return -EINVAL;
    }
    struct nlmsghdr *header = nlmsg_put(message, NL_AUTO_PORT, sequence, add ? RTM_NEWROUTE : RTM_DELROUTE,
                                        sizeof(struct rtmsg), NLM_F_REQUEST | (add ? NLM_F_CREATE : 0));
    if (header == NULL) {
        return -EMSGSIZE;
    }
    struct rtmsg *info = nlmsg_data(header);
    memset(info, 0, sizeof(*info));
    info->rtm_family = (uint8_t)route->family;
    info->rtm_dst_len = route->prefix_length;
    info->rtm_table = RT_TABLE_LOCAL;
    // A deletion matches on these too: the kernel deletes only a local route of this protocol on this link.
    info->rtm_protocol = route->protocol;
    info->rtm_scope = RT_SCOPE_HOST;
    info->rtm_type = RTN_LOCAL;
    NLA_PUT(message, RTA_DST, length, route->destination);
    NLA_PUT_U32(message, RTA_TABLE, RT_TABLE_LOCAL);
    NLA_PUT_U32(message, RTA_OIF, (uint32_t)route->link_index);
    return 0;
nla_put_failure:
    return -EMSGSIZE;
}

int cnetlink_route_encode_local_route(int add, const cnetlink_route_entry *route, uint32_t sequence, void *buffer,
                                      size_t capacity) {
    struct nl_msg *message = nlmsg_alloc();
    if (message == NULL) {
        return -ENOMEM;
    }
    int built = build_local_route(message, add, route, sequence);
    return transport_copy_out(message, built, buffer, capacity);
}

int cnetlink_route_batch_append_local_route(cnetlink_route *handle, int add, const cnetlink_route_entry *route) {
    // The batch assigns the sequence number, which is how a failure finds its route.
    int result = build_local_route(transport_reset_message(&handle->transport), add, route, 0);
    if (result < 0) {
        return result;
    }
    return transport_batch_append_scratch(&handle->transport);
}

// MARK: - Address announcements

struct cnetlink_address_monitor {
    struct cnetlink_transport transport;
};
_Static_assert(offsetof(struct cnetlink_address_monitor, transport) == 0, "a handle starts with its transport");

int cnetlink_address_monitor_open(const char *netns_path, cnetlink_address_monitor **handle) {
    int result;
    cnetlink_address_monitor *monitor = transport_handle_new(sizeof(*monitor), NETLINK_ROUTE, netns_path, &result);
    if (monitor != NULL) {
        // Joining a group needs no namespace switch: the socket already belongs to the namespace it was made in.
        result = transport_translate_libnl(
            nl_socket_add_memberships(monitor->transport.socket, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, 0));
        if (result < 0) {
            transport_handle_free(monitor);
            monitor = NULL;
        }
    }
    *handle = monitor;
    return result;
}

void cnetlink_address_monitor_close(cnetlink_address_monitor *handle) { transport_handle_free(handle); }

int cnetlink_address_monitor_wait(
    cnetlink_address_monitor *handle, int timeout_ms, int32_t *link_indexes, size_t capacity) {
    struct cnetlink_transport *transport = &handle->transport;
    struct pollfd waiting = {.fd = transport->fd, .events = POLLIN};
    int ready = poll(&waiting, 1, timeout_ms);
    if (ready < 0) {
        return errno == EINTR ? 0 : -errno;
    }
    size_t count = 0;
    // Read everything that has arrived: a burst of binds announces thousands of addresses.
    for (int flags = 0; ready > 0; flags = MSG_DONTWAIT) {
        ssize_t length = recv(transport->fd, transport->receive_buffer, transport->receive_capacity, flags);
        if (length < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        int remaining = (int)length;
        for (const struct nlmsghdr *message = (const struct nlmsghdr *)transport->receive_buffer;
             NLMSG_OK(message, remaining); message = NLMSG_NEXT(message, remaining)) {
            if ((message->nlmsg_type != RTM_NEWADDR && message->nlmsg_type != RTM_DELADDR) ||
                message->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifaddrmsg))) {
                continue;
            }
            const struct ifaddrmsg *address = NLMSG_DATA(message);
            if (count < capacity) {
                link_indexes[count] = (int32_t)address->ifa_index;
            }
            count++;
        }
    }
    return count > (size_t)INT32_MAX ? INT32_MAX : (int)count;
}
