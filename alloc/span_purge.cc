// Purging free pages of partly used small spans (span_purge.h).
#include "alloc/span_purge.h"

#include <bit>

#include "alloc/free_link.h"
#include "base/assert.h"
#include "base/bits.h"
#include "base/os.h"

namespace assay::internal::span_purge {
namespace {

// Calls fn(offset) once for every carved block of s overlapping a purged unit,
// in address order.
template <typename Fn>
void ForEachPurgedBlock(const Span* s, uint32_t size, Fn fn) {
  const uint32_t unit = Unit(s);
  const uint32_t carved = s->bump / size;
  uint32_t next = 0;  // first block not yet visited: units share a straddling block
  for (uint64_t m = Purged(s); m != 0; m &= m - 1) {
    const uint32_t u = static_cast<uint32_t>(std::countr_zero(m));
    uint32_t b = u * unit / size;
    uint32_t last = ((u + 1) * unit - 1) / size;
    if (last >= carved) last = carved - 1;
    if (b < next) b = next;
    for (; b <= last; ++b) fn(b * size);
    if (last + 1 > next) next = last + 1;
  }
}

}  // namespace

size_t PurgeFree(Span* s, uint32_t size) {
  const uint32_t unit = Unit(s);
  // Units wholly below bump: every byte of them is in a carved block (bump
  // is a block start), so one is free when its free blocks cover it.
  const uint32_t units = s->bump / unit;
  if (units == 0) return 0;
  uint32_t free_bytes[kMaxUnits] = {};
  auto cover = [&](uint32_t off) {
    const uint32_t end = off + size;
    for (uint32_t u = off / unit; u < units && u * unit < end; ++u) {
      const uint32_t lo = off > u * unit ? off : u * unit;
      const uint32_t hi = end < (u + 1) * unit ? end : (u + 1) * unit;
      free_bytes[u] += hi - lo;
    }
  };
  char* const start = SpanStart(s);
  auto offset_of = [start](const void* b) {
    return static_cast<uint32_t>(static_cast<const char*>(b) - start);
  };
  for (const void* b = s->free_list; b != nullptr; b = link::Load(b)) cover(offset_of(b));
  ForEachPurgedBlock(s, size, cover);
  uint64_t fresh = 0;
  for (uint32_t u = 0; u < units; ++u) {
    ASSAY_ASSERT(free_bytes[u] <= unit);
    if (free_bytes[u] == unit && ((Purged(s) >> u) & 1) == 0) fresh |= uint64_t{1} << u;
  }
  if (fresh == 0) return 0;
  // Off the free list: every block overlapping a fresh unit (all free).
  void* head = nullptr;
  void* tail = nullptr;
  for (void* b = s->free_list; b != nullptr;) {
    void* next = link::Load(b);
    if ((UnitBits(offset_of(b), size, unit) & fresh) == 0) {
      if (tail != nullptr) {
        link::Store(tail, b);
      } else {
        head = b;
      }
      tail = b;
    }
    b = next;
  }
  if (tail != nullptr) link::Store(tail, nullptr);
  s->free_list = head;
  s->aux |= fresh;
  // One madvise per run of adjacent units.
  for (uint64_t m = fresh; m != 0;) {
    const uint32_t u0 = static_cast<uint32_t>(std::countr_zero(m));
    const uint32_t len = static_cast<uint32_t>(std::countr_one(m >> u0));
    os::Purge(start + size_t{u0} * unit, size_t{len} * unit);
    m &= len >= 64 ? 0 : ~(((uint64_t{1} << len) - 1) << u0);
  }
  return static_cast<size_t>(Popcount(fresh)) * unit;
}

size_t Recarve(Span* s, uint32_t size) {
  char* const start = SpanStart(s);
  // Linked in address order ahead of the free list: handed out ascending.
  void* list = s->free_list;
  void* first_pushed = nullptr;
  void* last_pushed = nullptr;
  ForEachPurgedBlock(s, size, [&](uint32_t off) {
    void* b = start + off;
    if (last_pushed != nullptr) {
      link::Store(last_pushed, b);
    } else {
      first_pushed = b;
    }
    last_pushed = b;
  });
  if (last_pushed != nullptr) {
    link::Store(last_pushed, list);
    s->free_list = first_pushed;
  }
  const size_t bytes = static_cast<size_t>(Popcount(Purged(s))) * Unit(s);
  s->aux = 0;
  return bytes;
}

uint32_t CountPurgedBlocks(const Span* s, uint32_t size) {
  uint32_t n = 0;
  ForEachPurgedBlock(s, size, [&n](uint32_t) { ++n; });
  return n;
}

}  // namespace assay::internal::span_purge
