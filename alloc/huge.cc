// Huge blocks (huge.h): an open-addressing table (linear probing, backward
// shift deletion) of {address -> mapping}, grown by doubling.
#include "alloc/huge.h"

#include "alloc/lock.h"
#include "alloc/os.h"

namespace assay::internal::huge {
namespace {

struct Entry {
  uintptr_t ptr;    // the block's address (0: empty slot)
  uintptr_t base;   // start of its mapping
  size_t map_size;  // bytes mapped
};

struct State {
  Mutex mu;
  Entry* table = nullptr;
  size_t capacity = 0;  // slots, a power of two
  size_t count = 0;
  Stats stats{};
};
constinit State g;

ASSAY_INLINE size_t Hash(uintptr_t p) { return static_cast<size_t>((p >> 12) * 0x9E3779B97F4A7C15ull); }

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
  g.table[FindSlot(e.ptr)] = e;
  g.count++;
  g.stats.blocks++;
  g.stats.mapped += e.map_size;
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
  g.stats.mapped -= out->map_size;
  return true;
}

}  // namespace

void* Alloc(size_t n, size_t align) {
  if (align < kPageSize) align = kPageSize;
  const size_t map_size = AlignUp(n, kPageSize);
  if (map_size < n) return nullptr;
  void* p = os::MapAligned(map_size, align);
  if (p == nullptr) return nullptr;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  LockGuard lock(g.mu);
  if (!InsertLocked(Entry{a, a, map_size})) {
    os::Unmap(p, map_size);
    return nullptr;
  }
  return p;
}

bool Free(void* p) {
  Entry e;
  {
    LockGuard lock(g.mu);
    if (!RemoveLocked(reinterpret_cast<uintptr_t>(p), &e)) return false;
    g.stats.unmapped_total += e.map_size;
  }
  os::Unmap(reinterpret_cast<void*>(e.base), e.map_size);
  return true;
}

size_t UsableSize(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  LockGuard lock(g.mu);
  if (g.capacity == 0) return 0;
  const Entry& e = g.table[FindSlot(a)];
  return e.ptr == 0 ? 0 : e.base + e.map_size - e.ptr;
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
  void* q = e.base == e.ptr ? os::Remap(reinterpret_cast<void*>(e.base), e.map_size, new_size)
                            : nullptr;
  Entry next = e;
  if (q != nullptr) {
    next = Entry{reinterpret_cast<uintptr_t>(q), reinterpret_cast<uintptr_t>(q), new_size};
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

void LockForFork() { g.mu.Lock(); }
void UnlockAfterFork(bool child) {
  if (child) g.mu.ResetAfterFork(); else g.mu.Unlock();
}

}  // namespace assay::internal::huge
