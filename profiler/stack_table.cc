// Stack table (stack_table.h): a ShardedTable of 16 shards keyed by the
// frames and the cache label, each chain doubling its buckets when it holds
// more stacks than buckets.
#include "profiler/stack_table.h"

#include <cstring>

#include "base/base.h"
#include "base/lock.h"
#include "base/os.h"
#include "profiler/arena.h"
#include "profiler/profiler_state.h"
#include "profiler/sharded_table.h"

namespace assay::profiler::stack_table {
namespace {

uint64_t HashFrames(const uintptr_t* frames, size_t depth, const char* cache) {
  uint64_t h = (0x9E3779B97F4A7C15ull ^ depth) + reinterpret_cast<uintptr_t>(cache);
  for (size_t i = 0; i < depth; ++i) {
    h ^= frames[i];
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
  }
  return h;
}

// The busy word a thread of this process writes into a set it takes: its
// fork generation, odd (never 0, the free word).
ASSAY_INLINE uint32_t CountsOwnerWord() {
  return (__atomic_load_n(&g_fork_gen, __ATOMIC_RELAXED) << 1) | 1;
}

// Takes a free set's busy word with `mine`; false, with the holder's word
// in *seen, if it is held.
ASSAY_INLINE bool TryTakeCounts(uint32_t* busy, uint32_t* seen, uint32_t mine) {
  *seen = 0;
  return __atomic_compare_exchange_n(busy, seen, mine, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

// Waits for a set's busy word held by another thread (or a parent's, in a
// fork child) and takes it with `mine`; seen is the value the first try
// found. Out of line: inlined, its loop made every sample save and restore
// five more registers.
ASSAY_NOINLINE void WaitForCounts(uint32_t* busy, uint32_t seen, uint32_t mine) {
  for (uint32_t spins = 0;; ++spins) {
    // Free (0), or held in a generation before this process's (mine is
    // odd: never 0).
    if (seen != mine &&
        __atomic_compare_exchange_n(busy, &seen, mine, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      return;
    }
    if (spins < 64) {
      internal::CpuRelax();
    } else {
      internal::os::Yield();
    }
    seen = __atomic_load_n(busy, __ATOMIC_RELAXED);
  }
}

// Holds a set of a stack's counts (its busy word). Taken only for a few
// loads and stores, never around a call: a holder stops only when
// preempted, and a waiter then yields its time slice rather than spin
// through it. The word holds the fork generation it was taken in: a fork
// child, whose copy may hold a lock of a parent's thread that will never
// release it, takes a lock of an earlier generation as free (the counts of
// that one sample may be half raised in the child's copy).
class CountsLock {
 public:
  explicit CountsLock(const StackCounts& c) : busy_(&c.busy) {
    const uint32_t mine = CountsOwnerWord();
    uint32_t seen;
    if (ASSAY_UNLIKELY(!TryTakeCounts(busy_, &seen, mine))) WaitForCounts(busy_, seen, mine);
  }
  ~CountsLock() { __atomic_store_n(busy_, 0, __ATOMIC_RELEASE); }
  CountsLock(const CountsLock&) = delete;
  CountsLock& operator=(const CountsLock&) = delete;

 private:
  uint32_t* busy_;
};

using internal::LockGuard;

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
    RefHeld(st);  // the table's lock keeps it from reaching 0 meanwhile
    AddSampleHeld(st, objects, bytes);
    return st;
  }
  if (!Table::ReserveLocked(s)) return nullptr;
  st = static_cast<Stack*>(arena::Alloc(StackBytes(depth)));
  if (st == nullptr) return nullptr;
  st->hash = h;
  st->depth = static_cast<uint32_t>(depth);
  st->refs = 1;
  st->cache = cache;
  for (StackCounts& c : st->counts) c = StackCounts{};
  StackCounts& mine = st->counts[ThreadStripe()];
  mine.samples = 1;
  mine.objects = objects;
  mine.bytes = bytes;
  std::memcpy(st->frames, frames, depth * sizeof(uintptr_t));
  Table::LinkLocked(s, h, st);
  return st;
}

size_t ThreadStripe() { return tls_reader_shard % kCountStripes; }

namespace {

// Adds one sample to c, whose busy word the caller holds, and lets it go.
ASSAY_INLINE void AddAndRelease(StackCounts& c, double objects, double bytes) {
  c.samples++;
  c.objects += objects;
  c.bytes += bytes;
  __atomic_store_n(&c.busy, 0, __ATOMIC_RELEASE);
}

// AddSampleHeld when the first try found the set busy: out of line, so that
// the uncontended path saves no registers for the wait.
ASSAY_NOINLINE void AddSampleContended(StackCounts& c, uint32_t seen, uint32_t mine, double objects,
                                       double bytes) {
  WaitForCounts(&c.busy, seen, mine);
  AddAndRelease(c, objects, bytes);
}

}  // namespace

void AddSampleHeld(Stack* stack, double objects, double bytes) {
  // CountsLock's protocol, with the wait and what follows it in one call
  // out of line.
  StackCounts& c = stack->counts[ThreadStripe()];
  const uint32_t mine = CountsOwnerWord();
  uint32_t seen;
  if (ASSAY_UNLIKELY(!TryTakeCounts(&c.busy, &seen, mine))) {
    return AddSampleContended(c, seen, mine, objects, bytes);
  }
  AddAndRelease(c, objects, bytes);
}

CumulativeCounts ReadCounts(const Stack* stack) {
  CumulativeCounts sum{0, 0, 0};
  for (const StackCounts& c : stack->counts) {
    CountsLock lock(c);
    sum.samples += c.samples;
    sum.objects += c.objects;
    sum.bytes += c.bytes;
  }
  return sum;
}

void Unref(Stack* stack) { UnrefN(stack, 1); }

void UnrefN(Stack* stack, uint32_t n) {
  // Not the last references: a holder's decrement needs no lock (the count
  // cannot reach 0 here, and lock-free raises come only from holders).
  uint32_t r = __atomic_load_n(&stack->refs, __ATOMIC_RELAXED);
  while (r > n) {
    if (__atomic_compare_exchange_n(&stack->refs, &r, r - n, true, __ATOMIC_RELEASE,
                                    __ATOMIC_RELAXED)) {
      return;
    }
  }
  Shard& s = g_table.ShardFor(stack->hash);
  LockGuard lock(s.mu);
  if (__atomic_sub_fetch(&stack->refs, n, __ATOMIC_ACQ_REL) == 0 &&
      ReadCounts(stack).samples == 0) {
    RemoveLocked(s, stack);
  }
}

void ResetCumulative() {
  g_table.ForEach([](Shard& s, Stack* st) {
    for (StackCounts& c : st->counts) {
      CountsLock lock(c);
      c.samples = 0;
      c.objects = 0;
      c.bytes = 0;
    }
    if (__atomic_load_n(&st->refs, __ATOMIC_ACQUIRE) == 0) RemoveLocked(s, st);
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
