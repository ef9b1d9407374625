// The allocator's counters (stats.h): totals from every part of the core,
// and live blocks by size. Read without stopping threads: thread-cache
// counts are racy by a few blocks.
#include "alloc/stats.h"

#include "alloc/central.h"
#include "alloc/huge.h"
#include "alloc/large_cache.h"
#include "alloc/page_heap.h"
#include "alloc/segment.h"
#include "alloc/thread_cache.h"
#include "base/meta.h"

namespace assay::internal::stats {
namespace {

void AddRow(Usage* u, uint64_t size, uint64_t count) {
  if (count == 0) return;
  for (size_t i = 0; i < u->nrows; ++i) {
    if (u->rows[i].size == size) {
      u->rows[i].count += count;
      u->blocks += count;
      u->bytes += size * count;
      return;
    }
  }
  if (u->nrows == sizeof(u->rows) / sizeof(u->rows[0])) return;
  u->rows[u->nrows++] = Row{size, count};
  u->blocks += count;
  u->bytes += size * count;
}

}  // namespace

void CollectUsage(Usage* u) {
  int64_t live[kNumClasses] = {};
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    for (central::Pool pool : {central::kNormal, central::kSampled}) {
      const central::ClassStats s = central::GetClassStats(cls, pool);
      live[cls] += static_cast<int64_t>(s.blocks_out) - static_cast<int64_t>(s.transfer_blocks);
    }
  }
  thread_cache::ForEachLive(
      [](ThreadCache* tc, void* arg) {
        auto* live = static_cast<int64_t*>(arg);
        for (size_t cls = 1; cls < kNumClasses; ++cls) {
          live[cls] -= __atomic_load_n(&tc->lists[cls].count, __ATOMIC_RELAXED);
          if (tc->sampled != nullptr) {
            live[cls] -= __atomic_load_n(&tc->sampled->lists[cls].count, __ATOMIC_RELAXED);
          }
        }
      },
      live);
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    if (live[cls] > 0) AddRow(u, kClasses[cls].size, static_cast<uint64_t>(live[cls]));
  }
  page_heap::ForEachSegment(
      [](const Segment* seg, void* arg) {
        auto* u = static_cast<Usage*>(arg);
        for (size_t i = 1; i < kSlicesPerSegment;) {
          const Span& s = seg->spans[i];
          if (((seg->free_mask >> i) & 1) == 0 && s.kind == SpanKind::kLarge && s.cached == 0) {
            AddRow(u, s.slices * kSliceSize, 1);
          }
          i += ((seg->free_mask >> i) & 1) || s.slices == 0 ? 1 : s.slices;
        }
      },
      u);
  huge::ForEach(
      [](void*, size_t usable, void* arg) { AddRow(static_cast<Usage*>(arg), usable, 1); }, u);
  // By size, smallest first.
  for (size_t i = 1; i < u->nrows; ++i) {
    for (size_t j = i; j > 0 && u->rows[j - 1].size > u->rows[j].size; --j) {
      const Row t = u->rows[j];
      u->rows[j] = u->rows[j - 1];
      u->rows[j - 1] = t;
    }
  }
}

void GetStats(assay_stats* out) {
  *out = assay_stats{};
  size_t small_live = 0;    // bytes of blocks out of the central lists
  size_t small_spans = 0;   // bytes of small spans
  size_t small_purged = 0;  // bytes of their free pages returned to the OS
  size_t span_purged_total = 0;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    for (central::Pool pool : {central::kNormal, central::kSampled}) {
      const central::ClassStats s = central::GetClassStats(cls, pool);
      small_live += (s.blocks_out - s.transfer_blocks) * kClasses[cls].size;
      small_spans += s.span_bytes;
      small_purged += s.purged_bytes;
      span_purged_total += s.purged_total;
    }
  }
  out->thread_cached = thread_cache::CachedBytes(&out->threads);
  const page_heap::Stats ph = page_heap::GetStats();
  const huge::Stats hs = huge::GetStats();
  // Slice runs in threads' caches are large spans to the page heap, but
  // free memory, resident until the purger takes them back.
  const size_t runs_cached = large_cache::CachedBytes();
  const size_t user_small = small_live > out->thread_cached ? small_live - out->thread_cached : 0;
  // (Read apart from the page heap's counters: a run may have moved between.)
  const size_t large_live = ph.large_bytes > runs_cached ? ph.large_bytes - runs_cached : 0;
  out->allocated = user_small + large_live + hs.mapped;
  // Free pages of partly used spans that were purged are not held: mapped,
  // not resident (fordblks of mallinfo2 still counts them as free).
  out->central_cached = small_spans - small_live - small_purged;
  out->segment_mapped = ph.mapped;
  out->huge_mapped = hs.mapped;
  out->huge_cached = hs.cached;
  out->free_dirty = ph.dirty + runs_cached;
  out->purged_total = ph.purged_total + span_purged_total;
  out->unmapped_total = ph.unmapped_total + hs.unmapped_total;
  out->metadata =
      meta::MappedBytes() + hs.table_bytes + ph.segments * AlignUp(sizeof(Segment), kPageSize);
  out->segments = ph.segments;
  out->huge_blocks = hs.blocks;
}

}  // namespace assay::internal::stats
