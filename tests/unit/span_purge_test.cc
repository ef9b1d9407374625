// Free pages of partly used small spans go back to the OS (alloc/span_purge.h):
// spans of 512-byte blocks each pinned by one surviving block lose their other
// pages' residency (at assay_trim, and by the purger after the decay), the
// heap walk never reports a block on a purged page, and the blocks come back
// intact when the class needs them again.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "assay/assay.h"
#include "tests/check_heap.h"
#include "tests/test_util.h"

namespace {

using assay_test::kMiB;
using assay_test::ResidentBytes;

constexpr size_t kSize = 512;          // a class of 1-slice spans: 128 blocks, 16 pages
constexpr size_t kSpan = 64 << 10;     // kSliceSize
constexpr size_t kBlocks = 128 * 256;  // 16 MiB: 256 spans or more

struct Scenario {
  std::vector<char*> kept;   // the first block of each slice: one survivor per span
  std::vector<char*> freed;  // every other block, freed
};

// Allocates kBlocks blocks of kSize, fills them, keeps one block at the start
// of each 64 KiB slice and frees the rest.
Scenario PinSpans() {
  Scenario s;
  std::vector<char*> all;
  all.reserve(kBlocks);
  for (size_t i = 0; i < kBlocks; ++i) {
    char* p = static_cast<char*>(malloc(kSize));
    memset(p, static_cast<int>(i % 251) + 1, kSize);
    all.push_back(p);
  }
  for (char* p : all) {
    if (reinterpret_cast<uintptr_t>(p) % kSpan == 0) {
      s.kept.push_back(p);
    } else {
      s.freed.push_back(p);
    }
  }
  for (char* p : s.freed) free(p);
  std::sort(s.freed.begin(), s.freed.end());
  return s;
}

void ExpectKeptIntact(const Scenario& s) {
  for (char* p : s.kept) {
    const char v = p[0];
    ASSERT_NE(v, 0);
    for (size_t k = 0; k < kSize; ++k) ASSERT_EQ(p[k], v) << "survivor corrupted";
  }
}

TEST(SpanPurge, TrimPurgesFreePagesOfPinnedSpans) {
  assay_trim();
  Scenario s = PinSpans();
  ASSERT_GE(s.kept.size(), 200u);
  assay_stats before;
  assay_get_stats(&before);
  const size_t rss_before = ResidentBytes();
  assay_trim();  // this thread's cache, the central caches, every free page
  assay_stats after;
  assay_get_stats(&after);
  const size_t rss_after = ResidentBytes();
  // Each pinned span keeps one page (the survivor's) of its 16: 15/16 of
  // its 64 KiB goes, give or take what the rest of the process does.
  const size_t expect = s.kept.size() * 15 * 4096;
  EXPECT_GE(after.purged_total - before.purged_total, expect);
  EXPECT_GE(rss_before - std::min(rss_before, rss_after), expect * 9 / 10)
      << "rss " << rss_before / kMiB << " -> " << rss_after / kMiB << " MiB";
  // Purged pages are not counted as held in the central caches.
  EXPECT_LE(after.central_cached + expect * 9 / 10, before.central_cached);
  ExpectKeptIntact(s);

  // The heap walk reports every survivor and no block on a purged page.
  struct Seen {
    const std::vector<char*>* freed;
    size_t freed_reported = 0;
    std::vector<char*> small;
  } seen{&s.freed, 0, {}};
  seen.small.reserve(1 << 16);
  ASSERT_GE(assay_heap_iterate(
                [](void* a, size_t size, void* arg) {
                  auto* w = static_cast<Seen*>(arg);
                  auto* p = static_cast<char*>(a);
                  if (size != kSize) return;
                  if (std::binary_search(w->freed->begin(), w->freed->end(), p)) {
                    w->freed_reported++;
                  }
                  if (w->small.size() < w->small.capacity()) w->small.push_back(p);
                },
                &seen),
            0);
  EXPECT_EQ(seen.freed_reported, 0u);
  std::sort(seen.small.begin(), seen.small.end());
  for (char* p : s.kept) EXPECT_TRUE(std::binary_search(seen.small.begin(), seen.small.end(), p));

  // The class needs its blocks again: the purged pages are carved anew and
  // every block is usable, none handed out twice.
  std::vector<char*> again;
  for (size_t i = 0; i < s.freed.size(); ++i) {
    char* p = static_cast<char*>(malloc(kSize));
    memset(p, 0x77, kSize);
    again.push_back(p);
  }
  assay_check_heap(0);
  std::vector<char*> all = again;
  all.insert(all.end(), s.kept.begin(), s.kept.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "a block handed out twice";
  ExpectKeptIntact(s);
  for (char* p : again) free(p);
  for (char* p : s.kept) free(p);
  assay_check_heap(0);
}

TEST(SpanPurge, PurgerReturnsIdleSpansPagesWithoutACall) {
  assay_trim();
  assay_stats before;
  assay_get_stats(&before);
  Scenario s = PinSpans();
  // No call: the purger visits idle spans every 250 ms, purging on the
  // second visit that finds a span untouched. This thread's cache still
  // holds up to 512 freed blocks (256 KiB), each pinning a page.
  const size_t expect = s.kept.size() * 15 * 4096 - 512 * 4096;
  assay_stats now{};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    assay_get_stats(&now);
  } while (now.purged_total - before.purged_total < expect &&
           std::chrono::steady_clock::now() < deadline);
  EXPECT_GE(now.purged_total - before.purged_total, expect);
  ExpectKeptIntact(s);
  for (char* p : s.kept) free(p);
  assay_check_heap(0);
}

}  // namespace
