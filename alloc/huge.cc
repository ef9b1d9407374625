// Huge blocks (huge.h): an open-addressing table (linear probing, backward
// shift deletion) of {address -> mapping}, grown by doubling.
#include "alloc/huge.h"

#include "alloc/segment.h"
#include "base/assert.h"
#include "base/layout.h"
#include "base/lock.h"
#include "base/options.h"
#include "base/os.h"
#include "base/probes.h"

namespace assay::internal::huge {
namespace {

struct Entry {
  uintptr_t ptr;    // the block's address (0: empty slot)
  uintptr_t base;   // start of its mapping
  size_t map_size;  // bytes mapped for the block: its usable end is base + map_size
  size_t slack;     // bytes mapped after that, kept with the block (the unused
                    // rest of a reused cached range), cached again with it
  bool sampled;     // carries a sample point
};

// Freed mappings kept for reuse (most recent last). A huge block that is
// freed and allocated again — a common pattern for big buffers — then costs
// neither mmap/munmap nor page faults.
inline constexpr size_t kCacheSlots = 32;
// The budget trades page faults for resident memory: cached ranges keep the
// pages their blocks wrote. On bigalloc (blocks of 64 KiB-32 MiB) 256 MiB
// meant 31k faults and 73 MiB peak RSS, 192 MiB 81k faults and 56 MiB
// (jemalloc: 2.4M faults, 52 MiB; tcmalloc: 151k faults, 281 MiB), 160 MiB
// 138k faults and 54 MiB.
inline constexpr size_t kCacheMaxBytes = 192 << 20;
// A cached range serves a request whole up to this many times its size.
inline constexpr size_t kSplitRatio = 16;

struct Cached {
  uintptr_t base;
  size_t size;
  uint64_t freed_at_ms;
};

// Invariants (AssertValid), under mu: count == stats.blocks == live slots,
// each reachable from its hash by probing, and 2 * count <= capacity;
// stats.mapped == sum of (map_size + slack), every entry's range mapped;
// stats.cached == sum of cache[0..ncached).size <= kCacheMaxBytes.
struct State {
  Mutex mu;
  Cached cache[kCacheSlots] = {};
  size_t ncached = 0;  // <= kCacheSlots
  Entry* table = nullptr;
  size_t capacity = 0;  // slots, a power of two (0 before the first block)
  size_t count = 0;
  Stats stats{};
};
constinit State g;

ASSAY_INLINE size_t Hash(uintptr_t p) {
  return static_cast<size_t>((p >> 12) * 0x9E3779B97F4A7C15ull);
}

size_t FindSlot(uintptr_t p) {  // slot of p, or of the empty slot where it would go
  const size_t mask = g.capacity - 1;
  size_t i = Hash(p) & mask;
  while (g.table[i].ptr != 0 && g.table[i].ptr != p) i = (i + 1) & mask;
  return i;
}

bool Grow() {
  const size_t cap = g.capacity == 0 ? 256 : g.capacity * 2;
  Entry* table = static_cast<Entry*>(os::MapAligned(cap * sizeof(Entry), kPageSize));
  if (table == nullptr) return false;
  Entry* old = g.table;
  const size_t old_cap = g.capacity;
  g.table = table;
  g.capacity = cap;
  for (size_t i = 0; i < old_cap; ++i) {
    if (old[i].ptr != 0) g.table[FindSlot(old[i].ptr)] = old[i];
  }
  if (old != nullptr) os::Unmap(old, old_cap * sizeof(Entry));
  g.stats.table_bytes = cap * sizeof(Entry);
  return true;
}

bool InsertLocked(const Entry& e) {
  if ((g.count + 1) * 2 > g.capacity && !Grow()) return false;
  ASSAY_ASSERT(e.ptr != 0 && !segment_map::Contains(e.ptr));
  ASSAY_ASSERT(g.table[FindSlot(e.ptr)].ptr == 0);  // not in the table yet
  g.table[FindSlot(e.ptr)] = e;
  g.count++;
  g.stats.blocks++;
  g.stats.mapped += e.map_size + e.slack;
  return true;
}

// Removes p's entry into *out; false if p is not in the table.
bool RemoveLocked(uintptr_t p, Entry* out) {
  if (g.capacity == 0) return false;
  const size_t mask = g.capacity - 1;
  size_t i = FindSlot(p);
  if (g.table[i].ptr == 0) return false;
  *out = g.table[i];
  // Backward shift: pull later entries of the probe run into the hole.
  size_t hole = i;
  for (size_t j = (i + 1) & mask; g.table[j].ptr != 0; j = (j + 1) & mask) {
    const size_t home = Hash(g.table[j].ptr) & mask;
    const bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
    if (movable) {
      g.table[hole] = g.table[j];
      hole = j;
    }
  }
  g.table[hole] = Entry{};
  g.count--;
  g.stats.blocks--;
  g.stats.mapped -= out->map_size + out->slack;
  return true;
}

// Takes the cached mapping to reuse for `size` bytes at `align`: the
// smallest that is large enough, else (page alignment only) the largest,
// which the caller grows with mremap; its resident pages come along either
// way, so the new block does not fault them in again. 0 if none.
Cached TakeCachedLocked(size_t size, size_t align) {
  size_t best = g.ncached;
  for (size_t i = 0; i < g.ncached; ++i) {
    const Cached& c = g.cache[i];
    if ((c.base & (align - 1)) != 0) continue;
    const bool fits = c.size >= size;
    if (best == g.ncached) {
      best = i;
    } else if (fits && (g.cache[best].size < size || c.size < g.cache[best].size)) {
      best = i;  // a smaller fitting one
    } else if (!fits && g.cache[best].size < size && c.size > g.cache[best].size) {
      best = i;  // none fits yet: the largest
    }
  }
  if (best == g.ncached) return Cached{};
  const Cached c = g.cache[best];
  if (c.size < size && align > kPageSize) return Cached{};  // mremap keeps only page alignment
  g.cache[best] = g.cache[--g.ncached];
  g.stats.cached -= c.size;
  return c;
}

// Keeps a freed range of pages for reuse (or, with decay_ms=0 or when it is
// too big, gives it back at once); over the slot or byte budget the oldest
// ranges go back to the OS.
void CacheLocked(uintptr_t base, size_t size) {
  auto unmap = [](uintptr_t b, size_t n) {
    g.stats.unmapped_total += n;
    ASSAY_PROBE2(heap_shrink, b, n);
    os::Unmap(reinterpret_cast<void*>(b), n);
  };
  if (GetOptions().decay_ms == 0 || size > kCacheMaxBytes / 4) {
    unmap(base, size);
    return;
  }
  if (g.ncached == kCacheSlots) {  // evict the oldest
    const Cached old = g.cache[0];
    for (size_t i = 1; i < g.ncached; ++i) g.cache[i - 1] = g.cache[i];
    g.ncached--;
    g.stats.cached -= old.size;
    unmap(old.base, old.size);
  }
  g.cache[g.ncached++] = Cached{base, size, os::NowMs()};
  g.stats.cached += size;
  while (g.stats.cached > kCacheMaxBytes) {  // over budget: drop the oldest
    const Cached old = g.cache[0];
    for (size_t i = 1; i < g.ncached; ++i) g.cache[i - 1] = g.cache[i];
    g.ncached--;
    g.stats.cached -= old.size;
    unmap(old.base, old.size);
  }
}

// Fits a cached mapping to `size` bytes: as it is when large enough (the
// caller splits off a long tail), else grown with mremap, which may move it. Returns the base, or 0
// on failure (the mapping is then gone).
uintptr_t FitCached(Cached c, size_t size) {
  if (c.size >= size) return c.base;  // a tail beyond size goes back to the cache
  void* q = os::Remap(reinterpret_cast<void*>(c.base), c.size, size);
  if (q == nullptr) {
    os::Unmap(reinterpret_cast<void*>(c.base), c.size);
    return 0;
  }
  ASSAY_PROBE2(heap_grow, q, size - c.size);
  return reinterpret_cast<uintptr_t>(q);
}

}  // namespace

void* Alloc(size_t n, size_t align, bool* zeroed) {
  if (align < kPageSize) align = kPageSize;
  const size_t map_size = AlignUp(n == 0 ? 1 : n, kPageSize);  // even 0 bytes get a page
  if (map_size < n) return nullptr;
  Cached c;
  {
    LockGuard lock(g.mu);
    c = TakeCachedLocked(map_size, align);
  }
  if (c.base != 0) {
    // The block keeps the whole range (the part beyond map_size as its
    // slack: not usable, cached again with the block) unless the range is
    // more than kSplitRatio times the request; then the rest is split off
    // and stays cached. Splitting every tail over 1/8 looked thrifty but cost
    // faults and memory: a split tail's start lies inside an old block, whose
    // pages the new block's head (the part programs write densely) mostly
    // finds unmapped, while the untouched slack of a kept range costs address
    // space only. Measured on bigalloc: 553k page faults and 67 MiB peak RSS
    // with tails over 1/8 split, 31k faults and 72 MiB with this rule.
    const size_t kept = c.size >= map_size && c.size / kSplitRatio <= map_size ? c.size : map_size;
    const uintptr_t base = FitCached(c, map_size);
    LockGuard lock(g.mu);
    if (base != 0 && c.size > kept) CacheLocked(base + kept, c.size - kept);
    if (base != 0 && InsertLocked(Entry{base, base, map_size, kept - map_size, false})) {
      *zeroed = false;
      return reinterpret_cast<void*>(base);
    }
    if (base != 0) os::Unmap(reinterpret_cast<void*>(base), kept);
    return nullptr;
  }
  void* p = os::MapAligned(map_size, align);
  if (p == nullptr) return nullptr;
  ASSAY_PROBE2(heap_grow, p, map_size);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  LockGuard lock(g.mu);
  if (!InsertLocked(Entry{a, a, map_size, 0, false})) {
    os::Unmap(p, map_size);
    return nullptr;
  }
  *zeroed = true;
  return p;
}

bool Free(void* p) {
  LockGuard lock(g.mu);
  Entry e;
  if (!RemoveLocked(reinterpret_cast<uintptr_t>(p), &e)) return false;
  CacheLocked(e.base, e.map_size + e.slack);
  return true;
}

size_t Release(uint64_t now_ms, uint64_t age_ms) {
  Cached doomed[kCacheSlots];
  size_t ndoomed = 0;
  {
    LockGuard lock(g.mu);
    size_t kept = 0;
    for (size_t i = 0; i < g.ncached; ++i) {
      if (now_ms - g.cache[i].freed_at_ms >= age_ms) {
        doomed[ndoomed++] = g.cache[i];
        g.stats.cached -= g.cache[i].size;
        g.stats.unmapped_total += g.cache[i].size;
      } else {
        g.cache[kept++] = g.cache[i];
      }
    }
    g.ncached = kept;
  }
  size_t released = 0;
  for (size_t i = 0; i < ndoomed; ++i) {
    ASSAY_PROBE2(heap_shrink, doomed[i].base, doomed[i].size);
    os::Unmap(reinterpret_cast<void*>(doomed[i].base), doomed[i].size);
    released += doomed[i].size;
  }
  return released;
}

ASSAY_FIRST_USE size_t CachedBytes() { return __atomic_load_n(&g.stats.cached, __ATOMIC_RELAXED); }

size_t UsableSize(const void* p, bool* sampled) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  LockGuard lock(g.mu);
  if (g.capacity == 0) return 0;
  const Entry& e = g.table[FindSlot(a)];
  if (sampled != nullptr) *sampled = e.sampled;
  return e.ptr == 0 ? 0 : e.base + e.map_size - e.ptr;
}

