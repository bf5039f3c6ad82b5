#define _GNU_SOURCE
#include "CUring.h"
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <liburing.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

struct berth_ring {
    struct io_uring ring;
};

berth_ring *berth_ring_create(unsigned entries, int *deferred, int *error) {
    berth_ring *r = calloc(1, sizeof(*r));
    if (!r) { *error = ENOMEM; return NULL; }
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int rc = io_uring_queue_init_params(entries, &r->ring, &p);
    *deferred = 1;
    if (rc < 0) {
        struct io_uring_params plain = {0};
        *deferred = 0;
        rc = io_uring_queue_init_params(entries, &r->ring, &plain);
    }
    if (rc < 0) { free(r); *error = -rc; return NULL; }
    return r;
}

int berth_ring_has_required_ops(berth_ring *r) {
    // Multishot accept and IORING_RECVSEND_POLL_FIRST are flags, which a probe cannot
    // see; both came with kernel 5.19, as did the SOCKET opcode, which it can. Older
    // kernels refuse the accept (a loop of failed re-arms) and the recv (EINVAL).
    struct io_uring_probe *probe = io_uring_get_probe_ring(&r->ring);
    if (!probe) return 0;
    int ok = io_uring_opcode_supported(probe, IORING_OP_SOCKET);
    io_uring_free_probe(probe);
    return ok;
}

void berth_ring_destroy(berth_ring *r) {
    io_uring_queue_exit(&r->ring);
    free(r);
}

static struct io_uring_sqe *next_sqe(berth_ring *r) {
    struct io_uring_sqe *sqe;
    while ((sqe = io_uring_get_sqe(&r->ring)) == NULL) io_uring_submit(&r->ring);
    return sqe;
}

void berth_ring_recv(berth_ring *r, int fd, void *buffer, size_t length, uint64_t tag) {
    struct io_uring_sqe *sqe = next_sqe(r);
    io_uring_prep_recv(sqe, fd, buffer, length, 0);
    // A recv is armed right after the reply to the last request went out, before the
    // client can have sent the next one: trying the socket first would fail every time
    // (a socket lock and a tcp_recvmsg for nothing), so go straight to waiting for data.
    sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    io_uring_sqe_set_data64(sqe, tag);
}

void berth_ring_send(berth_ring *r, int fd, const void *buffer, size_t length, uint64_t tag) {
    struct io_uring_sqe *sqe = next_sqe(r);
    io_uring_prep_send(sqe, fd, buffer, length, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, tag);
}

void berth_ring_read(berth_ring *r, int fd, void *buffer, unsigned length, uint64_t tag) {
    struct io_uring_sqe *sqe = next_sqe(r);
    io_uring_prep_read(sqe, fd, buffer, length, 0);
    io_uring_sqe_set_data64(sqe, tag);
}

void berth_ring_accept_multishot(berth_ring *r, int fd, uint64_t tag) {
    struct io_uring_sqe *sqe = next_sqe(r);
    io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, tag);
}

void berth_ring_submit_and_wait(berth_ring *r, long long timeout_us) {
    struct __kernel_timespec ts = { .tv_sec = timeout_us / 1000000, .tv_nsec = (timeout_us % 1000000) * 1000 };
    struct io_uring_cqe *cqe = NULL;
    io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
}

void berth_ring_submit(berth_ring *r) { io_uring_submit(&r->ring); }

unsigned berth_ring_completions(berth_ring *r, berth_completion *out, unsigned max) {
    struct io_uring_cqe *batch[256];
    if (max > 256) max = 256;
    unsigned n = io_uring_peek_batch_cqe(&r->ring, batch, max);
    for (unsigned i = 0; i < n; i++) {
        out[i].tag = batch[i]->user_data;
        out[i].result = batch[i]->res;
        out[i].flags = batch[i]->flags;
    }
    io_uring_cq_advance(&r->ring, n);
    return n;
}

int berth_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int berth_epoll_ctl(int epfd, int op, int fd, uint32_t events) {
    struct epoll_event ev = { .events = events, .data.fd = fd };
    return epoll_ctl(epfd, op, fd, &ev);
}

int berth_epoll_wait(int epfd, berth_epoll_event *out, int max, int timeout_ms) {
    struct epoll_event events[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, events, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        out[i].fd = events[i].data.fd;
        out[i].events = events[i].events;
    }
    return n;
}

int berth_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int berth_accept(int fd) { return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }

static sigset_t berth_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    return set;
}

void berth_block_signals(void) {
    sigset_t set = berth_signals();
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A file past RLIMIT_FSIZE fails the write with EFBIG, which the append-only file
       reports (-MISCONF) and retries, instead of ending the server. */
    signal(SIGXFSZ, SIG_IGN);
}

int berth_wait_signal(void) {
    sigset_t set = berth_signals();
    int sig = 0;
    if (sigwait(&set, &sig) != 0) return -1;
    return sig;
}

void berth_lower_thread_priority(void) {
    /* nice 10 for this thread only (Linux applies setpriority to a thread id): the
       snapshot's walk runs when the shard threads leave the CPU to it. */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
}
