#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <netlink/errno.h>

#include "transport.h"

#include "CNetNamespace.h"

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

enum {
    // The kernel sends dump datagrams of at most 32 KiB; twice that leaves room for anything else.
    RECEIVE_CAPACITY = 64 * 1024,
    // Chunks of 32-256 KiB per send() were measured to work; the send buffer must exceed the chunk.
    BATCH_CHUNK = 256 * 1024,
    SEND_BUFFER = 1024 * 1024,
    // Failed operations are answered with one small error message each; a roomy receive buffer keeps a
    // chunk full of failures from overflowing it (ENOBUFS) before it is drained.
    RECEIVE_BUFFER = 8 * 1024 * 1024,
    SCRATCH_SIZE = 4096,
};

int transport_translate_libnl(int code) {
    if (code >= 0) {
        return code;
    }
    switch (-code) {
    case NLE_NOMEM:
        return -ENOMEM;
    case NLE_EXIST:
        return -EEXIST;
    case NLE_INVAL:
        return -EINVAL;
    case NLE_PERM:
        return -EPERM;
    case NLE_NOACCESS:
        return -EACCES;
    case NLE_NODEV:
        return -ENODEV;
    case NLE_BUSY:
        return -EBUSY;
    case NLE_AGAIN:
        return -EAGAIN;
    case NLE_RANGE:
        return -ERANGE;
    case NLE_OPNOTSUPP:
        return -EOPNOTSUPP;
    case NLE_MSGSIZE:
        return -EMSGSIZE;
    case NLE_PROTO_MISMATCH:
        return -EPROTONOSUPPORT;
    default:
        // Ambiguous codes (NLE_OBJ_NOTFOUND stands for both ESRCH and ENOENT) stay libnl's own.
        return -(CNETLINK_LIBNL_BASE + -code);
    }
}

static void set_buffer(int fd, int force_option, int option, int size) {
    // The *FORCE options ignore the system-wide maximum (they need CAP_NET_ADMIN, which every IPVS call
    // needs anyway); fall back to the capped option otherwise.
    if (setsockopt(fd, SOL_SOCKET, force_option, &size, sizeof(size)) != 0) {
        (void)setsockopt(fd, SOL_SOCKET, option, &size, sizeof(size));
    }
}

static int connect_socket(struct cnetlink_transport *transport, int protocol) {
    transport->socket = nl_socket_alloc();
    if (transport->socket == NULL) {
        return -ENOMEM;
    }
    int result = nl_connect(transport->socket, protocol);
    if (result < 0) {
        nl_socket_free(transport->socket);
        transport->socket = NULL;
        return transport_translate_libnl(result);
    }
    return 0;
}

struct connect_request {
    struct cnetlink_transport *transport;
    int protocol;
};

static int connect_body(void *context) {
    struct connect_request *request = context;
    return connect_socket(request->transport, request->protocol);
}

/// The receive buffer and the scratch message; on failure the transport is closed.
static int allocate_buffers(struct cnetlink_transport *transport) {
    transport->next_sequence = (uint32_t)time(NULL);
    transport->receive_capacity = RECEIVE_CAPACITY;
    transport->receive_buffer = malloc(RECEIVE_CAPACITY);
    transport->scratch = nlmsg_alloc_size(SCRATCH_SIZE);
    if (transport->receive_buffer == NULL || transport->scratch == NULL) {
        transport_close(transport);
        return -ENOMEM;
    }
    return 0;
}

