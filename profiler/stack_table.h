// The stack table: captured stacks, hash-consed so a million samples from
// one site share one Stack, reference-counted by the tracking entries that
// point at them, and carrying the cumulative allocation estimates of their
// site (the `alloc` profile). Memory comes from the profiler arena.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/base.h"

namespace assay::profiler {

// A stack's cumulative counts, one set of several (Stack::counts): each
// thread adds its samples to the set its reader shard names (ThreadStripe),
// under that set's spin lock, on a cache line of its own. With one set, at
// rate=1 two threads sampling one site took turns at its line and its lock
// (7-9% of audit mode's time on two cores; with them apart, the line stays
// in the sampling core's cache). Readers sum the sets.
struct alignas(64) StackCounts {
  // Nonzero while a thread adds a sample to the counts below, reads or zeroes
  // them (2 * fork generation + 1: stack_table.cc's CountsLock): a spin lock
  // held for three stores.
  mutable uint32_t busy;
  // Cumulative since start or the last reset, under busy: raised without the
  // shard lock by cache hits (AddSampleHeld), zeroed by ResetCumulative, read
  // by ReadCounts.
  uint64_t samples;  // sampled blocks
  double objects;    // unbiased estimate of blocks allocated here
  double bytes;      // unbiased estimate of requested bytes allocated here
};
// Sets of counts per stack: threads sampling one site at once take
// different ones while there are no more such threads than sets (their
// reader shards are handed out in turn). Each costs a stack 64 bytes.
constexpr size_t kCountStripes = 4;

// 64-byte aligned (the arena's blocks of 64 bytes and more are). The count
// sets come first, each on its line; then what a stack cache hit reads (the
// frames, compared) and the reference count, raised and dropped in
// bundles of 64 (stack_cache) so that hits rarely find that line changed.
struct alignas(64) Stack {
  StackCounts counts[kCountStripes];
  // Atomic: live entries and thread caches (stack_cache) pointing here.
  // Raised without the lock only by a holder of a reference, so it reaches 0
  // only under the shard lock (Unref), where it is stable.
  uint32_t refs;
  uint32_t depth;  // frames[0..depth), innermost first (return addresses)
  // Fixed once interned (next: under the shard lock):
  Stack* next;  // chain in its hash bucket
  uint64_t hash;
  // The object cache the blocks were allocated for (an interned name, see
  // profiler::InternCacheName; never freed), or nullptr. Part of the stack's
  // identity: one call path serving two caches makes two stacks.
  const char* cache;
  uintptr_t frames[1];  // really [depth]
};

namespace stack_table {

// The interned copy of frames[0..depth) for `cache` (an interned cache name
// compared by address, or nullptr), with one more reference and the
// cumulative estimates increased by (objects, bytes). nullptr on OOM.
Stack* Intern(const uintptr_t* frames, size_t depth, double objects, double bytes,
              const char* cache = nullptr);

// Drops a reference (n of them). A stack with no references and no
// cumulative counts is freed. Without the shard lock unless this may be the
// last reference.
void Unref(Stack* stack);
void UnrefN(Stack* stack, uint32_t n);
// n more references, for a caller that already holds one (no lock).
inline void RefHeldN(Stack* stack, uint32_t n) {
  __atomic_fetch_add(&stack->refs, n, __ATOMIC_RELAXED);
}

// For a caller that holds a reference to stack: one more sample of (objects,
// bytes) in its cumulative counts (the calling thread's set, under its
// lock), without the shard lock. Intern's found path without the lookup.
void AddSampleHeld(Stack* stack, double objects, double bytes);

// References a holder that hands them out one a sample (a stack cache
// slot, a stack memo) takes from its stack at once.
inline constexpr uint32_t kRefBundle = 64;

// For a holder of 1 + *spare references to stack: one of them to the
// caller (a bundle more first, without the lock, when none is spare) and
// one more sample of (objects, bytes), as AddSampleHeld.
inline void HandOutHeld(Stack* stack, uint32_t* spare, double objects, double bytes) {
  if (ASSAY_UNLIKELY(*spare == 0)) {
    RefHeldN(stack, kRefBundle);
    *spare = kRefBundle;
  }
  --*spare;
  AddSampleHeld(stack, objects, bytes);
}

// The set of counts (Stack::counts) the calling thread adds its samples to.
size_t ThreadStripe();

// The cumulative counts of a stack the caller keeps alive (a reference, or
// its shard's lock), summed over its sets, each read under its lock: never
// one sample's count without its estimates.
struct CumulativeCounts {
  uint64_t samples;
  double objects;
  double bytes;
};
CumulativeCounts ReadCounts(const Stack* stack);

// One more reference, for a caller that already holds one (no lock).
inline void RefHeld(Stack* stack) { RefHeldN(stack, 1); }

// Zeroes every stack's cumulative counts (and frees unreferenced stacks).
void ResetCumulative();

// Calls fn(stack, arg) for every stack, each shard under its lock. fn must
// not call back into the table.
void ForEach(void (*fn)(const Stack* stack, void* arg), void* arg);

size_t Count();

// Aborts with a message unless every stack is in the shard and bucket its
// hash names and every shard's count is right (for tests).
void AssertValid();

void LockForFork();
void UnlockAfterFork(bool child);

}  // namespace stack_table
}  // namespace assay::profiler
