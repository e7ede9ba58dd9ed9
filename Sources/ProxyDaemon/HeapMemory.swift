import CHeapMemory
import Foundation

/// The C heap (glibc's malloc), tuned for a daemon that holds a large, long-lived state and lets large inputs go.
package enum HeapMemory {
    /// Two arenas rather than glibc's eight per core (each thread's frees otherwise scatter over arenas of their
    /// own); blocks of 128 KiB or more (list pages, the tables of a first sync) in mappings of their own, given back
    /// when freed rather than left between long-lived objects (glibc otherwise raises that threshold as large
    /// blocks are freed); and the top of the heap kept up to 32 MiB (a fixed mapping threshold would leave glibc's
    /// 128 KiB trim threshold, and every sync would shrink the heap and fault it in again, which doubled an
    /// endpoint change's latency in the VM): freed heap goes back after large changes, by ``returnToKernel()``.
    /// Docs/performance.md has what each setting did. `MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` and
    /// `MALLOC_TRIM_THRESHOLD_` in the environment win. Call before other threads start.
    package static func configure() {
        if getenv("MALLOC_ARENA_MAX") == nil { _ = heap_memory_set_arena_max(2) }
        if getenv("MALLOC_MMAP_THRESHOLD_") == nil { _ = heap_memory_set_mmap_threshold(128 * 1024) }
        if getenv("MALLOC_TRIM_THRESHOLD_") == nil { _ = heap_memory_set_trim_threshold(32 * 1024 * 1024) }
    }

    /// Gives the heap's free pages back to the kernel.
    static func returnToKernel() {
        _ = heap_memory_trim()
    }
}