void SetSampled(const void* p) {
  LockGuard lock(g.mu);
  if (g.capacity == 0) return;
  Entry& e = g.table[FindSlot(reinterpret_cast<uintptr_t>(p))];
  if (e.ptr != 0) e.sampled = true;
}

void* Resize(void* p, size_t n) {
  const size_t new_size = AlignUp(n, kPageSize);
  if (new_size < n) return nullptr;
  Entry e;
  {
    LockGuard lock(g.mu);
    if (!RemoveLocked(reinterpret_cast<uintptr_t>(p), &e)) return nullptr;
  }
  // The entry is gone before the old range can be reused by anyone.
  void* q = e.base == e.ptr
                ? os::Remap(reinterpret_cast<void*>(e.base), e.map_size + e.slack, new_size)
                : nullptr;
  Entry next = e;
  if (q != nullptr) {
    next =
        Entry{reinterpret_cast<uintptr_t>(q), reinterpret_cast<uintptr_t>(q), new_size, 0, false};
  }
  LockGuard lock(g.mu);
  if (!InsertLocked(next)) {
    // The table could not grow: impossible after a removal (count only
    // returns to what it was), but never lose the block.
    os::WriteStderr("assay: huge table insert failed after resize\n");
    os::Abort();
  }
  return q;
}

