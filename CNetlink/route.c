// rtnetlink: the dummy link that holds service addresses, the node's links and addresses, and the kernel's
// announcements of address changes.

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
