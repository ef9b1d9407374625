// The exported C API: the malloc family (replacing libc's) and assay_*.
// Each function is a one-line shim into thread_cache.h or heap.h.
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/heap.h"
#include "alloc/huge.h"
#include "alloc/page_heap.h"
#include "alloc/stats.h"
#include "alloc/thread_cache.h"
#include "assay/assay.h"
#include "base/options.h"

#ifndef ASSAY_VERSION_STRING
#define ASSAY_VERSION_STRING "0.0.0"
#endif

using namespace assay::internal;

// ASSAY_PREFIX (the TSan build, tests/sanitize/): the malloc family is
// exported as assay_malloc, assay_free, ... beside the system's, which a
// sanitizer runtime owns, and the program calls them by those names.
#ifdef ASSAY_PREFIX
#define ASSAY_LIBC(name) assay_##name
#else
#define ASSAY_LIBC(name) name
#endif

// Marks the start of this file's code (see base/entry_points.h).
extern "C" ASSAY_NOINLINE __attribute__((used)) void assay_internal_api_begin() {
  asm volatile("");
}

namespace {

// posix_memalign's rule: a power of two and a multiple of sizeof(void*).
bool ValidPosixAlign(size_t align) { return IsPowerOfTwo(align) && align % sizeof(void*) == 0; }

}  // namespace

extern "C" {

ASSAY_EXPORT void* ASSAY_LIBC(malloc)(size_t n) noexcept { return Malloc(n); }

ASSAY_EXPORT void ASSAY_LIBC(free)(void* p) noexcept { Free(p); }

ASSAY_EXPORT void* ASSAY_LIBC(calloc)(size_t count, size_t size) noexcept {
  return heap::Calloc(count, size);
}

ASSAY_EXPORT void* ASSAY_LIBC(realloc)(void* p, size_t n) noexcept { return heap::Realloc(p, n); }

ASSAY_EXPORT void* ASSAY_LIBC(reallocarray)(void* p, size_t count, size_t size) noexcept {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return heap::Realloc(p, total);
}

ASSAY_EXPORT int ASSAY_LIBC(posix_memalign)(void** out, size_t align, size_t n) noexcept {
  if (!ValidPosixAlign(align)) return EINVAL;
  const int saved = errno;
  void* p = heap::AlignedAlloc(align, n);
  if (p == nullptr) {
    errno = saved;  // posix_memalign reports through its result, not errno
    return ENOMEM;
  }
  *out = p;
  return 0;
}

ASSAY_EXPORT void* ASSAY_LIBC(aligned_alloc)(size_t align, size_t n) noexcept {
  if (!IsPowerOfTwo(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return heap::AlignedAlloc(align, n);
}

ASSAY_EXPORT void* ASSAY_LIBC(memalign)(size_t align, size_t n) noexcept {
  if (align == 0) align = 1;
  if (!IsPowerOfTwo(align)) {
    // As glibc: round a non-power-of-two alignment up to the next power.
    if (align > (SIZE_MAX >> 1) + 1) {
      errno = EINVAL;
      return nullptr;
    }
    align = size_t{1} << (64 - __builtin_clzl(align));
  }
  return heap::AlignedAlloc(align, n);
}

ASSAY_EXPORT void* ASSAY_LIBC(valloc)(size_t n) noexcept {
  return heap::AlignedAlloc(kPageSize, n);
}

ASSAY_EXPORT void* ASSAY_LIBC(pvalloc)(size_t n) noexcept {
  const size_t rounded = AlignUp(n == 0 ? 1 : n, kPageSize);
  if (rounded < n) {
    errno = ENOMEM;
    return nullptr;
  }
  return heap::AlignedAlloc(kPageSize, rounded);
}

ASSAY_EXPORT size_t ASSAY_LIBC(malloc_usable_size)(void* p) noexcept {
  return p == nullptr ? 0 : heap::UsableSize(p);
}

ASSAY_EXPORT int ASSAY_LIBC(malloc_trim)(size_t) noexcept { return heap::Trim() > 0 ? 1 : 0; }

// Every parameter is accepted and ignored (assay has no tunables behind
// glibc's), with glibc's answers: 1, also for a parameter it does not know,
// except M_MXFAST outside 0..80 * sizeof(size_t) / 4 (its fastbin limit), which
// glibc refuses with 0. A program that probes mallopt sees what glibc says.
ASSAY_EXPORT int ASSAY_LIBC(mallopt)(int param, int value) noexcept {
  if (param == M_MXFAST) {
    return value >= 0 && static_cast<size_t>(value) <= 80 * sizeof(size_t) / 4 ? 1 : 0;
  }
  return 1;
}

ASSAY_EXPORT struct mallinfo2 ASSAY_LIBC(mallinfo2)() noexcept {
  assay_stats s;
  stats::GetStats(&s);
  struct mallinfo2 m;
  memset(&m, 0, sizeof(m));
  m.arena = s.segment_mapped;
  m.ordblks = s.segments;
  m.hblks = s.huge_blocks;
  m.hblkhd = s.huge_mapped;
  m.uordblks = s.allocated;
  m.fsmblks = s.thread_cached;
  m.fordblks = s.segment_mapped + s.huge_mapped > s.allocated
                   ? s.segment_mapped + s.huge_mapped - s.allocated
                   : 0;
  m.keepcost = s.free_dirty;
  return m;
}

ASSAY_EXPORT struct mallinfo ASSAY_LIBC(mallinfo)() noexcept {
  const struct mallinfo2 m2 = ASSAY_LIBC(mallinfo2)();
  struct mallinfo m;
  auto clip = [](size_t v) { return static_cast<int>(v > 0x7fffffff ? 0x7fffffff : v); };
  m.arena = clip(m2.arena);
  m.ordblks = clip(m2.ordblks);
  m.smblks = clip(m2.smblks);
  m.hblks = clip(m2.hblks);
  m.hblkhd = clip(m2.hblkhd);
  m.usmblks = clip(m2.usmblks);
  m.fsmblks = clip(m2.fsmblks);
  m.uordblks = clip(m2.uordblks);
  m.fordblks = clip(m2.fordblks);
  m.keepcost = clip(m2.keepcost);
  return m;
}

// C23's sized frees.
ASSAY_EXPORT void ASSAY_LIBC(free_sized)(void* p, size_t) noexcept { Free(p); }
ASSAY_EXPORT void ASSAY_LIBC(free_aligned_sized)(void* p, size_t, size_t) noexcept { Free(p); }

ASSAY_EXPORT const char* assay_version(void) { return "assay " ASSAY_VERSION_STRING; }

ASSAY_EXPORT int assay_comalloc(size_t n, const size_t* sizes, void** out) {
  return heap::Comalloc(n, sizes, out);
}

ASSAY_EXPORT void assay_bulk_free(void** ptrs, size_t n) { heap::BulkFree(ptrs, n); }

ASSAY_EXPORT size_t assay_trim(void) { return heap::Trim(); }

ASSAY_EXPORT void assay_get_stats(assay_stats* out) { stats::GetStats(out); }

}  // extern "C"

// Marks the end of this file's code (see base/entry_points.h).
extern "C" ASSAY_NOINLINE __attribute__((used)) void assay_internal_api_end() { asm volatile(""); }
