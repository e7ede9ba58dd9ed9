// CNetlink: the only code in IPVSProxy that talks netlink.
//
// It speaks the kernel's IPVS generic netlink family (virtual servers, real servers, timeouts), the few rtnetlink
// calls the proxy needs (the node's links and addresses, a dummy link and its addresses, address announcements),
// ctnetlink (conntrack entries) and one nf_tables request (the ruleset's generation id). Everything here takes and
// returns plain C structs; libnl types stay inside the .c files. Every handle is one netlink socket of one network
// namespace (transport.c), opened through CNetNamespace.
//
// Every function that can fail returns 0 (or a count) on success and a negative code on failure:
// - `-errno` for errors that come from the kernel or the C library (EEXIST, ESRCH, ENOENT, ...);
// - `-CNETLINK_ENOIPVS` when the IPVS family is not registered (module `ip_vs` not loaded or built);
// - `-CNETLINK_EBADREPLY` when the kernel's reply does not have the shape the protocol promises;
// - `-CNETLINK_EDUMPINTR` when the kernel marked a dump interrupted (read it again);
// - `-(CNETLINK_LIBNL_BASE + nle)` for libnl's own failures (`NLE_*`), which are not errno values
//   (libnl's `NLE_OBJ_NOTFOUND` is 12, the same number as `ENOMEM`).
// Swift decodes them in one place: KernelShim's `ShimError`.
#ifndef CNETLINK_H
#define CNETLINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Codes above every errno value, for failures that are not the kernel's errno.
enum {
    CNETLINK_ERROR_BASE = 0x10000,
    /// The generic netlink family "IPVS" is not registered.
    CNETLINK_ENOIPVS = CNETLINK_ERROR_BASE + 1,
    /// A reply was truncated or lacked an attribute the protocol requires.
    CNETLINK_EBADREPLY = CNETLINK_ERROR_BASE + 2,
    /// The kernel marked the dump interrupted (NLM_F_DUMP_INTR): its table changed while it was read, and
    /// entries may be missing or repeated; read it again. What the visitor saw of it is not the table.
    CNETLINK_EDUMPINTR = CNETLINK_ERROR_BASE + 4,
    /// libnl's own error codes are reported as `-(CNETLINK_LIBNL_BASE + NLE_x)`.
    CNETLINK_LIBNL_BASE = 0x20000,
};

/// The length of a scheduler name including its terminating NUL (the kernel's IP_VS_SCHEDNAME_MAXLEN).
#define CNETLINK_SCHEDULER_NAME_SIZE 16
/// The length of an interface name including its terminating NUL (the kernel's IFNAMSIZ).
#define CNETLINK_INTERFACE_NAME_SIZE 16

// MARK: - IPVS values

/// Identifies a virtual server: by (family, protocol, address, port), or by (family, fwmark).
typedef struct cnetlink_service_key {
    /// AF_INET or AF_INET6.
    uint16_t family;
    /// IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP; 0 for a firewall-mark service.
    uint16_t protocol;
    /// A nonzero mark makes this a firewall-mark service; protocol, address and port are then unused.
    uint32_t fwmark;
    /// The address in network byte order; IPv4 uses the first 4 bytes, the rest are zero.
    uint8_t address[16];
    /// The port in host byte order.
    uint16_t port;
} cnetlink_service_key;

/// A virtual server and its settings.
typedef struct cnetlink_service {
    cnetlink_service_key key;
    /// The scheduler's name, NUL-terminated.
    char scheduler[CNETLINK_SCHEDULER_NAME_SIZE];
    /// IP_VS_SVC_F_* flags.
    uint32_t flags;
    /// Persistence timeout in seconds.
    uint32_t timeout;
    /// Persistence netmask: an IPv4 mask in network byte order, or an IPv6 prefix length.
    uint32_t netmask;
} cnetlink_service;

/// A real server (the kernel says "destination") of a virtual server.
typedef struct cnetlink_destination {
    /// AF_INET or AF_INET6.
    uint16_t family;
    /// The port in host byte order.
    uint16_t port;
    /// The address in network byte order; IPv4 uses the first 4 bytes.
    uint8_t address[16];
    /// IP_VS_CONN_F_MASQ (0), LOCALNODE (1), TUNNEL (2), DROUTE (3) or BYPASS (4).
    uint32_t forwarding_method;
    int32_t weight;
    uint32_t upper_threshold;
    uint32_t lower_threshold;
} cnetlink_destination;

