/* The allocator, and counting what the process has allocated so that `maxmemory` can be
 * enforced.
 *
 * Allocator: jemalloc, as Redis's default build uses. Its size classes are spaced a
 * quarter apart with no header per block, where glibc adds 8 bytes to every block and
 * rounds to 16: a key's 80-byte entry takes 80 bytes rather than 96, and every small
 * collection, string and Swift object likewise. Every call of the malloc family, from
 * Swift's runtime, SpiderMonkey, Lua, liburing or a loaded module, reaches jemalloc
 * through the functions below, which call its own entry points (mallocx, sallocx,
 * rallocx, dallocx), so a block is always freed by the allocator that made it.
 *
 * Counting: Redis knows its used memory because every allocation goes through zmalloc,
 * which adds the allocator's usable size to a counter; asking the allocator for its
 * statistics instead is far too slow to do before each write (glibc's mallinfo2 walks
 * every free chunk, tens of milliseconds on a fragmented heap). So each call below adds
 * or subtracts the block's usable size to a counter of the calling thread, and the sum
 * of the counters is the used memory.
 *
 * How the functions reach every caller:
 * - A dynamically linked server defines malloc, free, ... itself; the dynamic linker
 *   binds every library's calls (glibc's internal ones included) to the executable's
 *   definitions, ahead of glibc's and libjemalloc's own.
 * - The fully static server (deploy/install.sh) is linked with `--wrap=malloc` and so
 *   on, which sends every reference to __wrap_malloc; it compiles this file with
 *   BERTH_WRAP_MALLOC.
 * - Under AddressSanitizer, which has its own malloc, nothing is replaced and the count
 *   is the sanitizer's.
 *
 * Counters: each thread claims a slot (its own cache line) on its first allocation and
 * updates it with plain relaxed loads and stores, as only it writes there; a reader sums
 * the slots in use. A block freed by another thread than the one that allocated it is
 * subtracted from the freeing thread's slot, so single slots may go negative while the
 * sum stays right. When a thread ends, a key destructor folds its slot into `retired`
 * and gives the slot back. Threads that find no free slot, and allocations made during
 * thread teardown after that, use `retired` with atomic adds.
 */
#define _GNU_SOURCE
#include "berth_allocator.h"
#include <malloc.h>
#include <jemalloc/jemalloc.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>

#if defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define BERTH_NO_COUNTING 1
#  endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#  define BERTH_NO_COUNTING 1
#endif

#define BERTH_STRINGIFY_(x) #x
#define BERTH_STRINGIFY(x) BERTH_STRINGIFY_(x)
/* "5.3.0", as Redis's INFO names its allocator. */
#define BERTH_JEMALLOC_RELEASE BERTH_STRINGIFY(JEMALLOC_VERSION_MAJOR) "." \
    BERTH_STRINGIFY(JEMALLOC_VERSION_MINOR) "." BERTH_STRINGIFY(JEMALLOC_VERSION_BUGFIX)

size_t berth_rss_bytes(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

#ifndef BERTH_NO_COUNTING
/* jemalloc's options, read once when it starts (MALLOC_CONF in the environment still
   overrides them): a thread of its own returns unused pages to the system as they age,
   as Redis's `jemalloc-bg-thread yes` has it. Without it pages freed by a burst of
   writes stay resident until the next allocations happen to purge them, so an idle
   server's RSS never comes down. */
const char *malloc_conf = "background_thread:true";
#endif

#ifdef BERTH_NO_COUNTING
void berth_release_free_memory(void) { malloc_trim(0); }
#else
void berth_release_free_memory(void) {
    mallctl("arena." BERTH_STRINGIFY(MALLCTL_ARENAS_ALL) ".purge", NULL, NULL, NULL, 0);
}
#endif

#ifndef BERTH_NO_COUNTING
static void append_report(void *f, const char *text) { fputs(text, (FILE *)f); }
#endif

char *berth_allocator_report(void) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return NULL;
#ifdef BERTH_NO_COUNTING
    malloc_info(0, f);
#else
    malloc_stats_print(append_report, f, NULL);
#endif
    fclose(f);
    return text;
}

const char *berth_allocator_name(void) {
#ifdef BERTH_NO_COUNTING
    return "libc";
#else
    return "jemalloc-" BERTH_JEMALLOC_RELEASE;
#endif
}

#ifdef BERTH_NO_COUNTING

#include <sanitizer/allocator_interface.h>
size_t berth_allocated_bytes(void) { return __sanitizer_get_current_allocated_bytes(); }
int berth_allocations_counted(void) { return 0; }

#else

#define SLOTS 512

struct slot {
    _Alignas(64) _Atomic long bytes;
    _Atomic int taken;
};

static struct slot slots[SLOTS];
static _Atomic int slots_high = 0;       /* one past the highest slot ever taken */
static _Atomic long retired = 0;         /* ended threads' counts, and slotless threads' */
static __thread int my_slot = -1;        /* -1: none yet; -2: none to be had */
static pthread_key_t slot_key;
static pthread_once_t slot_key_once = PTHREAD_ONCE_INIT;

