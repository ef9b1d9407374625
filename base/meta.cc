// Metadata bump allocator (meta.h).
#include "base/meta.h"

#include "base/lock.h"
#include "base/os.h"

namespace assay::internal::meta {
namespace {

inline constexpr size_t kChunkSize = 1 << 20;

struct State {
  Mutex mu;
  char* cursor = nullptr;
  char* end = nullptr;
  size_t mapped = 0;
};
constinit State g;

}  // namespace

ASSAY_FIRST_USE void* Alloc(size_t size) {
  size = AlignUp(size, 64);
  LockGuard lock(g.mu);
  if (g.cursor == nullptr || static_cast<size_t>(g.end - g.cursor) < size) {
    const size_t chunk = size > kChunkSize ? AlignUp(size, kPageSize) : kChunkSize;
    char* mem = static_cast<char*>(os::MapAligned(chunk, kPageSize));
    if (mem == nullptr) return nullptr;
    g.cursor = mem;
    g.end = mem + chunk;
    g.mapped += chunk;
  }
  void* p = g.cursor;
  g.cursor += size;
  return p;
}

size_t MappedBytes() {
  LockGuard lock(g.mu);
  return g.mapped;
}

void LockForFork() { g.mu.Lock(); }
void UnlockAfterFork(bool child) { g.mu.UnlockAfterFork(child); }

}  // namespace assay::internal::meta