/// Counters and rates of a virtual or real server.
typedef struct cnetlink_stats {
    uint64_t connections;
    uint64_t incoming_packets;
    uint64_t outgoing_packets;
    uint64_t incoming_bytes;
    uint64_t outgoing_bytes;
    uint64_t connection_rate;
    uint64_t incoming_packet_rate;
    uint64_t outgoing_packet_rate;
    uint64_t incoming_byte_rate;
    uint64_t outgoing_byte_rate;
} cnetlink_stats;

/// A virtual server as the kernel reports it.
typedef struct cnetlink_service_entry {
    cnetlink_service service;
    cnetlink_stats stats;
} cnetlink_service_entry;

/// A real server as the kernel reports it.
typedef struct cnetlink_destination_entry {
    cnetlink_destination destination;
    uint32_t active_connections;
    uint32_t inactive_connections;
    uint32_t persistent_connections;
    cnetlink_stats stats;
} cnetlink_destination_entry;

/// IPVS connection timeouts in seconds; 0 in a request leaves that timeout unchanged.
typedef struct cnetlink_timeouts {
    uint32_t tcp;
    uint32_t tcp_fin;
    uint32_t udp;
} cnetlink_timeouts;

/// What an operation does.
typedef enum cnetlink_operation_kind {
    CNETLINK_ADD_SERVICE = 1,
    CNETLINK_EDIT_SERVICE = 2,
    CNETLINK_DELETE_SERVICE = 3,
    CNETLINK_ADD_DESTINATION = 4,
    CNETLINK_EDIT_DESTINATION = 5,
    CNETLINK_DELETE_DESTINATION = 6,
} cnetlink_operation_kind;

/// One change to the IPVS table. Service operations read `service` (delete reads only its key);
/// destination operations read `service.key` and `destination` (delete reads its address and port).
typedef struct cnetlink_operation {
    uint32_t kind;
    cnetlink_service service;
    cnetlink_destination destination;
} cnetlink_operation;

// MARK: - IPVS handle

/// A netlink socket bound to the IPVS family of one network namespace. Not thread-safe: serialize calls.
typedef struct cnetlink_ipvs cnetlink_ipvs;

/// Called once per dumped entry; return 0 to continue, anything else to stop the dump with that value.
typedef int (*cnetlink_service_visitor)(const cnetlink_service_entry *entry, void *context);
typedef int (*cnetlink_destination_visitor)(const cnetlink_destination_entry *entry, void *context);
/// Called once per failed operation of a batch, with its index in the batch and its `-errno`.
typedef void (*cnetlink_failure_visitor)(size_t index, int error, void *context);

/// Opens a handle. With a non-NULL `netns_path` (e.g. `/var/run/netns/NAME`) the socket is created inside
/// that network namespace on the calling thread, which then returns to its own namespace.
int cnetlink_ipvs_open(const char *netns_path, cnetlink_ipvs **handle);
void cnetlink_ipvs_close(cnetlink_ipvs *handle);
/// Sets the socket's receive buffer (8 MiB by default). The answers to a batch's failed operations queue
/// there until read; a buffer too small for them overflows, and the batch fails with `-ENOBUFS`.
int cnetlink_ipvs_set_receive_buffer(cnetlink_ipvs *handle, int bytes);

/// Reads the IPVS version (e.g. 0x010201 for 1.2.1) and the connection table size.
int cnetlink_ipvs_get_info(cnetlink_ipvs *handle, uint32_t *version, uint32_t *connection_table_size);
int cnetlink_ipvs_get_timeouts(cnetlink_ipvs *handle, cnetlink_timeouts *timeouts);
int cnetlink_ipvs_set_timeouts(cnetlink_ipvs *handle, const cnetlink_timeouts *timeouts);

/// Dumps every virtual server. Returns the number of entries visited, or a negative code.
int cnetlink_ipvs_dump_services(cnetlink_ipvs *handle, cnetlink_service_visitor visitor, void *context);
/// Reads one virtual server; `-ESRCH` when it does not exist.
int cnetlink_ipvs_get_service(cnetlink_ipvs *handle, const cnetlink_service_key *key, cnetlink_service_entry *entry);
/// Dumps the real servers of one virtual server (none when it does not exist). Returns the count.
int cnetlink_ipvs_dump_destinations(cnetlink_ipvs *handle, const cnetlink_service_key *key,
                                    cnetlink_destination_visitor visitor, void *context);

