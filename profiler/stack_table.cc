// Stack table (stack_table.h): a ShardedTable of 16 shards keyed by the
// frames and the cache label, each chain doubling its buckets when it holds
// more stacks than buckets.
#include "profiler/stack_table.h"

#include <cstring>

#include "base/lock.h"
#include "profiler/arena.h"
#include "profiler/sharded_table.h"

namespace assay::profiler::stack_table {
namespace {

using internal::LockGuard;

uint64_t HashFrames(const uintptr_t* frames, size_t depth, const char* cache) {
  uint64_t h = (0x9E3779B97F4A7C15ull ^ depth) + reinterpret_cast<uintptr_t>(cache);
  for (size_t i = 0; i < depth; ++i) {
    h ^= frames[i];
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
  }
  return h;
}

// h % kShards picks the shard, the rest of the hash the bucket.
struct StackTraits {
  using Node = Stack;
  static constexpr Stack* Stack::*kNext = &Stack::next;
  static constexpr size_t kShards = 16;
  static constexpr size_t kInitialBuckets = 256;
  static uint64_t HashOf(const Stack* st) { return st->hash; }
  static size_t ShardOf(uint64_t h) { return h % kShards; }
  static size_t BucketOf(uint64_t h, size_t n) { return (h / kShards) & (n - 1); }
};

using Table = ShardedTable<StackTraits>;
using Shard = Table::Shard;
constinit Table g_table;

size_t StackBytes(size_t depth) { return offsetof(Stack, frames) + depth * sizeof(uintptr_t); }

void RemoveLocked(Shard& s, Stack* stack) {
  Table::UnlinkLocked(s, stack);
  arena::Free(stack, StackBytes(stack->depth));
}

}  // namespace

Stack* Intern(const uintptr_t* frames, size_t depth, double objects, double bytes,
              const char* cache) {
  const uint64_t h = HashFrames(frames, depth, cache);
  Shard& s = g_table.ShardFor(h);
  LockGuard lock(s.mu);
  Stack* st = Table::FindLocked(s, h, [&](const Stack* x) {
    return x->hash == h && x->depth == depth && x->cache == cache &&
           std::memcmp(x->frames, frames, depth * sizeof(uintptr_t)) == 0;
  });
  if (st != nullptr) {
    st->refs++;
    st->alloc_samples++;
    st->alloc_objects += objects;
    st->alloc_bytes += bytes;
    return st;
  }
  if (!Table::ReserveLocked(s)) return nullptr;
  st = static_cast<Stack*>(arena::Alloc(StackBytes(depth)));
  if (st == nullptr) return nullptr;
  st->hash = h;
  st->depth = static_cast<uint32_t>(depth);
  st->refs = 1;
  st->cache = cache;
  st->alloc_samples = 1;
  st->alloc_objects = objects;
  st->alloc_bytes = bytes;
  std::memcpy(st->frames, frames, depth * sizeof(uintptr_t));
  Table::LinkLocked(s, h, st);
  return st;
}

void Unref(Stack* stack) {
  Shard& s = g_table.ShardFor(stack->hash);
  LockGuard lock(s.mu);
  if (--stack->refs == 0 && stack->alloc_samples == 0) RemoveLocked(s, stack);
}

void ResetCumulative() {
  g_table.ForEach([](Shard& s, Stack* st) {
    st->alloc_samples = 0;
    st->alloc_objects = 0;
    st->alloc_bytes = 0;
    if (st->refs == 0) RemoveLocked(s, st);
  });
}

void ForEach(void (*fn)(const Stack* stack, void* arg), void* arg) {
  g_table.ForEach([fn, arg](Shard&, const Stack* st) { fn(st, arg); });
}

size_t Count() { return g_table.Count(); }

void AssertValid() { g_table.AssertValid(); }

void LockForFork() { g_table.LockForFork(); }
void UnlockAfterFork(bool child) { g_table.UnlockAfterFork(child); }

}  // namespace assay::profiler::stack_table
