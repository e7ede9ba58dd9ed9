#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "CTestSupport.h"

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

int test_drop_effective_capabilities(unsigned long long mask) {
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) {
        return -errno;
    }
    data[0].effective &= ~(unsigned)(mask & 0xffffffffu);
    data[1].effective &= ~(unsigned)(mask >> 32);
    return syscall(SYS_capset, &header, data) == 0 ? 0 : -errno;
}

int test_run_without_capability(int capability, const char *path, char *const argv[], const char *output_path) {
    pid_t child = fork();
    if (child < 0) {
        return -errno;
    }
    if (child == 0) {
        int output = open(output_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (output < 0 || dup2(output, 1) < 0 || dup2(output, 2) < 0) {
            _exit(126);
        }
        if (prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0) {
            _exit(126);
        }
        execv(path, argv);
        _exit(127);
    }
    int status = 0;
    if (waitpid(child, &status, 0) < 0) {
        return -errno;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
