// Kernel settings under /proc/sys/net, which belong to the network namespace of the thread that opens them.

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "CNetNamespace.h"

struct sysctl_write {
    const char *path;
    const char *value;
};

static int write_body(void *context) {
    struct sysctl_write *request = context;
    int descriptor = open(request->path, O_WRONLY | O_CLOEXEC);
    if (descriptor < 0) {
        return -errno;
    }
    size_t length = strlen(request->value);
    ssize_t written = write(descriptor, request->value, length);
    int result = written == (ssize_t)length ? 0 : (written < 0 ? -errno : -EIO);
    close(descriptor);
    return result;
}

int cnetns_sysctl_write(const char *netns_path, const char *path, const char *value) {
    struct sysctl_write request = {path, value};
    return cnetns_run(netns_path, write_body, &request);
}
