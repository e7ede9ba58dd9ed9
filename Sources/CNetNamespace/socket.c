// A TCP socket bound inside a network namespace (health-check node ports): a socket belongs to the namespace
// of the thread that makes it, so it is made on a thread that has entered the namespace and used from anywhere.

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "CNetNamespace.h"

struct bind_request {
    uint16_t family;
    const uint8_t *address;
    uint16_t port;
    int descriptor;
};

static int bind_body(void *context) {
    struct bind_request *request = context;
    int domain = request->family == AF_INET6 ? AF_INET6 : AF_INET;
    int descriptor = socket(domain, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (descriptor < 0) {
        return -errno;
    }
    int one = 1;
    int result = setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (result == 0 && domain == AF_INET6) {
        // Else the IPv6 wildcard would take IPv4 connections too, and an IPv4 listener could not bind.
        result = setsockopt(descriptor, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (result == 0) {
        if (domain == AF_INET6) {
            struct sockaddr_in6 address = {.sin6_family = AF_INET6, .sin6_port = htons(request->port)};
            memcpy(&address.sin6_addr, request->address, 16);
            result = bind(descriptor, (struct sockaddr *)&address, sizeof(address));
        } else {
            struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(request->port)};
            memcpy(&address.sin_addr, request->address, 4);
            result = bind(descriptor, (struct sockaddr *)&address, sizeof(address));
        }
    }
    if (result != 0) {
        int error = -errno;
        close(descriptor);
        return error;
    }
    request->descriptor = descriptor;
    return 0;
}

int cnetns_bound_tcp_socket(const char *netns_path, uint16_t family, const uint8_t *address, uint16_t port) {
    struct bind_request request = {family, address, port, -1};
    int result = cnetns_run(netns_path, bind_body, &request);
    return result < 0 ? result : request.descriptor;
}
