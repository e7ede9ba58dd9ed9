// The socket layer every handle of this shim is made of (IPVS, route, address monitor, conntrack, nftables): a
// netlink socket opened inside a network namespace, one constructor for a handle that starts with it,
// request/reply exchanges that keep the kernel's errno, and batches sent many messages per `send()` with only
// failures answered.
#ifndef CNETLINK_TRANSPORT_H
#define CNETLINK_TRANSPORT_H

#include <linux/netlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <stddef.h>
#include <stdint.h>

#include "CNetlink.h"

struct cnetlink_failure {
    size_t index;
    int error;
};

struct cnetlink_transport {
    struct nl_sock *socket;
    int fd;
    /// A datagram socket handed in by a test (`transport_open_socket`) rather than a netlink socket: sent to
    /// with `send()` (it refuses a netlink address), and closed by `transport_close`.
    int is_test_socket;
    uint32_t next_sequence;

    uint8_t *receive_buffer;
    size_t receive_capacity;

    /// A reusable message for building requests: libnl has no reset, and the header's length is its fill
    /// mark, so `transport_reset_message` rewinds it instead of allocating per message.
    struct nl_msg *scratch;

    uint8_t *batch_buffer;
    size_t batch_length;
    size_t batch_capacity;
    uint32_t batch_first_sequence;
    size_t batch_count;
    int batch_error;
    struct cnetlink_failure *failures;
    size_t failure_count;
    size_t failure_capacity;
};

/// Called for each data message that answers a request; a nonzero result stops delivery (the
/// exchange is still read to its end so the socket stays in step) and becomes the exchange's result.
typedef int (*transport_message_handler)(const struct nlmsghdr *message, void *context);

/// Maps a libnl return code to this shim's codes (see CNetlink.h).
int transport_translate_libnl(int libnl_code);

/// Opens a netlink socket of `protocol` (NETLINK_GENERIC, NETLINK_ROUTE, ...) inside the network namespace at
/// `netns_path` (or the caller's, when NULL), with roomy buffers; the transport is then ready for requests.
int transport_open(struct cnetlink_transport *transport, int protocol, const char *netns_path);
/// Takes a connected datagram socket that plays the kernel (for tests); `transport_close` closes it.
int transport_open_socket(struct cnetlink_transport *transport, int fd);
void transport_close(struct cnetlink_transport *transport);
/// Makes a handle: `size` zeroed bytes whose first member is a `struct cnetlink_transport` (every handle of this
/// shim starts so, and says so with a `_Static_assert`), with that transport opened by `transport_open`. Returns
/// the handle, or NULL with the code in `*result`.
void *transport_handle_new(size_t size, int protocol, const char *netns_path, int *result);
/// The same over a test's datagram socket (`transport_open_socket`); `fd` is closed on failure.
void *transport_handle_new_socket(size_t size, int fd, int *result);
/// Closes the transport of a handle made by `transport_handle_new` and frees the handle; NULL is ignored.
void transport_handle_free(void *handle);

/// Sets the socket's receive buffer (the kernel doubles it for its bookkeeping, and has a minimum).
int transport_set_receive_buffer(struct cnetlink_transport *transport, int bytes);

/// Rewinds the scratch message so a new request can be built in it.
struct nl_msg *transport_reset_message(struct cnetlink_transport *transport);

uint32_t transport_take_sequence(struct cnetlink_transport *transport);

/// How many bytes a request built directly into the scratch message may take.
size_t transport_scratch_capacity(struct cnetlink_transport *transport);

/// Sends the message in the scratch buffer (its sequence number must already be set) and reads replies
/// until that sequence is answered by an acknowledgement, an error, or the end of a dump.
///
/// Returns the number of data messages, the handler's nonzero result, or a negative code: the kernel's
/// error (an error message, or the error a dump's NLMSG_DONE carries), or `-CNETLINK_EDUMPINTR` when the
/// kernel flagged any message of a dump NLM_F_DUMP_INTR (the handler has then seen an inconsistent dump).
int transport_exchange(struct cnetlink_transport *transport, transport_message_handler handler, void *context);

/// Copies a message built by a pure builder (its result `built`: 0 or a negative code) into `buffer`, then frees
/// it. Returns the message's length, `-EMSGSIZE` when it does not fit, or `built` when that failed. For the
/// builders' tests and fuzzing: they see exactly the bytes a handle would send.
int transport_copy_out(struct nl_msg *message, int built, void *buffer, size_t capacity);

int transport_batch_begin(struct cnetlink_transport *transport);
/// Copies the scratch message into the batch, sending the batch buffer first when it is full.
int transport_batch_append_scratch(struct cnetlink_transport *transport);
int transport_batch_commit(struct cnetlink_transport *transport, cnetlink_failure_visitor visitor, void *context);

#endif
