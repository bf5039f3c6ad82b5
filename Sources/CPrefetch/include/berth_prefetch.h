#ifndef BERTH_PREFETCH_H
#define BERTH_PREFETCH_H

/// Asks the CPU to start loading the cache line at `address` for a read that will come
/// soon. Swift has no prefetch of its own; this inline function compiles to one
/// instruction and never faults, whatever the address.
static inline void berth_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
