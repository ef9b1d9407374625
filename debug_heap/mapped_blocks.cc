// Mapped debug blocks: the table of their records (user pointer -> record in
// the mapping's first page), the guard-mapping cache of `guard` alone, and
// the lookups the fault handler and the allocator core make in them.
#include "debug_heap/mapped_blocks.h"

#include "alloc/segment.h"
#include "base/lock.h"
#include "base/os.h"

namespace assay::internal::debug {
namespace {

struct MappedRecord {
  Header h;
  char* base;  // the mapping
  size_t length;
  char* user;
  char* end;  // end of the block's memory after user (a guard page, or the mapping's end)
};
static_assert(sizeof(MappedRecord) <= kPageSize - 16);

// User pointer -> record, linear probing, backward-shift deletion. Its
// memory is mapped directly (never malloc). Lock order: g_quarantine_mu
// (quarantine.cc) before g_table_mu.
constinit Mutex g_table_mu;
constinit MappedRecord** g_table = nullptr;
constinit size_t g_table_cap = 0;  // power of two
constinit size_t g_table_count = 0;

size_t Slot(uintptr_t a, size_t cap) {
  return static_cast<size_t>(((a >> 4) * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
}

bool TableInsert(MappedRecord* r) {
  if ((g_table_count + 1) * 2 > g_table_cap) {
    const size_t cap = g_table_cap == 0 ? 512 : g_table_cap * 2;
    auto* t = static_cast<MappedRecord**>(os::MapAligned(cap * sizeof(void*), kPageSize));
    if (t == nullptr) return false;
    for (size_t i = 0; i < g_table_cap; ++i) {
      MappedRecord* old = g_table[i];
      if (old == nullptr) continue;
      size_t s = Slot(reinterpret_cast<uintptr_t>(old->user), cap);
      while (t[s] != nullptr) s = (s + 1) & (cap - 1);
      t[s] = old;
    }
    if (g_table != nullptr) os::Unmap(g_table, g_table_cap * sizeof(void*));
    g_table = t;
    g_table_cap = cap;
  }
  size_t s = Slot(reinterpret_cast<uintptr_t>(r->user), g_table_cap);
  while (g_table[s] != nullptr) s = (s + 1) & (g_table_cap - 1);
  g_table[s] = r;
  g_table_count++;
  return true;
}

size_t TableFindSlot(uintptr_t user) {
  if (g_table_cap == 0) return SIZE_MAX;
  for (size_t s = Slot(user, g_table_cap);; s = (s + 1) & (g_table_cap - 1)) {
    if (g_table[s] == nullptr) return SIZE_MAX;
    if (reinterpret_cast<uintptr_t>(g_table[s]->user) == user) return s;
  }
}

void TableErase(size_t s) {
  g_table[s] = nullptr;
  g_table_count--;
  // Backward shift: move later entries of the run into the hole when their
  // home slot does not lie (cyclically) between the hole and them.
  for (size_t j = (s + 1) & (g_table_cap - 1); g_table[j] != nullptr;
       j = (j + 1) & (g_table_cap - 1)) {
    const size_t home = Slot(reinterpret_cast<uintptr_t>(g_table[j]->user), g_table_cap);
    const bool stays = s <= j ? (home > s && home <= j) : (home > s || home <= j);
    if (stays) continue;
    g_table[s] = g_table[j];
    g_table[j] = nullptr;
    s = j;
  }
}

// `guard` alone (no full debug heap): the mappings of freed small guarded
// blocks are kept for reuse, their guard page still PROT_NONE, so that a
// guarded allocation of the same length makes no system call. Guarded by
// g_table_mu. Not with the full debug heap: there, freed memory is
// quarantined and stale mappings would hide leaks from the scan.
inline constexpr size_t kGuardCacheSlots = 256;
inline constexpr size_t kGuardCacheMaxLength = 6 * kPageSize;
constinit MappedRecord* g_guard_cache[kGuardCacheSlots] = {};
constinit size_t g_guard_cache_count = 0;

char* TakeCachedMapping(size_t length) {
  LockGuard g(g_table_mu);
  for (size_t i = g_guard_cache_count; i-- > 0;) {
    MappedRecord* r = g_guard_cache[i];
    if (r->length != length) continue;
    g_guard_cache[i] = g_guard_cache[--g_guard_cache_count];
    return r->base;
  }
  return nullptr;
}

}  // namespace

void* AllocMapped(size_t n, size_t align, bool guard, size_t capacity) {
  const size_t a = align < kMinAlign ? kMinAlign : align;
  const bool guard_front = guard && a >= kPageSize;
  const bool grown = guard && !guard_front && capacity >= n && capacity > 0;
  const size_t rz = TailRedzone();
  const size_t over = a > kPageSize ? a : 0;
  size_t length;
  if (guard_front) {
    length = 2 * kPageSize + over + AlignUp(n, kPageSize) + kPageSize;
  } else if (grown) {
    length = kPageSize + AlignUp(capacity, kPageSize) + kPageSize;
  } else if (guard) {
    length = kPageSize + AlignUp(n, kPageSize) + kPageSize;
  } else {
    const size_t room = capacity > n ? capacity : n;  // realloc's room to grow in place
    length = kPageSize + AlignUp(room + rz + over, kPageSize);
  }
  if (length < n) return nullptr;  // overflow
  const bool cacheable =
      !g_on && guard && !guard_front && !grown && a == kMinAlign && length <= kGuardCacheMaxLength;
  char* base = cacheable ? TakeCachedMapping(length) : nullptr;
  const bool reused = base != nullptr;
  if (!reused) base = static_cast<char*>(os::MapAligned(length, kPageSize));
  if (base == nullptr) return nullptr;
  char* user;
  char* end;
  uint32_t flags = kMapped;
  if (guard_front) {
    user = reinterpret_cast<char*>(AlignUp(reinterpret_cast<uintptr_t>(base) + 2 * kPageSize, a));
    end = user + AlignUp(n, kPageSize);
    os::ProtectNone(user - kPageSize, kPageSize);
    os::ProtectNone(end, kPageSize);
    flags |= kGuarded | kGuardFront;
  } else if (grown) {
    user = base + kPageSize;
    end = user + AlignUp(capacity, kPageSize);
    os::ProtectNone(end, kPageSize);
    flags |= kGuarded | kGrown;
  } else if (guard) {
    end = base + kPageSize + AlignUp(n, kPageSize);
    user = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(end) - n) & ~(uintptr_t{a} - 1));
    if (!reused) os::ProtectNone(end, kPageSize);
    flags |= kGuarded;
  } else {
    user = reinterpret_cast<char*>(AlignUp(reinterpret_cast<uintptr_t>(base) + kPageSize, a));
    end = base + length;
  }
  auto* r = reinterpret_cast<MappedRecord*>(base);
  r->h = Header{n, nullptr, nullptr, flags, kLive, nullptr, kCanary};
  r->base = base;
  r->length = length;
  r->user = user;
  r->end = end;
  {
    LockGuard g(g_table_mu);
    if (!TableInsert(r)) {
      os::Unmap(base, length);
      return nullptr;
    }
  }
  return user;
}

void ReleaseMapped(const Block& b) {
  auto* r = reinterpret_cast<MappedRecord*>(b.header);
  const bool cacheable = !g_on && (r->h.flags & (kGuarded | kGuardFront)) == kGuarded &&
                         reinterpret_cast<uintptr_t>(r->user) % kPageSize != 0 &&
                         r->length <= kGuardCacheMaxLength;
  {
    LockGuard g(g_table_mu);
    const size_t s = TableFindSlot(reinterpret_cast<uintptr_t>(r->user));
    if (s != SIZE_MAX) TableErase(s);
    if (cacheable && g_guard_cache_count < kGuardCacheSlots) {
      g_guard_cache[g_guard_cache_count++] = r;
      return;
    }
  }
  os::Unmap(r->base, r->length);
}

Block FindMappedExact(uintptr_t user) {
  LockGuard g(g_table_mu);
  const size_t s = TableFindSlot(user);
  if (s == SIZE_MAX) return {};
  MappedRecord* r = g_table[s];
  return {&r->h, r->user, r->end};
}

void ForEachLiveMapped(void (*fn)(const Block& b, void* arg), void* arg) {
  LockGuard g(g_table_mu);
  ForEachLiveMappedLocked(fn, arg);
}

void ForEachLiveMappedLocked(void (*fn)(const Block& b, void* arg), void* arg) {
  for (size_t i = 0; i < g_table_cap; ++i) {
    MappedRecord* r = g_table[i];
    if (r != nullptr && r->h.state == kLive) fn(Block{&r->h, r->user, r->end}, arg);
  }
}

// Used by the fault handler: the mapped block whose memory or guard pages
// hold address a (nullptr header if none). Lock-free reading of the table:
// the process is about to die.
Block FindMappedNear(uintptr_t a, bool* in_guard) {
  for (size_t i = 0; i < g_table_cap; ++i) {
    MappedRecord* r = g_table[i];
    if (r == nullptr) continue;
    const uintptr_t lo = reinterpret_cast<uintptr_t>(r->base);
    if (a < lo || a >= lo + r->length) continue;
    const uintptr_t end = reinterpret_cast<uintptr_t>(r->end);
    *in_guard =
        (r->h.flags & kGuarded) != 0 && (a >= end || a < reinterpret_cast<uintptr_t>(r->user));
    return {&r->h, r->user, r->end};
  }
  return {};
}

bool MappedExtent(const Header* h, uintptr_t* lo, uintptr_t* hi) {
  if ((h->flags & kMapped) == 0) return false;
  const auto* r = reinterpret_cast<const MappedRecord*>(h);
  *lo = reinterpret_cast<uintptr_t>(r->base);
  *hi = *lo + r->length;
  return true;
}

bool MappedSize(const void* p, size_t* size) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (segment_map::Contains(a)) return false;
  LockGuard g(g_table_mu);
  const size_t s = TableFindSlot(a);
  if (s == SIZE_MAX || g_table[s]->h.state != kLive) return false;
  *size = g_table[s]->h.size;
  return true;
}

void LockTableForFork() { g_table_mu.Lock(); }

void UnlockTableAfterFork(bool child) { g_table_mu.UnlockAfterFork(child); }

}  // namespace assay::internal::debug
