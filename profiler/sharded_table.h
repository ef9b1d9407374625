// The profiler's sharded chained hash table, shared by the entry table and
// the stack table: N shards, each with its lock, a power-of-two array of
// bucket chains from the profiler arena (doubled when the shard holds as many
// nodes as buckets) and a count. Nodes are intrusive and owned by the caller:
// the table links and unlinks them, never allocates or frees one.
#pragma once

#include <stdlib.h>

#include <cstddef>
#include <cstdint>

#include "base/lock.h"
#include "base/os.h"
#include "profiler/arena.h"

namespace assay::profiler {

// Traits describe the nodes and where a hash puts them:
//   using Node = ...;
//   static constexpr Node* Node::*kNext;          the chain link member
//   static constexpr size_t kShards;              number of shards
//   static constexpr size_t kInitialBuckets;      a power of two
//   static uint64_t HashOf(const Node*);          the hash of a node's key
//   static size_t ShardOf(uint64_t h);            < kShards
//   static size_t BucketOf(uint64_t h, size_t n); < n (n a power of two)
// Lookups take the hash of the key and a predicate on nodes (the key itself
// may be several fields, e.g. a stack's frames and cache).
template <typename Traits>
class ShardedTable {
 public:
  using Node = typename Traits::Node;
  static constexpr size_t kShards = Traits::kShards;
  static constexpr size_t kInitialBuckets = Traits::kInitialBuckets;
  static_assert(kInitialBuckets != 0 && (kInitialBuckets & (kInitialBuckets - 1)) == 0);

  // The layout is read by heap walkers through base/layout.h (the entry
  // table's buckets and nbuckets): keep the fields.
  struct alignas(64) Shard {
    internal::Mutex mu;
    Node** buckets = nullptr;
    size_t nbuckets = 0;  // 0 or a power of two
    size_t count = 0;     // nodes linked in buckets
  };

  Shard& ShardFor(uint64_t h) { return shards_[Traits::ShardOf(h)]; }
  Shard* shards() { return shards_; }

  // ---- With the shard's lock held (s is ShardFor(h)) ----

  // The first node of h's bucket that match(node) accepts, or nullptr.
  template <typename Match>
  static Node* FindLocked(Shard& s, uint64_t h, Match match) {
    if (s.nbuckets == 0) return nullptr;
    for (Node* x = s.buckets[Traits::BucketOf(h, s.nbuckets)]; x != nullptr; x = x->*kNext) {
      if (match(x)) return x;
    }
    return nullptr;
  }

  // Makes room for one more node: doubles the buckets of a full shard.
  // Growing may fail (no arena memory); a fuller shard still works, so this
  // is false only when the shard has no bucket array at all.
  static bool ReserveLocked(Shard& s) {
    if (Full(s)) Grow(s);
    return s.nbuckets != 0;
  }

  // Links n (whose hash is h) at the head of its bucket; ReserveLocked must
  // have returned true since the shard last changed.
  static void LinkLocked(Shard& s, uint64_t h, Node* n) {
    Node*& head = s.buckets[Traits::BucketOf(h, s.nbuckets)];
    n->*kNext = head;
    head = n;
    s.count++;
  }

  // ReserveLocked + LinkLocked; false (n not linked) without memory.
  static bool InsertLocked(Shard& s, uint64_t h, Node* n) {
    if (!ReserveLocked(s)) return false;
    LinkLocked(s, h, n);
    return true;
  }

  // Unlinks and returns the first node of h's bucket that match accepts.
  template <typename Match>
  static Node* EraseLocked(Shard& s, uint64_t h, Match match) {
    if (s.nbuckets == 0) return nullptr;
    for (Node** link = &s.buckets[Traits::BucketOf(h, s.nbuckets)]; *link != nullptr;
         link = &((*link)->*kNext)) {
      Node* x = *link;
      if (match(x)) {
        *link = x->*kNext;
        s.count--;
        return x;
      }
    }
    return nullptr;
  }

  // Unlinks n, which must be linked in s.
  static void UnlinkLocked(Shard& s, Node* n) {
    Node** link = &s.buckets[Traits::BucketOf(Traits::HashOf(n), s.nbuckets)];
    while (*link != n) link = &((*link)->*kNext);
    *link = n->*kNext;
    s.count--;
  }

  // ---- Taking the lock ----

  // Links n; false (n not linked) when the table has no memory for buckets.
  // The common case (the lock free, the buckets with room) makes no call
  // that returns, so it saves no registers: the others are out of line.
  bool Insert(Node* n) {
    const uint64_t h = Traits::HashOf(n);
    Shard& s = ShardFor(h);
    if (ASSAY_UNLIKELY(!s.mu.TryLock())) return InsertWaiting(s, h, n);
    if (ASSAY_UNLIKELY(Full(s))) return InsertGrowing(s, h, n);
    LinkLocked(s, h, n);
    if (ASSAY_UNLIKELY(s.mu.UnlockNeedsWake())) return WakeAndReturn(s.mu, true);
    return true;
  }

  // Unlinks and returns the node of hash h that match accepts, or nullptr.
  // Its common case makes no call that returns, as Insert's.
  template <typename Match>
  Node* Erase(uint64_t h, Match match) {
    Shard& s = ShardFor(h);
    if (ASSAY_UNLIKELY(!s.mu.TryLock())) return EraseWaiting(s, h, match);
    Node* x = EraseLocked(s, h, match);
    if (ASSAY_UNLIKELY(s.mu.UnlockNeedsWake())) return WakeAndReturn(s.mu, x);
    return x;
  }