/// Applies one operation and waits for the kernel's acknowledgement.
int cnetlink_ipvs_execute(cnetlink_ipvs *handle, const cnetlink_operation *operation);
/// Deletes every virtual server in the namespace.
int cnetlink_ipvs_flush(cnetlink_ipvs *handle);
/// Zeroes the counters of one virtual server, or of all when `key` is NULL.
int cnetlink_ipvs_zero(cnetlink_ipvs *handle, const cnetlink_service_key *key);

/// Starts a batch: operations are encoded into large buffers and sent many per `send()` with no
/// per-message acknowledgement; the kernel answers only failures.
int cnetlink_ipvs_batch_begin(cnetlink_ipvs *handle);
/// Adds an operation to the batch (sending a full buffer on the way).
int cnetlink_ipvs_batch_append(cnetlink_ipvs *handle, const cnetlink_operation *operation);
/// Sends what is left plus one acknowledged request, waits for it, and reports each failed operation.
/// Returns the number of failed operations, or a negative code when the batch's outcome is unknown.
int cnetlink_ipvs_batch_commit(cnetlink_ipvs *handle, cnetlink_failure_visitor visitor, void *context);

// MARK: - IPVS message building and parsing (pure; no socket needed)

/// Encodes `operation` as one complete netlink message into `buffer`. Returns its length, or a negative code
/// (`-EMSGSIZE` when `capacity` is too small, `-EINVAL` for an unknown kind).
int cnetlink_ipvs_encode_operation(const cnetlink_operation *operation, uint16_t family_id, uint32_t sequence,
                                   uint16_t extra_flags, void *buffer, size_t capacity);
/// Parses one IPVS service message (a GET_SERVICE reply or dump entry).
int cnetlink_ipvs_parse_service(const void *message, size_t length, cnetlink_service_entry *entry);
/// Parses one IPVS destination message (a GET_DEST dump entry).
int cnetlink_ipvs_parse_destination(const void *message, size_t length, cnetlink_destination_entry *entry);

// MARK: - Links and addresses (rtnetlink)

/// A netlink route socket for one network namespace. Not thread-safe: serialize calls.
typedef struct cnetlink_route cnetlink_route;

typedef struct cnetlink_link {
    int32_t index;
    /// IFF_* flags (IFF_LOOPBACK, IFF_UP, ...).
    uint32_t flags;
    char name[CNETLINK_INTERFACE_NAME_SIZE];
    /// The link kind ("dummy", "veth", ...), or empty when the kernel does not say.
    char kind[CNETLINK_INTERFACE_NAME_SIZE];
} cnetlink_link;

typedef struct cnetlink_address {
    int32_t link_index;
    uint16_t family;
    uint8_t prefix_length;
    /// IFA scope (RT_SCOPE_UNIVERSE, RT_SCOPE_HOST, RT_SCOPE_LINK, ...).
    uint8_t scope;
    uint8_t address[16];
} cnetlink_address;

typedef int (*cnetlink_link_visitor)(const cnetlink_link *link, void *context);
typedef int (*cnetlink_address_visitor)(const cnetlink_address *address, void *context);

int cnetlink_route_open(const char *netns_path, cnetlink_route **handle);
/// For tests: a handle that talks over `fd`, a connected datagram socket (one end of
/// `socketpair(AF_UNIX, SOCK_DGRAM)`) whose peer plays the kernel, instead of a netlink socket. The handle
/// owns `fd` from then on (closed by `cnetlink_route_close`, or here on failure).
int cnetlink_route_open_socket(int fd, cnetlink_route **handle);
void cnetlink_route_close(cnetlink_route *handle);

/// Dumps every link. Returns the count, or a negative code: `-CNETLINK_EDUMPINTR` when links changed during
/// the dump (the visitor has seen a list that may miss or repeat links: start again with a fresh one).
int cnetlink_route_dump_links(cnetlink_route *handle, cnetlink_link_visitor visitor, void *context);
/// Dumps every address of every link (both families). Returns the count, or a negative code:
/// `-CNETLINK_EDUMPINTR` when addresses changed during the dump, as for links.
int cnetlink_route_dump_addresses(cnetlink_route *handle, cnetlink_address_visitor visitor, void *context);
/// Creates a dummy link; `-EEXIST` when a link of that name exists. Stores the new link's index.
int cnetlink_route_add_dummy_link(cnetlink_route *handle, const char *name, int32_t *index);
/// Deletes a link by index.
int cnetlink_route_delete_link(cnetlink_route *handle, int32_t index);
/// Sets a link administratively up.
int cnetlink_route_set_link_up(cnetlink_route *handle, int32_t index);

