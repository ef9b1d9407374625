// The leak scan's marking (leak_scan.h).
#include "debug_heap/leak_scan.h"

#include <algorithm>

#include "alloc/segment.h"

namespace assay::internal::debug::leak {
namespace {

void ScanWords(Scan& s, uintptr_t lo, uintptr_t hi) {
  lo = AlignUp(lo, sizeof(uintptr_t));
  for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t)) {
    MarkWord(s, *reinterpret_cast<const uintptr_t*>(a));
  }
}

}  // namespace

ptrdiff_t BlockAt(const Scan& s, uintptr_t a) {
  if (a < s.min_user || a > s.max_end) return -1;
  const Block* b = s.blocks.data;
  const Block* end = b + s.blocks.size;
  const Block* it = std::upper_bound(b, end, a, [](uintptr_t v, const Block& x) {
    return v < reinterpret_cast<uintptr_t>(x.user);
  });
  if (it == b) return -1;
  --it;
  const uint64_t size = it->header->size;
  if (a - reinterpret_cast<uintptr_t>(it->user) >= (size == 0 ? 1 : size)) return -1;
  return it - b;
}

void Reach(Scan& s, size_t i) {
  if (s.state.data[i] != kUnreached) return;
  s.state.data[i] = kReached;
  if (!s.work.Push(static_cast<uint32_t>(i))) s.out_of_memory = true;
}

void MarkWord(Scan& s, uintptr_t v) {
  const ptrdiff_t i = BlockAt(s, v);
  if (i >= 0) Reach(s, static_cast<size_t>(i));
}

void ScanRoot(Scan& s, uintptr_t lo, uintptr_t hi) {
  if (lo >= hi) return;
  s.root_bytes += hi - lo;
  const Range* ex = s.excluded.data;
  const Range* ex_end = ex + s.excluded.size;
  const Range* it =
      std::lower_bound(ex, ex_end, lo, [](const Range& r, uintptr_t v) { return r.hi <= v; });
  while (lo < hi) {
    if (it == ex_end || it->lo >= hi) {
      ScanWords(s, lo, hi);
      return;
    }
    if (it->lo > lo) ScanWords(s, lo, it->lo);
    if (it->hi > lo) lo = it->hi;
    ++it;
  }
}

// Scans [lo, hi) but the allocator's segments (the kernel may list a segment
// merged with its neighbours: checked chunk by chunk).
void ScanOutsideSegments(Scan& s, uintptr_t lo, uintptr_t hi) {
  while (lo < hi) {
    const uintptr_t next = (lo & ~(uintptr_t{kSegmentSize} - 1)) + kSegmentSize;
    const uintptr_t end = next < hi ? next : hi;
    if (!segment_map::Contains(lo)) ScanRoot(s, lo, end);
    lo = end;
  }
}

void Drain(Scan& s) {
  while (s.work.size > 0) {
    const Block& b = s.blocks.data[s.work.data[--s.work.size]];
    const uintptr_t lo = reinterpret_cast<uintptr_t>(b.user);
    ScanWords(s, lo, lo + b.header->size);
  }
}

// valgrind's cliques (memcheck's mc_leakcheck.c): in address order, each
// block still unreached leads a clique: every unreached block it reaches,
// directly or through others, other than itself, becomes an indirect leak
// (an earlier leader too: the cliques merge). What stays unreached is a
// direct leak. So a block is direct iff no other leaked block points to it,
// except in a cycle that nothing else points to, where the member with the
// lowest address is direct and the rest indirect (as valgrind reports it).
void SplitDirectIndirect(Scan& s) {
  for (size_t leader = 0; leader < s.blocks.size; ++leader) {
    if (s.state.data[leader] != kUnreached) continue;
    s.work.size = 0;
    s.work.Push(static_cast<uint32_t>(leader));
    while (s.work.size > 0) {
      const Block& b = s.blocks.data[s.work.data[--s.work.size]];
      const uintptr_t lo = AlignUp(reinterpret_cast<uintptr_t>(b.user), sizeof(uintptr_t));
      const uintptr_t hi = reinterpret_cast<uintptr_t>(b.user) + b.header->size;
      for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t)) {
        const ptrdiff_t i = BlockAt(s, *reinterpret_cast<const uintptr_t*>(a));
        if (i < 0 || static_cast<size_t>(i) == leader || s.state.data[i] != kUnreached) continue;
        s.state.data[i] = kIndirect;
        s.work.Push(static_cast<uint32_t>(i));
      }
    }
  }
}

}  // namespace assay::internal::debug::leak
