#ifndef BERTH_CURING_H
#define BERTH_CURING_H
// The C surface Berth uses: liburing itself, plus the few things Swift cannot import
// from it directly (flag macros, accept4 with null address, CPU affinity, mallinfo2).
#include <liburing.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

static const unsigned berth_IOSQE_ASYNC = IOSQE_ASYNC;
static const unsigned berth_IORING_SETUP_SINGLE_ISSUER = IORING_SETUP_SINGLE_ISSUER;
static const unsigned berth_IORING_SETUP_DEFER_TASKRUN = IORING_SETUP_DEFER_TASKRUN;
static const unsigned berth_IORING_SETUP_COOP_TASKRUN = IORING_SETUP_COOP_TASKRUN;
static const unsigned berth_IORING_CQE_F_MORE = IORING_CQE_F_MORE;

/// accept4 without a peer address (Swift refuses nil for the transparent union).
int berth_accept(int fd);
/// Pins the calling thread to one CPU; returns 0 or an errno.
int berth_pin_thread(int cpu);
/// Bytes the C allocator has handed out and not taken back (all arenas plus mmapped).
size_t berth_allocated_bytes(void);
/// Resident set size of this process in bytes, or 0.
size_t berth_rss_bytes(void);
/// Blocks SIGTERM, SIGINT and SIGPIPE in the calling thread (and threads it creates later).
void berth_block_signals(void);
/// Waits for SIGTERM or SIGINT; returns the signal number.
int berth_wait_signal(void);

#endif
