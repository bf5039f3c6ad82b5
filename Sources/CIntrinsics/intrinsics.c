// The target is its header (berth_intrinsics.h); SwiftPM wants one source file in a C target.
#include "berth_intrinsics.h"

static __thread uint64_t random_state;

uint32_t berth_fast_random(void) {
    uint64_t x = random_state;
    if (x == 0) x = (uint64_t)(uintptr_t)&random_state ^ berth_cycles() ^ 0x9E3779B97F4A7C15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    random_state = x;
    return (uint32_t)(x >> 32);
}