Stats GetStats() {
  LockGuard lock(g.mu);
  return g.stats;
}

void ForEach(void (*fn)(void* p, size_t usable, void* arg), void* arg) {
  LockGuard lock(g.mu);
  for (size_t i = 0; i < g.capacity; ++i) {
    const Entry& e = g.table[i];
    if (e.ptr != 0) fn(reinterpret_cast<void*>(e.ptr), e.base + e.map_size - e.ptr, arg);
  }
}

void AssertValid() {
  LockGuard lock(g.mu);
  ASSAY_CHECK((g.capacity == 0) == (g.table == nullptr));
  ASSAY_CHECK(g.capacity == 0 || IsPowerOfTwo(g.capacity));
  ASSAY_CHECK(g.count * 2 <= g.capacity);
  ASSAY_CHECK(g.stats.table_bytes == g.capacity * sizeof(Entry));
  size_t live = 0;
  size_t mapped = 0;
  for (size_t i = 0; i < g.capacity; ++i) {
    const Entry& e = g.table[i];
    if (e.ptr == 0) continue;
    ++live;
    ASSAY_CHECK(FindSlot(e.ptr) == i);  // reachable by probing: no hole, no duplicate
    ASSAY_CHECK(e.base % kPageSize == 0 && e.map_size % kPageSize == 0 && e.slack % kPageSize == 0);
    ASSAY_CHECK(e.map_size != 0 && e.ptr >= e.base && e.ptr < e.base + e.map_size);
    ASSAY_CHECK(!segment_map::Contains(e.ptr));
    // The entry's sizes are its mapping's: every page of it is mapped.
    ASSAY_CHECK(os::IsMapped(reinterpret_cast<void*>(e.base), e.map_size + e.slack));
    mapped += e.map_size + e.slack;
  }
  ASSAY_CHECK(live == g.count && live == g.stats.blocks);
  ASSAY_CHECK(mapped == g.stats.mapped);
  ASSAY_CHECK(g.ncached <= kCacheSlots);
  size_t cached = 0;
  for (size_t i = 0; i < g.ncached; ++i) {
    const Cached& c = g.cache[i];
    ASSAY_CHECK(c.base % kPageSize == 0 && c.size % kPageSize == 0 && c.size != 0);
    ASSAY_CHECK(os::IsMapped(reinterpret_cast<void*>(c.base), c.size));
    cached += c.size;
  }
  ASSAY_CHECK(cached == g.stats.cached && cached <= kCacheMaxBytes);
}

ASSAY_STARTUP void DescribeLayout(AssayLayout* l) {
  l->huge_table_addr = reinterpret_cast<uint64_t>(&g.table);
  l->huge_capacity_addr = reinterpret_cast<uint64_t>(&g.capacity);
  l->huge_record_size = sizeof(Entry);
  l->huge_ptr_off = offsetof(Entry, ptr);
  l->huge_base_off = offsetof(Entry, base);
  l->huge_map_size_off = offsetof(Entry, map_size);
  l->huge_sampled_off = offsetof(Entry, sampled);
  l->huge_cache_addr = reinterpret_cast<uint64_t>(&g.cache[0]);
  l->huge_cache_count_addr = reinterpret_cast<uint64_t>(&g.ncached);
  l->huge_cache_record_size = sizeof(Cached);
  l->huge_cache_base_off = offsetof(Cached, base);
  l->huge_cache_size_off = offsetof(Cached, size);
}

void LockForFork() { g.mu.Lock(); }
void UnlockAfterFork(bool child) { g.mu.UnlockAfterFork(child); }

}  // namespace assay::internal::huge
