#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "CTestNamespaces.h"

int test_netns_create(void) {
    int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original < 0) {
        return -errno;
    }
    int result;
    if (unshare(CLONE_NEWNET) != 0) {
        result = -errno;
    } else {
        result = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (result < 0) {
            result = -errno;
        }
        if (setns(original, CLONE_NEWNET) != 0) {
            abort();
        }
    }
    close(original);
    return result;
}

int test_netns_enter(int fd) { return setns(fd, CLONE_NEWNET) == 0 ? 0 : -errno; }
