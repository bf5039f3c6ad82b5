#ifndef BERTH_ALLOCATOR_H
#define BERTH_ALLOCATOR_H
#include <stddef.h>

/* Bytes the process has allocated with malloc and its relatives and not yet freed, as
   the allocator counts them (usable sizes, so allocator rounding included): Redis's
   `used_memory`. Cheap enough to read before every write command. */
size_t berth_allocated_bytes(void);

/* Whether `berth_allocated_bytes` counts each allocation (1) or asks the allocator for
   its statistics, which walks its free lists (0: under AddressSanitizer). */
int berth_allocations_counted(void);

/* Resident set size of the process, from /proc/self/statm. */
size_t berth_rss_bytes(void);

/* Returns the allocator's unused pages to the system (MEMORY PURGE). */
void berth_release_free_memory(void);

/* The allocator's own report (MEMORY MALLOC-STATS); the caller frees it. */
char *berth_allocator_report(void);

/* INFO's mem_allocator: "jemalloc-5.3.0", or "libc" under AddressSanitizer. */
const char *berth_allocator_name(void);

#endif
