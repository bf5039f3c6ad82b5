#ifndef BERTH_CURING_H
#define BERTH_CURING_H
// Berth's C surface over liburing, epoll and a few libc facilities.
//
// liburing.h is included only by shim.c, never here: it defines _GNU_SOURCE, which
// changes the layout names of system types (fd_set) and then clashes with Swift's own
// Glibc module wherever both are imported. This header uses only plain C types.
#include <stddef.h>
#include <stdint.h>

typedef struct berth_ring berth_ring;

typedef struct {
    uint64_t tag;
    int32_t result;
    uint32_t flags;
} berth_completion;

enum {
    BERTH_CQE_F_MORE = 2,  // IORING_CQE_F_MORE: a multishot request stays armed
    BERTH_EPOLLIN = 0x001,
    BERTH_EPOLLOUT = 0x004,
    BERTH_EPOLLERR = 0x008,
    BERTH_EPOLLHUP = 0x010,
    BERTH_EPOLL_ADD = 1,
    BERTH_EPOLL_DEL = 2,
    BERTH_EPOLL_MOD = 3,
};

/// Creates a ring; tries SINGLE_ISSUER|DEFER_TASKRUN first. Returns NULL and sets *error.
berth_ring *berth_ring_create(unsigned entries, int *deferred, int *error);
/// Nonzero when the kernel has every io_uring operation Berth uses (5.19 or later).
int berth_ring_has_required_ops(berth_ring *ring);
void berth_ring_destroy(berth_ring *ring);
void berth_ring_recv(berth_ring *ring, int fd, void *buffer, size_t length, uint64_t tag);
void berth_ring_send(berth_ring *ring, int fd, const void *buffer, size_t length, uint64_t tag);
void berth_ring_read(berth_ring *ring, int fd, void *buffer, unsigned length, uint64_t tag);
void berth_ring_accept_multishot(berth_ring *ring, int fd, uint64_t tag);
/// Submits prepared requests and waits up to timeout_us microseconds for one completion.
void berth_ring_submit_and_wait(berth_ring *ring, long long timeout_us);
void berth_ring_submit(berth_ring *ring);
/// Copies up to max ready completions into out and marks them seen; returns the count.
unsigned berth_ring_completions(berth_ring *ring, berth_completion *out, unsigned max);

typedef struct {
    int32_t fd;
    uint32_t events;
} berth_epoll_event;

int berth_epoll_create(void);
int berth_epoll_ctl(int epfd, int op, int fd, uint32_t events);
int berth_epoll_wait(int epfd, berth_epoll_event *out, int max, int timeout_ms);
/// A non-blocking, close-on-exec eventfd.
int berth_eventfd(void);

/// accept4 without a peer address, non-blocking and close-on-exec.
int berth_accept(int fd);
/// Blocks SIGTERM and SIGINT in the calling thread (and threads it creates later) and
/// ignores SIGPIPE.
void berth_block_signals(void);
/// Waits for SIGTERM or SIGINT; returns the signal number.
int berth_wait_signal(void);
/// Lowers the calling thread's scheduling priority (nice 10): background work.
void berth_lower_thread_priority(void);

#endif
