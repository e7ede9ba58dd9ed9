#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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

/// Writes `what` and errno's text to standard error and ends the child: only async-signal-safe calls, as the parent
/// has threads.
static void spawn_fail(const char *what) {
    int code = errno;
    const char *reason = strerror(code);
    (void)!write(2, "test_spawn: ", 12);
    (void)!write(2, what, strlen(what));
    (void)!write(2, ": ", 2);
    (void)!write(2, reason, strlen(reason));
    (void)!write(2, "\n", 1);
    _exit(126);
}

/// Closes every descriptor from 3 up: close_range where the kernel has it, else one by one below the limit.
static void close_inherited(void) {
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) {
        return;
    }
#endif
    struct rlimit limit;
    long top = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_max != RLIM_INFINITY ? (long)limit.rlim_max : 65536;
    for (long fd = 3; fd < top; fd++) {
        close((int)fd);
    }
}

int test_spawn(const char *path, char *const argv[], const char *output_path, long soft_limit, long hard_limit,
               unsigned long long dropped_capabilities) {
    pid_t child = fork();
    if (child < 0) {
        return -errno;
    }
    if (child != 0) {
        return child;
    }
    int output = open(output_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (output < 0 || dup2(output, 1) < 0 || dup2(output, 2) < 0) {
        _exit(126);
    }
    close_inherited();
    if (hard_limit > 0) {
        struct rlimit limit = {(rlim_t)soft_limit, (rlim_t)hard_limit};
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
            spawn_fail("setrlimit RLIMIT_NOFILE");
        }
    }
    if (dropped_capabilities != 0) {
        struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct data[2];
        if (syscall(SYS_capget, &header, data) != 0) {
            spawn_fail("capget");
        }
        data[0].inheritable &= ~(unsigned)(dropped_capabilities & 0xffffffffu);
        data[1].inheritable &= ~(unsigned)(dropped_capabilities >> 32);
        if (syscall(SYS_capset, &header, data) != 0) {
            spawn_fail("capset");
        }
        for (int capability = 0; capability < 64; capability++) {
            if ((dropped_capabilities & (1ULL << capability)) == 0) {
                continue;
            }
            if (prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0) {
                spawn_fail("prctl PR_CAPBSET_DROP");
            }
            // Not every kernel has ambient capabilities; one that lacks them has none to lower.
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, capability, 0, 0);
        }
    }
    execv(path, argv);
    spawn_fail(path);
    return -1;
}

int test_wait(int pid, int block) {
    int status = 0;
    pid_t waited;
    do {
        waited = waitpid(pid, &status, block ? 0 : WNOHANG);
    } while (waited < 0 && errno == EINTR);
    if (waited < 0) {
        return -2;
    }
    if (waited == 0) {
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int test_set_thread_nice(int nice) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice) == 0 ? 0 : -errno;
}
