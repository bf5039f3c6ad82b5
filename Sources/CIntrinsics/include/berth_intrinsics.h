#ifndef BERTH_INTRINSICS_H
#define BERTH_INTRINSICS_H

#include <stdint.h>

/// Asks the CPU to start loading the cache line at `address` for a read that will come
/// soon. Swift has no prefetch of its own; this inline function compiles to one
/// instruction and never faults, whatever the address.
static inline void berth_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

/// Whether `berth_cycles` reads a hardware counter (x86-64's time-stamp counter);
/// elsewhere it returns 0 and callers keep using clock_gettime.
static inline int berth_has_cycle_counter(void) {
#if defined(__x86_64__)
    return 1;
#else
    return 0;
#endif
}

/// The CPU's time-stamp counter: a few cycles to read where clock_gettime costs tens of
/// nanoseconds. Only meaningful as a clock when the counter runs at a constant rate
/// across cores and sleep states (the "constant_tsc" and "nonstop_tsc" CPU flags).
static inline uint64_t berth_cycles(void) {
#if defined(__x86_64__)
    return __builtin_ia32_rdtsc();
#else
    return 0;
#endif
}

/// A fast pseudo-random 32-bit number from a per-thread xorshift generator, for
/// probabilistic counters (LFU) that must not pay a system call per use.
uint32_t berth_fast_random(void);

#endif
