// The address table of live entries (entry.h): a ShardedTable of 64 shards
// keyed by the block's address.
#include <cstddef>

#include "base/layout.h"
#include "profiler/entry.h"
#include "profiler/sharded_table.h"

namespace assay::profiler::entry_table {
namespace {

// The hash of a block's address: a random offset for its 64 KiB region
// plus the block's 16-byte granule in it. The top 6 bits (the region's
// alone, but for a carry one time in 2^15) pick the shard, the low bits the
// bucket. A thread's sampled blocks come from its own spans, so its entries
// fall in a few shards whose locks and counts stay in its cache: with every
// address hashed apart, audit mode (rate=1, two threads) spent 38% of its
// time in Insert and Remove, nearly all of it on the shard lock's cache line
// moving between the cores. Blocks carved one after another from a span
// also land in neighbouring buckets.
uint64_t Hash(uintptr_t p) { return (p >> 16) * 0x9E3779B97F4A7C15ull + (p >> 4); }

struct EntryTraits {
  using Node = Entry;
  static constexpr Entry* Entry::*kNext = &Entry::table_next;
  static constexpr size_t kShards = 64;
  static constexpr size_t kInitialBuckets = 64;
  static uint64_t HashOf(const Entry* e) { return Hash(e->address); }
  static size_t ShardOf(uint64_t h) { return h >> 58; }
  static size_t BucketOf(uint64_t h, size_t n) { return h & (n - 1); }
};
static_assert(EntryTraits::kShards == size_t{1} << (64 - 58));

using Table = ShardedTable<EntryTraits>;
using Shard = Table::Shard;
constinit Table g_table;

}  // namespace

bool Insert(Entry* e) { return g_table.Insert(e); }

Entry* Remove(uintptr_t p) {
  return g_table.Erase(Hash(p), [p](const Entry* e) { return e->address == p; });
}

bool Contains(uintptr_t p) {
  return g_table.Lookup(Hash(p), [p](const Entry* e) { return e->address == p; }) != nullptr;
}

size_t Count() { return g_table.Count(); }

void ForEach(void (*fn)(const Entry* e, void* arg), void* arg) {
  g_table.ForEach([fn, arg](Shard&, const Entry* e) { fn(e, arg); });
}

void AssertValid() { g_table.AssertValid(); }

ASSAY_STARTUP void DescribeLayout(AssayLayout* l) {
  l->entry_shards_addr = reinterpret_cast<uint64_t>(g_table.shards());
  l->entry_shard_count = Table::kShards;
  l->entry_shard_size = sizeof(Shard);
  l->entry_buckets_off = offsetof(Shard, buckets);
  l->entry_nbuckets_off = offsetof(Shard, nbuckets);
  l->entry_address_off = offsetof(Entry, address);
  l->entry_requested_off = offsetof(Entry, requested);
  l->entry_usable_off = offsetof(Entry, usable);
  l->entry_alignment_off = offsetof(Entry, align_shift);
  l->entry_points_off = offsetof(Entry, points);
  l->entry_stack_off = offsetof(Entry, stack);
  l->entry_thread_off = offsetof(Entry, thread_id);
  l->entry_weight_objects_off = offsetof(Entry, weight_objects);
  l->entry_weight_bytes_off = offsetof(Entry, weight_bytes);
  l->entry_next_off = offsetof(Entry, table_next);
  l->stack_depth_off = offsetof(Stack, depth);
  l->stack_frames_off = offsetof(Stack, frames);
}

void LockForFork() { g_table.LockForFork(); }
void UnlockAfterFork(bool child) { g_table.UnlockAfterFork(child); }

}  // namespace assay::profiler::entry_table
