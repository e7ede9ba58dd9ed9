// Network namespace calls for the integration tests, which glibc's Swift overlay does not expose.
#ifndef CTESTNAMESPACES_H
#define CTESTNAMESPACES_H

/// Creates a network namespace and returns a file descriptor for it (or -errno). The calling thread
/// enters the new namespace only for the duration of the call.
int test_netns_create(void);

/// Moves the calling thread into the network namespace `fd` refers to. Returns 0 or -errno.
int test_netns_enter(int fd);

#endif
