// CHeapMemory: glibc's malloc tuning (<malloc.h>), which the Glibc module does not expose. With another C
// library every call does nothing and says so.
#ifndef CHEAPMEMORY_H
#define CHEAPMEMORY_H

#ifdef __cplusplus
extern "C" {
#endif

/// Sets glibc's M_ARENA_MAX, M_MMAP_THRESHOLD or M_TRIM_THRESHOLD (`mallopt`). Returns 1 when set, 0 when refused
/// or when the C library is not glibc.
int heap_memory_set_arena_max(int arenas);
int heap_memory_set_mmap_threshold(int bytes);
int heap_memory_set_trim_threshold(int bytes);

/// Gives the heap's free pages back to the kernel (`malloc_trim(0)`). Returns 1 when some were, else 0.
int heap_memory_trim(void);

#ifdef __cplusplus
}
#endif

#endif