static void give_back_slot(void *value) {
    int i = (int)(intptr_t)value - 1;
    if (i < 0 || i >= SLOTS) return;
    atomic_fetch_add_explicit(&retired, atomic_exchange_explicit(&slots[i].bytes, 0, memory_order_relaxed),
                              memory_order_relaxed);
    my_slot = -2;
    atomic_store_explicit(&slots[i].taken, 0, memory_order_release);
}

static void make_slot_key(void) { pthread_key_create(&slot_key, give_back_slot); }

static int claim_slot(void) {
    pthread_once(&slot_key_once, make_slot_key);
    for (int i = 0; i < SLOTS; i++) {
        int expected = 0;
        if (atomic_load_explicit(&slots[i].taken, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong(&slots[i].taken, &expected, 1)) {
            int high = atomic_load_explicit(&slots_high, memory_order_relaxed);
            while (high < i + 1 && !atomic_compare_exchange_weak(&slots_high, &high, i + 1)) {}
            /* The key's value is set before the slot is used, so its destructor runs. */
            pthread_setspecific(slot_key, (void *)(intptr_t)(i + 1));
            return i;
        }
    }
    return -2;
}

static inline void count(long delta) {
    int i = my_slot;
    if (__builtin_expect(i == -1, 0)) {
        my_slot = -2;  /* an allocation made while claiming counts as slotless */
        i = claim_slot();
        my_slot = i;
    }
    if (__builtin_expect(i >= 0, 1)) {
        _Atomic long *b = &slots[i].bytes;
        atomic_store_explicit(b, atomic_load_explicit(b, memory_order_relaxed) + delta, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&retired, delta, memory_order_relaxed);
    }
}

size_t berth_allocated_bytes(void) {
    long sum = atomic_load_explicit(&retired, memory_order_relaxed);
    int high = atomic_load_explicit(&slots_high, memory_order_relaxed);
    for (int i = 0; i < high; i++) sum += atomic_load_explicit(&slots[i].bytes, memory_order_relaxed);
    return sum > 0 ? (size_t)sum : 0;
}

int berth_allocations_counted(void) { return 1; }

#ifdef BERTH_WRAP_MALLOC
#  define WRAPPED(name) __wrap_##name
#else
#  define WRAPPED(name) name
#endif

/* jemalloc's own entry points (mallocx and friends) serve every call: they are not the
   standard names, so neither the wrapping nor a second definition of malloc can loop
   back here. A zero-byte request asks for one byte (mallocx(0) is undefined). */
#define NONZERO(n) ((n) ? (n) : 1)

static inline void *counted(void *p) {
    if (p) count((long)sallocx(p, 0));
    return p;
}

void *WRAPPED(malloc)(size_t n) {
    void *p = counted(mallocx(NONZERO(n), 0));
    if (!p) errno = ENOMEM;
    return p;
}

void WRAPPED(free)(void *p) {
    if (!p) return;
    count(-(long)sallocx(p, 0));
    dallocx(p, 0);
}

void *WRAPPED(calloc)(size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) { errno = ENOMEM; return NULL; }
    void *p = counted(mallocx(NONZERO(total), MALLOCX_ZERO));
    if (!p) errno = ENOMEM;
    return p;
}

void *WRAPPED(realloc)(void *p, size_t n) {
    if (!p) return WRAPPED(malloc)(n);
    if (n == 0) { WRAPPED(free)(p); return NULL; }  /* glibc's realloc(p, 0) */
    long before = (long)sallocx(p, 0);
    void *q = rallocx(p, n, 0);
    if (!q) { errno = ENOMEM; return NULL; }
    count((long)sallocx(q, 0) - before);
    return q;
}

void *WRAPPED(reallocarray)(void *p, size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) { errno = ENOMEM; return NULL; }
    return WRAPPED(realloc)(p, total);
}

static void *aligned(size_t alignment, size_t n) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) { errno = EINVAL; return NULL; }
    void *p = counted(mallocx(NONZERO(n), MALLOCX_ALIGN(alignment)));
    if (!p) errno = ENOMEM;
    return p;
}

void *WRAPPED(memalign)(size_t alignment, size_t n) { return aligned(alignment, n); }

void *WRAPPED(aligned_alloc)(size_t alignment, size_t n) { return aligned(alignment, n); }

int WRAPPED(posix_memalign)(void **out, size_t alignment, size_t n) {
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *p = aligned(alignment, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

void *WRAPPED(valloc)(size_t n) { return aligned((size_t)sysconf(_SC_PAGESIZE), n); }

void *WRAPPED(pvalloc)(size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return aligned(page, (n + page - 1) & ~(page - 1));
}

size_t WRAPPED(malloc_usable_size)(void *p) { return p ? sallocx(p, 0) : 0; }

#endif
