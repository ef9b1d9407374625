// One shard of the profiler's chained hash tables (the entry table and the
// stack table): a lock, a power-of-two array of bucket chains from the
// profiler arena, and a count. Node links through the member kNext.
#pragma once

#include <cstddef>

#include "base/lock.h"
#include "profiler/arena.h"

namespace assay::profiler {

template <typename Node, Node* Node::*kNext>
struct alignas(64) ChainShard {
  internal::Mutex mu;
  Node** buckets = nullptr;
  size_t nbuckets = 0;
  size_t count = 0;

  // Makes `initial` buckets, or doubles them, moving every node to
  // bucket_of(node, new count). False (the shard unchanged) if the arena has
  // no memory. Called with mu held.
  template <typename BucketOf>
  bool Grow(size_t initial, BucketOf bucket_of) {
    const size_t n = nbuckets == 0 ? initial : nbuckets * 2;
    Node** b = static_cast<Node**>(arena::Alloc(n * sizeof(Node*)));
    if (b == nullptr) return false;
    for (size_t i = 0; i < nbuckets; ++i) {
      for (Node* x = buckets[i]; x != nullptr;) {
        Node* next = x->*kNext;
        Node*& head = b[bucket_of(x, n)];
        x->*kNext = head;
        head = x;
        x = next;
      }
    }
    arena::Free(buckets, nbuckets * sizeof(Node*));
    buckets = b;
    nbuckets = n;
    return true;
  }
};

// Every shard's lock, for fork: taken in order, released (or reset in the
// child) in the same order.
template <typename Shard, size_t N>
void LockShards(Shard (&shards)[N]) {
  for (Shard& s : shards) s.mu.Lock();
}
template <typename Shard, size_t N>
void UnlockShardsAfterFork(Shard (&shards)[N], bool child) {
  for (Shard& s : shards) s.mu.UnlockAfterFork(child);
}

}  // namespace assay::profiler
