// Profiler arena (arena.h): power-of-two size classes from 32 B to 1 MiB,
// each with a free list, over the allocator's metadata bump allocator.
#include "profiler/arena.h"

#include <bit>
#include <cstring>

#include "alloc/lock.h"
#include "alloc/meta.h"
#include "alloc/os.h"

namespace assay::profiler::arena {
namespace {

using internal::LockGuard;
using internal::Mutex;

constexpr size_t kMinShift = 5;   // 32 B
constexpr size_t kMaxShift = 20;  // 1 MiB
constexpr size_t kClasses = kMaxShift - kMinShift + 1;

struct FreeBlock {
  FreeBlock* next;
};

struct State {
  Mutex mu;
  FreeBlock* free[kClasses] = {};
  size_t footprint = 0;
  size_t in_use = 0;
};
constinit State g;

size_t ClassOf(size_t size) {
  if (size <= (size_t{1} << kMinShift)) return 0;
  return static_cast<size_t>(std::bit_width(size - 1)) - kMinShift;
}

}  // namespace

void* Alloc(size_t size) {
  const size_t cls = ClassOf(size);
  if (cls >= kClasses) {  // very large: straight from the OS
    void* p =
        internal::os::MapAligned(internal::AlignUp(size, internal::kPageSize), internal::kPageSize);
    if (p != nullptr) {
      LockGuard lock(g.mu);
      g.footprint += internal::AlignUp(size, internal::kPageSize);
      g.in_use += internal::AlignUp(size, internal::kPageSize);
    }
    return p;
  }
  const size_t bytes = size_t{1} << (cls + kMinShift);
  void* p;
  {
    LockGuard lock(g.mu);
    FreeBlock* b = g.free[cls];
    if (b != nullptr) {
      g.free[cls] = b->next;
      g.in_use += bytes;
      p = b;
    } else {
      p = nullptr;
    }
  }
  if (p != nullptr) {
    std::memset(p, 0, bytes);
    return p;
  }
  p = internal::meta::Alloc(bytes);  // zeroed by the OS, never handed out before
  if (p != nullptr) {
    LockGuard lock(g.mu);
    g.footprint += bytes;
    g.in_use += bytes;
  }
  return p;
}

void Free(void* p, size_t size) {
  if (p == nullptr) return;
  const size_t cls = ClassOf(size);
  if (cls >= kClasses) {
    const size_t bytes = internal::AlignUp(size, internal::kPageSize);
    internal::os::Unmap(p, bytes);
    LockGuard lock(g.mu);
    g.footprint -= bytes;
    g.in_use -= bytes;
    return;
  }
  LockGuard lock(g.mu);
  FreeBlock* b = static_cast<FreeBlock*>(p);
  b->next = g.free[cls];
  g.free[cls] = b;
  g.in_use -= size_t{1} << (cls + kMinShift);
}

size_t FootprintBytes() {
  LockGuard lock(g.mu);
  return g.footprint;
}

size_t InUseBytes() {
  LockGuard lock(g.mu);
  return g.in_use;
}

void LockForFork() { g.mu.Lock(); }
void UnlockAfterFork(bool child) { g.mu.UnlockAfterFork(child); }

}  // namespace assay::profiler::arena