/// Starts a batch of address changes, sent like an IPVS batch (many per `send()`, failures only).
int cnetlink_route_batch_begin(cnetlink_route *handle);
/// Adds (`add` nonzero) or deletes an address on a link.
int cnetlink_route_batch_append_address(cnetlink_route *handle, int add, const cnetlink_address *address);
/// Finishes the batch like `cnetlink_ipvs_batch_commit`.
int cnetlink_route_batch_commit(cnetlink_route *handle, cnetlink_failure_visitor visitor, void *context);

// MARK: - Routes of the local table (rtnetlink)

/// The kernel's `local` routing table (RT_TABLE_LOCAL), where every address it holds local has a route.
#define CNETLINK_LOCAL_TABLE 255
/// A route's type `local` (RTN_LOCAL): every address the route covers is the node's own.
#define CNETLINK_ROUTE_TYPE_LOCAL 2
/// Scope `host` (RT_SCOPE_HOST), which local routes have.
#define CNETLINK_SCOPE_HOST 254

/// A route as the kernel reports it. Adding and deleting read `family`, `destination`, `prefix_length`,
/// `protocol` and `link_index`; the rest is fixed for them (type local, the local table, scope host).
typedef struct cnetlink_route_entry {
    /// AF_INET or AF_INET6.
    uint16_t family;
    /// The destination's prefix length (0...32 or 0...128).
    uint8_t prefix_length;
    /// RTN_* (RTN_UNICAST 1, RTN_LOCAL 2, RTN_BROADCAST 3, ...).
    uint8_t type;
    /// RTPROT_*: who made the route (RTPROT_KERNEL 2 for an address's own route, or a daemon's number).
    uint8_t protocol;
    /// RT_SCOPE_* (RT_SCOPE_HOST 254 for local routes).
    uint8_t scope;
    /// The routing table: RTA_TABLE when the kernel sends it (tables above 255), else the header's.
    uint32_t table;
    /// The output link (RTA_OIF), 0 when the route names none.
    int32_t link_index;
    /// The destination network in network byte order (IPv4 in the first 4 bytes); zeros for a default route.
    uint8_t destination[16];
} cnetlink_route_entry;

typedef int (*cnetlink_route_entry_visitor)(const cnetlink_route_entry *route, void *context);

/// Dumps the routes of the local table, both families (the kernel sends every table's: the others are not
/// visited). Returns the number of route messages the kernel sent, or a negative code: `-CNETLINK_EDUMPINTR` when
/// routes changed during the dump, as for links.
int cnetlink_route_dump_local_table(cnetlink_route *handle, cnetlink_route_entry_visitor visitor, void *context);
/// Adds (`add` nonzero) or deletes a route of type local in the local table, scope host, on the link and with the
/// protocol the entry names. Adding an identical route is `-EEXIST`; one that differs from an existing one only by
/// its protocol (an address's own route, RTPROT_KERNEL) is added beside it. Deleting matches the protocol and the
/// link too: a route someone else made is never deleted (`-ESRCH` when none matches).
int cnetlink_route_batch_append_local_route(cnetlink_route *handle, int add, const cnetlink_route_entry *route);

/// Encodes the request `cnetlink_route_batch_append_local_route` sends as one netlink message (pure). Returns its
/// length, or a negative code (`-EMSGSIZE` when `capacity` is too small, `-EINVAL` for an unknown family or a
/// prefix length too long for it).
int cnetlink_route_encode_local_route(int add, const cnetlink_route_entry *route, uint32_t sequence, void *buffer,
                                      size_t capacity);
/// Parses one RTM_NEWROUTE message (a dump entry; pure). `-CNETLINK_EBADREPLY` when it is truncated, not a route,
/// or of a family other than IPv4 and IPv6.
int cnetlink_route_parse_route(const void *message, size_t length, cnetlink_route_entry *route);

