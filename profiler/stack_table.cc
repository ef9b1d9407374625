// Stack table (stack_table.h): 16 shards, each a chained hash table that
// doubles its buckets when it holds more stacks than buckets.
#include "profiler/stack_table.h"

#include <cstring>

#include "base/lock.h"
#include "profiler/arena.h"
#include "profiler/chain_shard.h"

namespace assay::profiler::stack_table {
namespace {

using internal::LockGuard;
using internal::Mutex;

constexpr size_t kShards = 16;

using Shard = ChainShard<Stack, &Stack::next>;
constinit Shard g_shards[kShards];

uint64_t HashFrames(const uintptr_t* frames, size_t depth, const char* cache) {
  uint64_t h = (0x9E3779B97F4A7C15ull ^ depth) + reinterpret_cast<uintptr_t>(cache);
  for (size_t i = 0; i < depth; ++i) {
    h ^= frames[i];
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
  }
  return h;
}

// The bucket of a stack in a shard of n buckets (the shard took h % kShards).
size_t BucketOf(uint64_t h, size_t n) { return (h / kShards) & (n - 1); }

size_t StackBytes(size_t depth) { return offsetof(Stack, frames) + depth * sizeof(uintptr_t); }

bool Grow(Shard& s) {
  return s.Grow(256, [](const Stack* st, size_t n) { return BucketOf(st->hash, n); });
}

void RemoveLocked(Shard& s, Stack* stack) {
  Stack** link = &s.buckets[BucketOf(stack->hash, s.nbuckets)];
  while (*link != stack) link = &(*link)->next;
  *link = stack->next;
  s.count--;
  arena::Free(stack, StackBytes(stack->depth));
}

}  // namespace

Stack* Intern(const uintptr_t* frames, size_t depth, double objects, double bytes,
              const char* cache) {
  const uint64_t h = HashFrames(frames, depth, cache);
  Shard& s = g_shards[h % kShards];
  LockGuard lock(s.mu);
  if (s.nbuckets != 0) {
    for (Stack* st = s.buckets[BucketOf(h, s.nbuckets)]; st != nullptr; st = st->next) {
      if (st->hash == h && st->depth == depth && st->cache == cache &&
          std::memcmp(st->frames, frames, depth * sizeof(uintptr_t)) == 0) {
        st->refs++;
        st->alloc_samples++;
        st->alloc_objects += objects;
        st->alloc_bytes += bytes;
        return st;
      }
    }
  }
  if (s.count >= s.nbuckets && !Grow(s)) return nullptr;
  Stack* st = static_cast<Stack*>(arena::Alloc(StackBytes(depth)));
  if (st == nullptr) return nullptr;
  st->hash = h;
  st->depth = static_cast<uint32_t>(depth);
  st->refs = 1;
  st->cache = cache;
  st->alloc_samples = 1;
  st->alloc_objects = objects;
  st->alloc_bytes = bytes;
  std::memcpy(st->frames, frames, depth * sizeof(uintptr_t));
  Stack*& head = s.buckets[BucketOf(h, s.nbuckets)];
  st->next = head;
  head = st;
  s.count++;
  return st;
}

void Unref(Stack* stack) {
  Shard& s = g_shards[stack->hash % kShards];
  LockGuard lock(s.mu);
  if (--stack->refs == 0 && stack->alloc_samples == 0) RemoveLocked(s, stack);
}

void ResetCumulative() {
  for (Shard& s : g_shards) {
    LockGuard lock(s.mu);
    for (size_t i = 0; i < s.nbuckets; ++i) {
      for (Stack* st = s.buckets[i]; st != nullptr;) {
        Stack* next = st->next;
        st->alloc_samples = 0;
        st->alloc_objects = 0;
        st->alloc_bytes = 0;
        if (st->refs == 0) RemoveLocked(s, st);
        st = next;
      }
    }
  }
}

void ForEach(void (*fn)(const Stack* stack, void* arg), void* arg) {
  for (Shard& s : g_shards) {
    LockGuard lock(s.mu);
    for (size_t i = 0; i < s.nbuckets; ++i) {
      for (Stack* st = s.buckets[i]; st != nullptr; st = st->next) fn(st, arg);
    }
  }
}

size_t Count() {
  size_t n = 0;
  for (Shard& s : g_shards) {
    LockGuard lock(s.mu);
    n += s.count;
  }
  return n;
}

void LockForFork() { LockShards(g_shards); }
void UnlockAfterFork(bool child) { UnlockShardsAfterFork(g_shards, child); }

}  // namespace assay::profiler::stack_table
