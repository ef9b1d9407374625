// The allocator's operations above the fast paths (heap.h) that need no
// file of their own: calloc, aligned allocation, usable size, trim, and the
// one-line report of an invalid pointer. Slow paths: slow_path.cc; realloc:
// realloc.cc; comalloc: comalloc.cc; initialisation and fork: init/init.cc.
#include "alloc/heap.h"

#include <errno.h>
#include <string.h>

#include "alloc/central.h"
#include "alloc/debug_hooks.h"
#include "alloc/huge.h"
#include "alloc/large_cache.h"
#include "alloc/locate.h"
#include "alloc/page_heap.h"
#include "alloc/slow_path.h"
#include "base/os.h"

namespace assay::internal::heap {

void ReportInvalid(const char* what, const void* p) {
  char buf[96];
  char* out = buf;
  const char* prefix = "assay: invalid ";
  for (const char* s = prefix; *s != '\0'; ++s) *out++ = *s;
  for (const char* s = what; *s != '\0' && out < buf + 40; ++s) *out++ = *s;
  for (const char* s = " of 0x"; *s != '\0'; ++s) *out++ = *s;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  bool started = false;
  for (int shift = 60; shift >= 0; shift -= 4) {
    const unsigned digit = (a >> shift) & 0xf;
    if (digit != 0 || started || shift == 0) {
      *out++ = "0123456789abcdef"[digit];
      started = true;
    }
  }
  const char* suffix = " (not a block assay returned, or already freed)\n";
  for (const char* s = suffix; *s != '\0'; ++s) *out++ = *s;
  os::WriteStderr(buf, static_cast<size_t>(out - buf));
  os::Abort();
}

void* Calloc(size_t count, size_t size) {
  size_t total;
  if (ASSAY_UNLIKELY(__builtin_mul_overflow(count, size, &total))) {
    errno = ENOMEM;
    return nullptr;
  }
  if (ASSAY_LIKELY(total <= kMaxSmallSize)) {
    void* p = Malloc(total);
    if (ASSAY_LIKELY(p != nullptr)) memset(p, 0, total);
    return p;
  }
  bool zeroed;
  void* p = AllocAccounted(total, 0, &zeroed);
  if (p != nullptr && !zeroed) memset(p, 0, total);
  return p;
}

void* AlignedAlloc(size_t align, size_t n) {
  // Every class is 16-aligned but the 8-byte one, which is 8-aligned.
  if (align <= kMinAlign) return Malloc(n < align ? align : n);
  bool zeroed;
  return AllocAccounted(n, align, &zeroed);
}

size_t UsableSize(const void* p) {
  if (ASSAY_UNLIKELY(debug::g_on)) return debug::UsableSize(p);
  const Location loc = Locate(p);
  if (loc.home == Home::kInvalid) {
    size_t size;
    if (debug::g_guard && debug::MappedSize(p, &size)) return size;
    ReportInvalid("malloc_usable_size", p);
  }
  return UsableOf(loc, p);
}

size_t Trim() {
  if (ThreadCache* tc = thread_cache::Existing()) thread_cache::FlushAll(tc);
  central::Drain(/*idle_only=*/false);
  bool pending;
  const size_t spans = central::PurgeIdleSpans(/*idle_only=*/false, &pending);
  const uint64_t now = os::NowMs();
  large_cache::Reclaim(now, 0);  // every thread's cached runs, then purged below
  return spans + page_heap::Purge(now, 0, /*wait=*/true) + huge::Release(now, 0);
}

}  // namespace assay::internal::heap
