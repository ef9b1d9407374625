// Segment and page-heap invariants under a random mix of small, large and
// huge blocks, and the agreement of the statistics with what is live.
#include "alloc/page_heap.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <random>
#include <vector>

#include "alloc/large_cache.h"
#include "assay/assay.h"
#include "base/os.h"

namespace assay::internal {
namespace {

void ValidateAll() {
  page_heap::ForEachSegment([](const Segment* seg, void*) { seg->Validate(); }, nullptr);
}

TEST(PageHeap, InvariantsHoldUnderRandomWorkload) {
  std::mt19937_64 rng(12345);
  std::vector<std::pair<char*, size_t>> live;
  for (int step = 0; step < 20000; ++step) {
    if (live.empty() || rng() % 100 < 55) {
      const int kind = static_cast<int>(rng() % 100);
      size_t n = kind < 80   ? rng() % 4096
                 : kind < 97 ? 256 * 1024 + rng() % (1800 * 1024)
                             : 2 * 1024 * 1024 + rng() % (6 << 20);
      char* p = static_cast<char*>(malloc(n));
      ASSERT_NE(p, nullptr);
      if (n > 0) p[0] = p[n - 1] = static_cast<char>(n * 7 + 1);
      live.emplace_back(p, n);
    } else {
      const size_t i = rng() % live.size();
      auto [p, n] = live[i];
      if (n > 0) {
        ASSERT_EQ(p[0], static_cast<char>(n * 7 + 1));
        ASSERT_EQ(p[n - 1], static_cast<char>(n * 7 + 1));
      }
      free(p);
      live[i] = live.back();
      live.pop_back();
    }
    if (step % 1000 == 0) ValidateAll();
  }
  ValidateAll();
  for (auto [p, n] : live) free(p);
  ValidateAll();
}

TEST(PageHeap, LargeBlocksFreeTheirSlices) {
  malloc_trim(0);
  const page_heap::Stats before = page_heap::GetStats();
  std::vector<void*> blocks;
  for (int i = 0; i < 40; ++i) blocks.push_back(malloc(1 << 20));  // 16 slices each
  const page_heap::Stats during = page_heap::GetStats();
  EXPECT_EQ(during.large_spans, before.large_spans + 40);
  EXPECT_EQ(during.large_bytes, before.large_bytes + 40 * (size_t{1} << 20));
  for (void* p : blocks) free(p);
  // The last few freed wait in this thread's slice-run cache: still large
  // spans to the page heap, free to everyone else; give them back.
  const size_t cached = large_cache::CachedBytes();
  EXPECT_LE(cached, size_t{4} << 20);
  large_cache::Reclaim(os::NowMs(), 0);
  const page_heap::Stats after = page_heap::GetStats();
  EXPECT_EQ(after.large_spans, before.large_spans);
  // Less a few slices that allocations made meanwhile may take back (the
  // first free starts the purge thread, and pthread_create allocates).
  constexpr size_t kTolerance = 1 << 20;
  EXPECT_GE(after.dirty, (size_t{40} << 20) - kTolerance);
  malloc_trim(0);
  const page_heap::Stats trimmed = page_heap::GetStats();
  EXPECT_EQ(trimmed.dirty, 0u);
  EXPECT_GE(trimmed.purged_total, before.purged_total + (size_t{40} << 20) - kTolerance);
  ValidateAll();
}

TEST(PageHeap, LargeReallocGrowsInPlaceWhenFollowingSlicesAreFree) {
  // After a trim nothing is dirty; a freed 900 KiB block is then the only
  // dirty run, which the page heap prefers, so p lands at its start with
  // free slices behind it. (The first free of a process starts the purge
  // thread, whose creation allocates: get that done first.)
  free(malloc(1 << 20));
  malloc_trim(0);
  void* a = malloc(900 * 1024);
  free(a);
  large_cache::Reclaim(os::NowMs(), 0);  // from the slice-run cache to the page heap
  void* p = malloc(300 * 1024);
  ASSERT_EQ(p, a);
  void* q = realloc(p, 900 * 1024);
  EXPECT_EQ(p, q);
  void* r = realloc(q, 400 * 1024);  // shrink in place, freeing the tail slices
  EXPECT_EQ(q, r);
  EXPECT_GE(malloc_usable_size(r), 400u * 1024);
  EXPECT_LT(malloc_usable_size(r), 900u * 1024);
  free(r);
  ValidateAll();
}

// A sampled-pool span takes the highest clean run of its segment (away from
// the low slices where realloc's growable runs are carved and grow upward).
TEST(PageHeap, SampledSpansTakeTheHighestCleanRun) {
  free(malloc(1 << 20));  // the purge thread's start allocates: get it done
  malloc_trim(0);         // clean slices in every segment
  bool zeroed;
  Span* sampled = page_heap::AllocSpan(1, SpanKind::kSampled, 3, &zeroed);
  ASSERT_NE(sampled, nullptr);
  const Segment* seg = SegmentOf(reinterpret_cast<uintptr_t>(SpanStart(sampled)));
  const uint64_t clean = seg->free_mask & ~seg->dirty_mask;
  EXPECT_EQ(clean >> sampled->first, 0u) << "a clean free slice above slice " << +sampled->first;
  page_heap::FreeSpan(sampled);
  ValidateAll();
}

TEST(Stats, AllocatedFollowsLiveBytes) {
  assay_stats s0;
  assay_get_stats(&s0);
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) blocks.push_back(malloc(10000));
  void* huge = malloc(10 << 20);
  assay_stats s1;
  assay_get_stats(&s1);
  EXPECT_GE(s1.allocated, s0.allocated + 1000 * 10000 + (10 << 20) - 512 * 1024);
  EXPECT_EQ(s1.huge_blocks, s0.huge_blocks + 1);
  EXPECT_GE(s1.huge_mapped, s0.huge_mapped + (10 << 20));
  for (void* p : blocks) free(p);
  free(huge);
  assay_stats s2;
  assay_get_stats(&s2);
  EXPECT_LE(s2.allocated, s0.allocated + 512 * 1024);  // thread-cache slack
  EXPECT_EQ(s2.huge_blocks, s0.huge_blocks);
  EXPECT_GT(s2.metadata, 0u);
  EXPECT_GE(s2.threads, 1u);
}

}  // namespace
}  // namespace assay::internal
