// Namespace and capability calls for the tests, which glibc's Swift overlay does not expose.
#ifndef CTESTNAMESPACES_H
#define CTESTNAMESPACES_H

/// Creates a network namespace and returns a file descriptor for it (or -errno). The calling thread
/// enters the new namespace only for the duration of the call.
int test_netns_create(void);

/// Moves the calling thread into the network namespace `fd` refers to. Returns 0 or -errno.
int test_netns_enter(int fd);

/// Removes capabilities (a mask of `1 << CAP_x`) from the calling thread's effective set only: file access
/// and kernel calls made by this thread are then checked as if the process lacked them. Returns 0 or -errno.
int test_drop_effective_capabilities(unsigned long long mask);

/// Runs `path` with `argv` as a child process that lacks `capability` entirely (dropped from its bounding set
/// before exec, so even root does not get it back), with standard output and error written to `output_path`.
/// Returns the child's exit status, or -errno.
int test_run_without_capability(int capability, const char *path, char *const argv[], const char *output_path);

/// Starts `path` with `argv` as a child process and returns its process id (or -errno). In the child, before
/// exec: standard output and error go to `output_path`; every other descriptor above 2 is closed; when `hard_limit`
/// is above 0, the descriptor limit (RLIMIT_NOFILE) becomes `soft_limit` and `hard_limit`; the capabilities in
/// `dropped_capabilities` (a mask of `1 << CAP_x`) leave its bounding, inheritable and ambient sets, so even root
/// does not get them back. A child that cannot be set up so exits with 126 and says why in its output.
int test_spawn(const char *path, char *const argv[], const char *output_path, long soft_limit, long hard_limit,
               unsigned long long dropped_capabilities);

/// The status of child `pid`: its exit status, or 128 plus the signal that ended it; with `block` 0 and the child
/// still running, -1. Returns -2 when it cannot be waited for (not a child, or waited for already).
int test_wait(int pid, int block);

/// Gives the calling thread (only) the nice value `nice`, so that a busy test thread leaves the CPU to others.
/// Returns 0 or -errno.
int test_set_thread_nice(int nice);

#endif
