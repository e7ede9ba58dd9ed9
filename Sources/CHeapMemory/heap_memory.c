#include "CHeapMemory.h"

// Any C library header says which library this is (glibc defines __GLIBC__ in <features.h>).
#include <stdlib.h>

#ifdef __GLIBC__
#include <malloc.h>

int heap_memory_set_arena_max(int arenas) { return mallopt(M_ARENA_MAX, arenas); }
int heap_memory_set_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }
int heap_memory_set_trim_threshold(int bytes) { return mallopt(M_TRIM_THRESHOLD, bytes); }
int heap_memory_trim(void) { return malloc_trim(0); }
#else
int heap_memory_set_arena_max(int arenas) { return 0; }
int heap_memory_set_mmap_threshold(int bytes) { return 0; }
int heap_memory_set_trim_threshold(int bytes) { return 0; }
int heap_memory_trim(void) { return 0; }
#endif