int transport_open(struct cnetlink_transport *transport, int protocol, const char *netns_path) {
    memset(transport, 0, sizeof(*transport));
    struct connect_request request = {transport, protocol};
    int result = cnetns_run(netns_path, connect_body, &request);
    if (result < 0) {
        return result;
    }
    transport->fd = nl_socket_get_fd(transport->socket);
    set_buffer(transport->fd, SO_SNDBUFFORCE, SO_SNDBUF, SEND_BUFFER);
    set_buffer(transport->fd, SO_RCVBUFFORCE, SO_RCVBUF, RECEIVE_BUFFER);
    int one = 1;
    // Error replies then carry only the failed message's header, not its whole payload.
    (void)setsockopt(transport->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    return allocate_buffers(transport);
}

int transport_open_socket(struct cnetlink_transport *transport, int fd) {
    memset(transport, 0, sizeof(*transport));
    if (fd < 0) {
        return -EBADF;
    }
    transport->fd = fd;
    transport->is_test_socket = 1;
    return allocate_buffers(transport);
}

int transport_set_receive_buffer(struct cnetlink_transport *transport, int bytes) {
    if (bytes <= 0) {
        return -EINVAL;
    }
    if (setsockopt(transport->fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0 &&
        setsockopt(transport->fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)) != 0) {
        return -errno;
    }
    return 0;
}

void transport_close(struct cnetlink_transport *transport) {
    if (transport->socket != NULL) {
        nl_socket_free(transport->socket);
    }
    if (transport->is_test_socket) {
        close(transport->fd);
    }
    if (transport->scratch != NULL) {
        nlmsg_free(transport->scratch);
    }
    free(transport->receive_buffer);
    free(transport->batch_buffer);
    free(transport->failures);
    memset(transport, 0, sizeof(*transport));
}

void *transport_handle_new(size_t size, int protocol, const char *netns_path, int *result) {
    struct cnetlink_transport *handle = calloc(1, size);
    if (handle == NULL) {
        *result = -ENOMEM;
        return NULL;
    }
    *result = transport_open(handle, protocol, netns_path);
    if (*result < 0) {
        free(handle);
        return NULL;
    }
    return handle;
}

void *transport_handle_new_socket(size_t size, int fd, int *result) {
    struct cnetlink_transport *handle = calloc(1, size);
    if (handle == NULL) {
        close(fd);
        *result = -ENOMEM;
        return NULL;
    }
    *result = transport_open_socket(handle, fd);
    if (*result < 0) {
        free(handle);
        return NULL;
    }
    return handle;
}

void transport_handle_free(void *handle) {
    if (handle == NULL) {
        return;
    }
    transport_close(handle);
    free(handle);
}

struct nl_msg *transport_reset_message(struct cnetlink_transport *transport) {
    nlmsg_hdr(transport->scratch)->nlmsg_len = NLMSG_HDRLEN;
    return transport->scratch;
}

uint32_t transport_take_sequence(struct cnetlink_transport *transport) { return transport->next_sequence++; }

size_t transport_scratch_capacity(struct cnetlink_transport *transport) {
    return (size_t)nlmsg_get_max_size(transport->scratch);
}

static int send_all(struct cnetlink_transport *transport, const void *data, size_t length) {
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    for (;;) {
        // A test's socket is connected to its peer and refuses a netlink address.
        ssize_t sent = transport->is_test_socket
                           ? send(transport->fd, data, length, 0)
                           : sendto(transport->fd, data, length, 0, (struct sockaddr *)&kernel, sizeof(kernel));
        if (sent >= 0) {
            // A netlink datagram is sent whole or not at all.
            return 0;
        }
        if (errno != EINTR) {
            return -errno;
        }
    }
}

/// Reads one datagram. Returns its length, 0 when `nonblocking` and nothing is waiting, or -errno.
static ssize_t receive_datagram(struct cnetlink_transport *transport, int nonblocking) {
    for (;;) {
        ssize_t received = recv(transport->fd, transport->receive_buffer, transport->receive_capacity,
                                MSG_TRUNC | (nonblocking ? MSG_DONTWAIT : 0));
        if (received >= 0) {
            if ((size_t)received > transport->receive_capacity) {
                return -CNETLINK_EBADREPLY;
            }
            return received;
        }
        if (errno == EINTR) {
            continue;
        }
        if (nonblocking && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        return -errno;
    }
}

/// Reads and drops whatever is queued: answers left from an abandoned exchange or batch. After an
/// overflow (ENOBUFS) the kernel drops every further answer to this socket until its queue has been
/// emptied once, so a request sent before that would wait forever for its acknowledgement.
static void discard_pending(struct cnetlink_transport *transport) {
    for (;;) {
        ssize_t length = receive_datagram(transport, 1);
        if (length == 0 || (length < 0 && length != -ENOBUFS && length != -CNETLINK_EBADREPLY)) {
            return;
        }
    }
}

static int error_of(const struct nlmsghdr *message) {
    if (message->nlmsg_len < NLMSG_LENGTH(sizeof(int))) {
        return -CNETLINK_EBADREPLY;
    }
    const struct nlmsgerr *error = NLMSG_DATA(message);
    return error->error;
}

/// The error a dump's NLMSG_DONE carries: 0, or a negative errno when the dump failed part-way (the
/// entries before it were sent, the rest never will be). Older kernels send a DONE with no payload.
static int done_error(const struct nlmsghdr *message) {
    if (message->nlmsg_len < NLMSG_LENGTH(sizeof(int))) {
        return 0;
    }
    int error;
    memcpy(&error, NLMSG_DATA(message), sizeof(error));
    return error < 0 ? error : 0;
}

/// How an exchange that was read to its end (acknowledged, or its dump done) came out.
static int finish_exchange(int result, int stopped, int interrupted) {
    // The handler's own reason to stop comes first: it is what its caller asked for.
    if (stopped != 0) {
        return stopped;
    }
    // The kernel's dump resumed after a change to its table: entries may be missing or repeated, and
    // the count or the handler's view cannot be trusted.
    if (interrupted) {
        return -CNETLINK_EDUMPINTR;
    }
    return result;
}

int transport_exchange(struct cnetlink_transport *transport, transport_message_handler handler, void *context) {
    discard_pending(transport);
    struct nlmsghdr *request = nlmsg_hdr(transport->scratch);
    uint32_t sequence = request->nlmsg_seq;
    int result = send_all(transport, request, request->nlmsg_len);
    if (result < 0) {
        return result;
    }
    int stopped = 0;
    int interrupted = 0;
    for (;;) {
        ssize_t length = receive_datagram(transport, 0);
        if (length < 0) {
            return (int)length;
        }
        int remaining = (int)length;
        for (struct nlmsghdr *message = (struct nlmsghdr *)transport->receive_buffer; NLMSG_OK(message, remaining);
             message = NLMSG_NEXT(message, remaining)) {
            if (message->nlmsg_seq != sequence) {
                // Left over from an exchange that was abandoned; not ours.
                continue;
            }
            // The kernel may set it on any message of the dump, the DONE included.
            if (message->nlmsg_flags & NLM_F_DUMP_INTR) {
                interrupted = 1;
            }
            switch (message->nlmsg_type) {
            case NLMSG_DONE: {
                int error = done_error(message);
                if (error != 0) {
                    return error;
                }
                return finish_exchange(result, stopped, interrupted);
            }
            case NLMSG_ERROR: {
                int error = error_of(message);
                if (error != 0) {
                    return error;
                }
                return finish_exchange(result, stopped, interrupted);
            }
            case NLMSG_NOOP:
            case NLMSG_OVERRUN:
                continue;
            default:
                if (stopped == 0 && handler != NULL) {
                    stopped = handler(message, context);
                }
                result += 1;
            }
        }
    }
}

// MARK: - Batches

int transport_batch_begin(struct cnetlink_transport *transport) {
    if (transport->batch_buffer == NULL) {
        transport->batch_capacity = BATCH_CHUNK;
        transport->batch_buffer = malloc(BATCH_CHUNK);
        if (transport->batch_buffer == NULL) {
            return -ENOMEM;
        }
    }
    discard_pending(transport);
    transport->batch_length = 0;
    transport->batch_count = 0;
    transport->batch_error = 0;
    transport->failure_count = 0;
    transport->batch_first_sequence = transport->next_sequence;
    return 0;
}

static int record_failure(struct cnetlink_transport *transport, size_t index, int error) {
    if (transport->failure_count == transport->failure_capacity) {
        size_t capacity = transport->failure_capacity == 0 ? 64 : transport->failure_capacity * 2;
        struct cnetlink_failure *grown = realloc(transport->failures, capacity * sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        transport->failures = grown;
        transport->failure_capacity = capacity;
    }
    transport->failures[transport->failure_count++] = (struct cnetlink_failure){index, error};
    return 0;
}

/// Reads answers to batch messages. With `nonblocking`, takes only what is already queued; otherwise
/// reads until `final_sequence` is acknowledged. Returns 0 or a negative code.
static int collect_answers(struct cnetlink_transport *transport, int nonblocking, uint32_t final_sequence) {
    for (;;) {
        ssize_t length = receive_datagram(transport, nonblocking);
        if (length <= 0) {
            return (int)length;
        }
        int remaining = (int)length;
        for (struct nlmsghdr *message = (struct nlmsghdr *)transport->receive_buffer; NLMSG_OK(message, remaining);
             message = NLMSG_NEXT(message, remaining)) {
            if (message->nlmsg_type != NLMSG_ERROR) {
                continue;
            }
            uint32_t index = message->nlmsg_seq - transport->batch_first_sequence;
            int error = error_of(message);
            if (!nonblocking && message->nlmsg_seq == final_sequence) {
                return error;
            }
            if (index < transport->batch_count && error != 0) {
                int recorded = record_failure(transport, index, error);
                if (recorded < 0) {
                    return recorded;
                }
            }
        }
    }
}

static int flush_batch(struct cnetlink_transport *transport) {
    if (transport->batch_length == 0) {
        return 0;
    }
    int result = send_all(transport, transport->batch_buffer, transport->batch_length);
    transport->batch_length = 0;
    if (result < 0) {
        return result;
    }
    // The kernel handles a send synchronously, so its answers to this chunk are already queued: take
    // them now, before the next chunk's could overflow the receive buffer.
    return collect_answers(transport, 1, 0);
}

int transport_copy_out(struct nl_msg *message, int built, void *buffer, size_t capacity) {
    int result = built;
    if (result == 0) {
        struct nlmsghdr *header = nlmsg_hdr(message);
        if (header->nlmsg_len > capacity) {
            result = -EMSGSIZE;
        } else {
            memcpy(buffer, header, header->nlmsg_len);
            result = (int)header->nlmsg_len;
        }
    }
    nlmsg_free(message);
    return result;
}

int transport_batch_append_scratch(struct cnetlink_transport *transport) {
    if (transport->batch_error != 0) {
        return transport->batch_error;
    }
    struct nlmsghdr *message = nlmsg_hdr(transport->scratch);
    size_t length = NLMSG_ALIGN(message->nlmsg_len);
    if (transport->batch_length + length > transport->batch_capacity) {
        int result = flush_batch(transport);
        if (result < 0) {
            transport->batch_error = result;
            return result;
        }
    }
    message->nlmsg_seq = transport->batch_first_sequence + (uint32_t)transport->batch_count;
    memcpy(transport->batch_buffer + transport->batch_length, message, message->nlmsg_len);
    transport->batch_length += length;
    transport->batch_count += 1;
    transport->next_sequence = message->nlmsg_seq + 1;
    return 0;
}

int transport_batch_commit(struct cnetlink_transport *transport, cnetlink_failure_visitor visitor, void *context) {
    if (transport->batch_error != 0) {
        return transport->batch_error;
    }
    // A control message with NLM_F_ACK is acknowledged once every message before it has been handled,
    // by genetlink and rtnetlink alike.
    struct nl_msg *done = transport_reset_message(transport);
    struct nlmsghdr *header = nlmsg_hdr(done);
    header->nlmsg_type = NLMSG_NOOP;
    header->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    header->nlmsg_pid = 0;
    uint32_t final_sequence = transport->batch_first_sequence + (uint32_t)transport->batch_count;
    if (transport->batch_length + NLMSG_HDRLEN > transport->batch_capacity) {
        int result = flush_batch(transport);
        if (result < 0) {
            return result;
        }
    }
    header->nlmsg_seq = final_sequence;
    memcpy(transport->batch_buffer + transport->batch_length, header, NLMSG_HDRLEN);
    transport->batch_length += NLMSG_HDRLEN;
    transport->next_sequence = final_sequence + 1;

    int result = send_all(transport, transport->batch_buffer, transport->batch_length);
    transport->batch_length = 0;
    if (result < 0) {
        return result;
    }
    result = collect_answers(transport, 0, final_sequence);
    if (result < 0) {
        return result;
    }
    if (visitor != NULL) {
        for (size_t i = 0; i < transport->failure_count; i++) {
            visitor(transport->failures[i].index, transport->failures[i].error, context);
        }
    }
    return (int)transport->failure_count;
}
