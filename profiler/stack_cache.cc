// Per-thread stack cache (stack_cache.h): 32 direct-mapped slots, each an
// interned Stack* the slot holds a reference to (so it is never freed while
// cached), indexed by a cheap mix of the two innermost frames and compared
// frame by frame against the stack's own copy.
#include "profiler/stack_cache.h"

#include <cstring>

#include "base/base.h"

namespace assay::profiler::stack_cache {
namespace {

constexpr size_t kSlots = 32;
// A slot takes references from its stack a bundle at a time
// (stack_table::kRefBundle); it gives kBundle back when frees have returned
// more than 2 * kBundle to it.
constexpr uint32_t kBundle = stack_table::kRefBundle;

// Plain data, zero-initialised: no constructor runs.
struct Cache {
  Stack* slot[kSlots];
  uint32_t spare[kSlots];  // references slot[i] holds beyond its own, to hand out
  bool off;                // flushed at thread exit
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
              const char* cache, uint8_t* slot) {
  Cache& c = tls_stacks;
  const size_t i = SlotOf(frames, depth);
  *slot = static_cast<uint8_t>(i);
  if (c.off) return stack_table::Intern(frames, depth, objects, bytes, cache);
  Stack* st = c.slot[i];
  if (st != nullptr && Same(st, frames, depth, cache)) {
    stack_table::HandOutHeld(st, &c.spare[i], objects, bytes);  // the slot holds one
    return st;
  }
  st = stack_table::Intern(frames, depth, objects, bytes, cache);  // with the caller's reference
  if (st == nullptr) return nullptr;
  stack_table::RefHeld(st);  // the slot's own
  Stack* const old = c.slot[i];
  const uint32_t old_spare = c.spare[i];
  c.slot[i] = st;
  c.spare[i] = 0;
  if (old != nullptr) stack_table::UnrefN(old, 1 + old_spare);
  return st;
}

void Release(Stack* stack, uint8_t slot) {
  Cache& c = tls_stacks;
  if (!c.off) {
    const size_t i = slot % kSlots;
    if (c.slot[i] == stack) {
      if (ASSAY_UNLIKELY(++c.spare[i] > 2 * kBundle)) {
        c.spare[i] -= kBundle;
        stack_table::UnrefN(stack, kBundle);  // the slot keeps its own: never the last
      }
      return;
    }
  }
  stack_table::Unref(stack);
}

void FlushThread() {
  Cache& c = tls_stacks;
  c.off = true;
  for (size_t i = 0; i < kSlots; ++i) {
    if (c.slot[i] != nullptr) stack_table::UnrefN(c.slot[i], 1 + c.spare[i]);
    c.slot[i] = nullptr;
    c.spare[i] = 0;
  }
}

}  // namespace assay::profiler::stack_cache
