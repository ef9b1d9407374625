/* assay: a malloc replacement with a built-in sampling heap profiler.
 * Public C API. Every function here is exported by libassay.so and libassay.a
 * and is safe to call from any thread. The standard malloc family (malloc,
 * free, calloc, realloc, ...) is replaced as a whole and is not repeated here. */
#ifndef ASSAY_ASSAY_H_
#define ASSAY_ASSAY_H_

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version string, e.g. "assay 0.1.0". A program (or a test)
 * that can resolve this symbol knows assay is the allocator in use. */
const char* assay_version(void);

/* Combined allocation: n independently freeable blocks in one call, sizes[i]
 * bytes each (0 is allowed and yields a unique pointer). Returns 0 and fills
 * out[0..n) on success; returns ENOMEM with nothing allocated and out
 * untouched on failure. Cheaper than n calls to malloc: one pass over the
 * thread cache, one refill per size class. */
int assay_comalloc(size_t n, const size_t* sizes, void** out);

/* Frees every non-null ptrs[i] (as free() would) and sets it to NULL. */
void assay_bulk_free(void** ptrs, size_t n);

/* Returns unused memory to the operating system now: the calling thread's
 * cache, the central caches, and every free page (as malloc_trim does).
 * Returns the number of bytes purged or unmapped. */
size_t assay_trim(void);

/* Counters of the allocator, in bytes unless named otherwise. A snapshot:
 * fields are read without stopping other threads, so they may be a few
 * operations apart from each other. */
typedef struct assay_stats {
  size_t allocated;      /* bytes in blocks handed to the program (usable sizes) */
  size_t thread_cached;  /* free bytes held in per-thread caches */
  size_t central_cached; /* free bytes held in central caches and partly used spans
                            (resident: their pages returned to the OS are not counted) */
  size_t segment_mapped; /* bytes of segments mapped from the OS */
  size_t huge_mapped;    /* bytes of live huge blocks mapped from the OS */
  size_t huge_cached;    /* bytes of freed huge mappings kept for reuse until decay */
  size_t free_dirty;     /* free pages in segments not yet returned to the OS */
  size_t purged_total;   /* bytes returned with madvise since start (cumulative) */
  size_t unmapped_total; /* bytes unmapped since start (cumulative) */
  size_t metadata;       /* bytes used by the allocator's own bookkeeping */
  size_t segments;       /* segments mapped now (count) */
  size_t huge_blocks;    /* huge blocks live now (count) */
  size_t threads;        /* live thread caches (count) */
} assay_stats;

/* Fills *out with the current counters. */
void assay_get_stats(assay_stats* out);

/* Prints the heap by size class, one line per size in the format
 *   `      32 bytes *     12,237 allocs (34%) =       391,584 bytes ( 4%)`
 * (live blocks, share of blocks, bytes, share of bytes), then the totals:
 * live bytes, thread caches, central caches, mapped, resident, purged,
 * metadata and profiler overhead. To stderr when f is NULL. Also printed at
 * exit with ASSAY_OPTIONS=stats_at_exit=1. */
void assay_stats_print(FILE* f);

/* The same as JSON, written into buf (NUL-terminated, truncated to size);
 * returns the length the whole text needs (as snprintf). Never allocates. */
size_t assay_stats_json(char* buf, size_t size);

/* Calls visit(address, usable_size, arg) for every live block of the heap.
 * The blocks are those of one consistent instant: the walk runs in a forked
 * copy of the process taken while the allocator was still, and reports back
 * through a pipe; visit runs in the calling process afterwards, with no lock
 * held, and may allocate and free (those blocks are not in the walk). Costs a
 * fork (page tables are copied). Returns the number of blocks visited, or -1
 * with errno set. */
typedef void (*assay_block_visitor)(void* address, size_t usable_size, void* arg);
long assay_heap_iterate(assay_block_visitor visit, void* arg);

/* Writes a pprof heap profile (gzip-compressed protobuf): kind is "heap",
 * "alloc", "peak" or "leak"; path NULL picks the next MALLOC_PROF file name.
 * Profiling must be on (MALLOC_PROF, or assay::Start from C++). Returns 0,
 * or an errno value (ENOENT when nothing is being profiled, or the error of
 * the write). */
int assay_write_profile(const char* kind, const char* path);

/* Writes the same gzip-compressed pprof bytes to file descriptor fd instead
 * of a file, for a program that serves them on its own admin server (next to
 * Go's /debug/pprof/heap convention; MALLOC_PROF=http=ADDR serves them
 * without code). kind is "heap" (live sampled blocks, with the cumulative
 * allocations as alloc_*) or "alloc" (the same, alloc_space by default). The
 * profile is built in memory first, with no profiler lock held while it is
 * written: a slow reader of fd delays only the caller. Returns 0, or an errno
 * value: EINVAL for another kind, ENOENT when nothing is being profiled, the
 * write's error (the bytes may then be partly written). */
int assay_profile_to_fd(const char* kind, int fd);

#ifdef __cplusplus
}
#endif

#endif /* ASSAY_ASSAY_H_ */
