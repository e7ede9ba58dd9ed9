// Entering a network namespace on the calling thread, and going back.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "CNetNamespace.h"

int cnetns_run(const char *netns_path, int (*body)(void *), void *context) {
    if (netns_path == NULL) {
        return body(context);
    }
    int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original < 0) {
        return -errno;
    }
    int target = open(netns_path, O_RDONLY | O_CLOEXEC);
    if (target < 0) {
        int error = -errno;
        close(original);
        return error;
    }
    int result;
    if (setns(target, CLONE_NEWNET) != 0) {
        result = -errno;
    } else {
        // setns changes only this thread; sockets and open files keep the namespace they were made in.
        result = body(context);
        if (setns(original, CLONE_NEWNET) != 0) {
            // A thread stranded in another namespace would silently send everything after this to the
            // wrong kernel tables; there is no way to report that safely.
            abort();
        }
    }
    close(target);
    close(original);
    return result;
}
