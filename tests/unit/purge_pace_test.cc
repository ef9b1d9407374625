// The purge pace (alloc/purge_pace.h): free slices a program wrote all over
// (dense) and that it keeps needing again soon after their purge wait longer
// before the purger gives them back; sparse ones keep decay_ms; and the
// longer wait is bounded: after the churn stops, the memory leaves RSS
// within the ceiling (64 x decay_ms, at most 1 s).
#include "alloc/purge_pace.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "alloc/page_heap.h"
#include "assay/assay.h"
#include "base/options.h"
#include "tests/test_util.h"

namespace assay::internal {
namespace {

using assay_test::kKiB;
using assay_test::kMiB;
using assay_test::ResidentBytes;

// A size class of multi-slice spans (4 blocks, 8 slices): emptied spans go
// back to the page heap, whose slices the purger purges after the decay.
constexpr size_t kSize = 128 * kKiB;
constexpr size_t kBlocks = 256;  // 32 MiB: far more than the caches keep

// Allocates kBlocks blocks, writes every page of each (dense) or only its
// first byte (sparse), and frees them all.
void Round(bool dense) {
  std::vector<char*> blocks(kBlocks);
  for (char*& p : blocks) {
    p = static_cast<char*>(malloc(kSize));
    ASSERT_NE(p, nullptr);
    if (dense) {
      memset(p, 0x5a, kSize);
    } else {
      p[0] = 1;
    }
  }
  for (char* p : blocks) free(p);
}

// Rounds 30 ms apart: longer than decay_ms (10) plus a purger interval, so
// at the floor every emptied slice is purged before the next round needs it.
void SparseChurn(int rounds) {
  for (int i = 0; i < rounds; ++i) {
    Round(/*dense=*/false);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
  }
}

// Dense rounds: each starts once the purger has given back most of the last
// one's memory, so that it faults in slices purged moments before however
// late a loaded machine runs the purger (with two busy processes on the two
// cores, fixed 30 ms steps often began before the purge, and the decay never
// grew), or 30 ms after the last once the dense decay has outgrown that.
void DenseChurn(int rounds) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < rounds; ++i) {
    const size_t purged = page_heap::GetStats().purged_total;
    Round(/*dense=*/true);
    const Clock::time_point end = Clock::now();
    while (Clock::now() - end < std::chrono::seconds(2)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (page_heap::GetStats().purged_total - purged >= 16 * kMiB) break;
      if (purge_pace::Current() > 30 && Clock::now() - end >= std::chrono::milliseconds(30)) break;
    }
  }
}

TEST(PurgePace, SparseKeepsTheFloorDenseWaitsLongerWithinTheCeiling) {
  const int64_t floor_ms = GetOptions().decay_ms;
  ASSERT_EQ(floor_ms, 10) << "the test assumes the default decay";

  // Sparse memory: purged after decay_ms and reused, yet never counted.
  SparseChurn(12);
  EXPECT_LE(purge_pace::Current(), static_cast<uint64_t>(floor_ms));

  // Dense memory purged at the floor and faulted in again at once: the
  // dense decay grows past 30 ms (a 50 ms window, then 4x).
  DenseChurn(12);
  const uint64_t lengthened = purge_pace::Current();
  EXPECT_GT(lengthened, 30u);
  EXPECT_LE(lengthened, 640u);  // 64 x the floor

  // Once the churn stops, the dense slices still leave RSS within the
  // ceiling: measured against the resident size with the blocks live.
  const size_t before = ResidentBytes();
  ASSERT_GT(before, 0u);
  std::vector<char*> blocks(kBlocks);
  for (char*& p : blocks) {
    p = static_cast<char*>(malloc(kSize));
    memset(p, 0x5a, kSize);
  }
  const size_t live = ResidentBytes();
  for (char* p : blocks) free(p);
  // Idle transfer caches drain within two 250 ms visits, then the dense
  // decay (<= 640 ms) and a purger interval.
  std::this_thread::sleep_for(std::chrono::milliseconds(500 + 640 + 360));
  const size_t after = ResidentBytes();
  // The caches may keep a few blocks (4 in the thread's list, 16 batches of
  // 2 in the transfer cache: 36 x 128 KiB = 4.5 MiB); the rest is purged.
  EXPECT_LT(after, live - 20 * kMiB) << "before " << before << " live " << live;
}

}  // namespace
}  // namespace assay::internal
