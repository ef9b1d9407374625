// Per-thread stack cache (stack_cache.h): 32 direct-mapped slots, each an
// interned Stack* the slot holds a reference to (so it is never freed while
// cached), indexed by a cheap mix of the two innermost frames and compared
// frame by frame against the stack's own copy.
#include "profiler/stack_cache.h"

#include <cstring>

namespace assay::profiler::stack_cache {
namespace {

constexpr size_t kSlots = 32;

// Plain data, zero-initialised: no constructor runs.
struct Cache {
  Stack* slot[kSlots];
  bool off;  // flushed at thread exit
};
__thread Cache tls_stacks __attribute__((tls_model("initial-exec")));

size_t SlotOf(const uintptr_t* frames, size_t depth) {
  const uint64_t a = depth > 0 ? frames[0] : 0;
  const uint64_t b = depth > 1 ? frames[1] : 0;
  return ((a ^ (b * 0x9E3779B97F4A7C15ull) ^ depth) * 0xff51afd7ed558ccdull) >> (64 - 5);
}
static_assert(kSlots == 32);

bool Same(const Stack* st, const uintptr_t* frames, size_t depth, const char* cache) {
  // memcmp: libc's vector compare takes ~30 instructions for 13 frames, a
  // frame-by-frame loop ~80.
  return st->depth == depth && st->cache == cache &&
         std::memcmp(st->frames, frames, depth * sizeof(uintptr_t)) == 0;
}

}  // namespace

Stack* Intern(const uintptr_t* frames, size_t depth, double objects, double bytes,
              const char* cache) {
  Cache& c = tls_stacks;
  if (c.off) return stack_table::Intern(frames, depth, objects, bytes, cache);
  Stack*& slot = c.slot[SlotOf(frames, depth)];
  Stack* st = slot;
  if (st != nullptr && Same(st, frames, depth, cache)) {
    stack_table::RefHeld(st);  // the slot holds one: no lock
    stack_table::AddSampleHeld(st, objects, bytes);
    return st;
  }
  st = stack_table::Intern(frames, depth, objects, bytes, cache);
  if (st == nullptr) return nullptr;
  stack_table::RefHeld(st);  // the slot's
  Stack* old = slot;
  slot = st;
  if (old != nullptr) stack_table::Unref(old);
  return st;
}

void FlushThread() {
  Cache& c = tls_stacks;
  c.off = true;
  for (Stack*& st : c.slot) {
    if (st != nullptr) stack_table::Unref(st);
    st = nullptr;
  }
}

}  // namespace assay::profiler::stack_cache
