// The address table of live entries (entry.h): 64 shards of chained hash
// tables, doubling their buckets as they fill.
#include "base/layout.h"
#include "base/lock.h"
#include "profiler/arena.h"
#include "profiler/chain_shard.h"
#include "profiler/entry.h"

namespace assay::profiler::entry_table {
namespace {

using internal::LockGuard;
using internal::Mutex;

constexpr size_t kShards = 64;

using Shard = ChainShard<Entry, &Entry::table_next>;
constinit Shard g_shards[kShards];

uint64_t Hash(uintptr_t p) { return (p >> 4) * 0x9E3779B97F4A7C15ull; }
Shard& ShardOf(uint64_t h) { return g_shards[h >> 58]; }

bool Grow(Shard& s) {
  return s.Grow(64, [](const Entry* e, size_t n) { return Hash(e->address) & (n - 1); });
}

}  // namespace

bool Insert(Entry* e) {
  const uint64_t h = Hash(e->address);
  Shard& s = ShardOf(h);
  LockGuard lock(s.mu);
  // Growing may fail; a fuller table still works, an absent one does not.
  if (s.count >= s.nbuckets && !Grow(s) && s.nbuckets == 0) return false;
  Entry*& head = s.buckets[h & (s.nbuckets - 1)];
  e->table_next = head;
  head = e;
  s.count++;
  return true;
}

Entry* Remove(uintptr_t p) {
  const uint64_t h = Hash(p);
  Shard& s = ShardOf(h);
  LockGuard lock(s.mu);
  if (s.nbuckets == 0) return nullptr;
  for (Entry** link = &s.buckets[h & (s.nbuckets - 1)]; *link != nullptr;
       link = &(*link)->table_next) {
    Entry* e = *link;
    if (e->address == p) {
      *link = e->table_next;
      s.count--;
      return e;
    }
  }
  return nullptr;
}

size_t Count() {
  size_t n = 0;
  for (Shard& s : g_shards) {
    LockGuard lock(s.mu);
    n += s.count;
  }
  return n;
}

void ForEach(void (*fn)(const Entry* e, void* arg), void* arg) {
  for (Shard& s : g_shards) {
    LockGuard lock(s.mu);
    for (size_t i = 0; i < s.nbuckets; ++i) {
      for (const Entry* e = s.buckets[i]; e != nullptr; e = e->table_next) fn(e, arg);
    }
  }
}

void DescribeLayout(AssayLayout* l) {
  l->entry_shards_addr = reinterpret_cast<uint64_t>(&g_shards[0]);
  l->entry_shard_count = kShards;
  l->entry_shard_size = sizeof(Shard);
  l->entry_buckets_off = offsetof(Shard, buckets);
  l->entry_nbuckets_off = offsetof(Shard, nbuckets);
  l->entry_address_off = offsetof(Entry, address);
  l->entry_requested_off = offsetof(Entry, requested);
  l->entry_usable_off = offsetof(Entry, usable);
  l->entry_alignment_off = offsetof(Entry, alignment);
  l->entry_points_off = offsetof(Entry, points);
  l->entry_stack_off = offsetof(Entry, stack);
  l->entry_thread_off = offsetof(Entry, thread_id);
  l->entry_weight_objects_off = offsetof(Entry, weight_objects);
  l->entry_weight_bytes_off = offsetof(Entry, weight_bytes);
  l->entry_next_off = offsetof(Entry, table_next);
  l->stack_depth_off = offsetof(Stack, depth);
  l->stack_frames_off = offsetof(Stack, frames);
}

void LockForFork() { LockShards(g_shards); }
void UnlockAfterFork(bool child) { UnlockShardsAfterFork(g_shards, child); }

}  // namespace assay::profiler::entry_table