/// A socket that hears the kernel announce address changes (rtnetlink's IPv4 and IPv6 address groups) in one
/// network namespace. Not thread-safe: one thread waits on it.
typedef struct cnetlink_address_monitor cnetlink_address_monitor;

int cnetlink_address_monitor_open(const char *netns_path, cnetlink_address_monitor **handle);
void cnetlink_address_monitor_close(cnetlink_address_monitor *handle);
/// Waits up to `timeout_ms` for announcements and reads what has arrived. Stores the link index of each
/// address added or removed, up to `capacity`, and returns how many there were (0 when none came in time).
/// `-ENOBUFS` means announcements were lost (the socket's buffer overflowed): anything may have changed.
int cnetlink_address_monitor_wait(
    cnetlink_address_monitor *handle, int timeout_ms, int32_t *link_indexes, size_t capacity);

// MARK: - nftables (nf_tables netlink)

/// A netlink socket for nf_tables' own messages in one network namespace, for what libnftables (CNFTables) does
/// not expose. Not thread-safe: serialize calls.
typedef struct cnetlink_nftables cnetlink_nftables;

int cnetlink_nftables_open(const char *netns_path, cnetlink_nftables **handle);
void cnetlink_nftables_close(cnetlink_nftables *handle);
/// Reads the ruleset's generation id, which every committed transaction (anyone's) moves.
int cnetlink_nftables_generation(cnetlink_nftables *handle, uint32_t *generation);

// MARK: - conntrack (ctnetlink, libnl-nf)

/// A netlink socket for the connection tracking table of one network namespace. Not thread-safe.
typedef struct cnetlink_conntrack cnetlink_conntrack;

/// One direction of a tracked connection. Addresses in network byte order (IPv4 in the first 4 bytes),
/// ports in host byte order.
typedef struct cnetlink_conntrack_tuple {
    uint8_t source[16];
    uint8_t destination[16];
    uint16_t source_port;
    uint16_t destination_port;
} cnetlink_conntrack_tuple;

/// A tracked connection: what the client sent (original) and what the answer looks like (reply), which
/// tells where DNAT (IPVS) or SNAT (masquerade) took it.
typedef struct cnetlink_conntrack_entry {
    /// AF_INET or AF_INET6.
    uint8_t family;
    /// IPPROTO_UDP, IPPROTO_SCTP, ...
    uint8_t protocol;
    cnetlink_conntrack_tuple original;
    cnetlink_conntrack_tuple reply;
} cnetlink_conntrack_entry;

typedef int (*cnetlink_conntrack_visitor)(const cnetlink_conntrack_entry *entry, void *context);

int cnetlink_conntrack_open(const char *netns_path, cnetlink_conntrack **handle);
void cnetlink_conntrack_close(cnetlink_conntrack *handle);
/// Dumps every entry of one family. Returns the number of entry messages, or a negative code
/// (`-CNETLINK_EDUMPINTR` when the kernel marked the dump interrupted). An entry `cnetlink_conntrack_parse`
/// cannot read is not visited: the proxy deletes only entries it has read whole.
int cnetlink_conntrack_dump(cnetlink_conntrack *handle, uint8_t family, cnetlink_conntrack_visitor visitor,
                            void *context);
/// Starts a batch of deletions, sent like an IPVS batch (many per `send()`, failures only).
int cnetlink_conntrack_batch_begin(cnetlink_conntrack *handle);
/// Adds the deletion of the entry with this original tuple.
int cnetlink_conntrack_batch_append_delete(cnetlink_conntrack *handle, const cnetlink_conntrack_entry *entry);
/// Finishes the batch like `cnetlink_ipvs_batch_commit` (an entry already gone fails with `-ENOENT`).
int cnetlink_conntrack_batch_commit(cnetlink_conntrack *handle, cnetlink_failure_visitor visitor, void *context);

/// Parses one ctnetlink entry message (pure; no socket needed). `-CNETLINK_EBADREPLY` when either direction
/// lacks its source or destination address: such an entry is never reported with zeros in their place.
int cnetlink_conntrack_parse(const void *message, size_t length, cnetlink_conntrack_entry *entry);
/// Encodes the deletion of an entry as one netlink message. Returns its length, or a negative code.
int cnetlink_conntrack_encode_delete(const cnetlink_conntrack_entry *entry, uint32_t sequence, void *buffer,
                                     size_t capacity);

#ifdef __cplusplus
}
#endif

#endif