  // The node of hash h that match accepts, or nullptr. The node may be
  // unlinked as soon as the lock is released: only its owner may use it.
  template <typename Match>
  Node* Lookup(uint64_t h, Match match) {
    Shard& s = ShardFor(h);
    internal::LockGuard lock(s.mu);
    return FindLocked(s, h, match);
  }

  // Calls fn(shard, node) for every node, each shard under its lock. fn may
  // unlink (UnlinkLocked) and free the node it is given, and nothing else.
  template <typename Fn>
  void ForEach(Fn fn) {
    for (Shard& s : shards_) {
      internal::LockGuard lock(s.mu);
      for (size_t i = 0; i < s.nbuckets; ++i) {
        for (Node* x = s.buckets[i]; x != nullptr;) {
          Node* next = x->*kNext;
          fn(s, x);
          x = next;
        }
      }
    }
  }

  size_t Count() {
    size_t n = 0;
    for (Shard& s : shards_) {
      internal::LockGuard lock(s.mu);
      n += s.count;
    }
    return n;
  }

  // Every node lies in the shard and bucket its hash names, and every
  // shard's count is the number of nodes in its buckets. On failure `why`
  // (if given) names the first fault. Takes each shard's lock in turn.
  bool Valid(const char** why = nullptr) {
    const char* fault = nullptr;
    for (size_t i = 0; i < kShards && fault == nullptr; ++i) {
      Shard& s = shards_[i];
      internal::LockGuard lock(s.mu);
      if (s.nbuckets & (s.nbuckets - 1)) fault = "bucket count is not a power of two";
      size_t found = 0;
      for (size_t b = 0; b < s.nbuckets && fault == nullptr; ++b) {
        for (const Node* x = s.buckets[b]; x != nullptr; x = x->*kNext) {
          const uint64_t h = Traits::HashOf(x);
          if (Traits::ShardOf(h) != i) {
            fault = "a node is in a shard its hash does not name";
            break;
          }
          if (Traits::BucketOf(h, s.nbuckets) != b) {
            fault = "a node is in a bucket its hash does not name";
            break;
          }
          if (++found > s.count) {
            fault = "a shard holds more nodes than its count";
            break;
          }
        }
      }
      if (fault == nullptr && found != s.count) fault = "a shard holds fewer nodes than its count";
    }
    if (why != nullptr) *why = fault;
    return fault == nullptr;
  }

  // Valid(), or a message on stderr and abort.
  void AssertValid() {
    const char* why = nullptr;
    if (Valid(&why)) return;
    internal::os::WriteStderr("assay: sharded table invalid: ");
    internal::os::WriteStderr(why);
    internal::os::WriteStderr("\n");
    abort();
  }

  // Every shard's lock, for fork: taken in order, released (or reset in the
  // child) in the same order.
  void LockForFork() {
    for (Shard& s : shards_) s.mu.Lock();
  }
  void UnlockAfterFork(bool child) {
    for (Shard& s : shards_) s.mu.UnlockAfterFork(child);
  }

 private:
  static constexpr Node* Node::*kNext = Traits::kNext;

  // The shard holds as many nodes as buckets: the next insert doubles them.
  static bool Full(const Shard& s) { return s.count >= s.nbuckets; }

  // The out-of-line halves of Insert and Erase.
  ASSAY_NOINLINE static bool InsertWaiting(Shard& s, uint64_t h, Node* n) {
    internal::LockGuard lock(s.mu);
    return InsertLocked(s, h, n);
  }
  ASSAY_NOINLINE static bool InsertGrowing(Shard& s, uint64_t h, Node* n) {  // lock held
    const bool linked = InsertLocked(s, h, n);
    s.mu.Unlock();
    return linked;
  }
  template <typename Match>
  ASSAY_NOINLINE static Node* EraseWaiting(Shard& s, uint64_t h, Match match) {
    internal::LockGuard lock(s.mu);
    return EraseLocked(s, h, match);
  }
  template <typename T>
  ASSAY_NOINLINE static T WakeAndReturn(internal::Mutex& mu, T value) {
    mu.WakeOne();
    return value;
  }

  // Makes kInitialBuckets buckets, or doubles them, moving every node to
  // its bucket in the new array. False (the shard unchanged) if the arena
  // has no memory.
  static bool Grow(Shard& s) {
    const size_t n = s.nbuckets == 0 ? kInitialBuckets : s.nbuckets * 2;
    Node** b = static_cast<Node**>(arena::Alloc(n * sizeof(Node*)));
    if (b == nullptr) return false;
    for (size_t i = 0; i < s.nbuckets; ++i) {
      for (Node* x = s.buckets[i]; x != nullptr;) {
        Node* next = x->*kNext;
        Node*& head = b[Traits::BucketOf(Traits::HashOf(x), n)];
        x->*kNext = head;
        head = x;
        x = next;
      }
    }
    arena::Free(s.buckets, s.nbuckets * sizeof(Node*));
    s.buckets = b;
    s.nbuckets = n;
    return true;
  }

  Shard shards_[kShards];
};

}  // namespace assay::profiler
