// Resident memory follows the live heap: the scenario of the seed
// glibc-memory-not-returned.txt (2 MiB blocks and a pool of 64 KiB blocks,
// allocated and freed repeatedly) must end with VmRSS near the live heap,
// at once after malloc_trim and within the decay time without any call.
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "assay/assay.h"
#include "base/options.h"
#include "tests/test_util.h"

namespace {

using assay_test::kMiB;
using assay_test::ResidentBytes;

void Touch(void* p, size_t n) { memset(p, 0x5a, n); }

// The seed's workload: rounds of 2 MiB blocks and a pool of 64 KiB blocks,
// all freed but `keep_small` pool blocks and one 2 MiB block. Returns the
// peak resident size seen.
size_t RunSeedScenario(std::vector<void*>* kept, size_t keep_small) {
  size_t peak = 0;
  for (int round = 0; round < 4; ++round) {
    std::vector<void*> big;
    std::vector<void*> pool;
    for (int i = 0; i < 48; ++i) {
      big.push_back(malloc(2 * kMiB));
      Touch(big.back(), 2 * kMiB);
      delete[] new char[2 * kMiB];  // the seed's allocate-and-free that moves glibc's threshold
    }
    for (int i = 0; i < 2000; ++i) {
      pool.push_back(malloc(64 * 1024));
      Touch(pool.back(), 64 * 1024);
    }
    peak = std::max(peak, ResidentBytes());
    for (void* p : big) free(p);
    for (size_t i = 0; i < pool.size(); ++i) {
      if (round == 3 && i < keep_small) {
        kept->push_back(pool[i]);
      } else {
        free(pool[i]);
      }
    }
  }
  kept->push_back(malloc(2 * kMiB));
  Touch(kept->back(), 2 * kMiB);
  return peak;
}

// Polls VmRSS until it is at most `limit` or `timeout` passes; returns the
// last reading. Makes no allocation-library call itself.
size_t WaitForResidentBelow(size_t limit, std::chrono::milliseconds timeout,
                            std::chrono::milliseconds* waited) {
  const auto start = std::chrono::steady_clock::now();
  size_t rss = ResidentBytes();
  while (rss > limit && std::chrono::steady_clock::now() - start < timeout) {
    usleep(50 * 1000);
    rss = ResidentBytes();
  }
  *waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  return rss;
}

// Slack above the live heap: thread and central caches, segment headers,
// the test framework's own memory.
constexpr size_t kSlack = 24 * kMiB;

TEST(Resident, SeedScenarioReturnsMemoryOnTrim) {
  malloc_trim(0);
  const size_t before = ResidentBytes();
  std::vector<void*> kept;
  const size_t peak = RunSeedScenario(&kept, 100);
  const size_t live = 100 * 64 * 1024 + 2 * kMiB;
  EXPECT_GT(peak, before + 200 * kMiB) << "the scenario did not build a large heap";
  malloc_trim(0);
  const size_t after = ResidentBytes();
  std::printf("seed scenario: before %zu MiB, peak %zu MiB, after trim %zu MiB (live %zu MiB)\n",
              before / kMiB, peak / kMiB, after / kMiB, live / kMiB);
  EXPECT_LE(after, before + live + kSlack);
  for (void* p : kept) free(p);
}

// Runs the seed scenario, keeping 100 blocks, then polls VmRSS (no allocator
// call) until it is back within the live heap and the slack, for up to 6 s.
struct DecayRun {
  size_t before, peak, after, limit;
  long long waited_ms;
};
DecayRun RunScenarioThenIdle(const char* what) {
  malloc_trim(0);
  DecayRun r{};
  r.before = ResidentBytes();
  std::vector<void*> kept;
  r.peak = RunSeedScenario(&kept, 100);
  r.limit = r.before + 100 * 64 * 1024 + 2 * kMiB + kSlack;
  std::chrono::milliseconds waited{};
  r.after = WaitForResidentBelow(r.limit, std::chrono::milliseconds(6000), &waited);
  r.waited_ms = static_cast<long long>(waited.count());
  std::printf("%s: before %zu MiB, peak %zu MiB, after %lld ms idle %zu MiB\n", what,
              r.before / kMiB, r.peak / kMiB, r.waited_ms, r.after / kMiB);
  std::fflush(stdout);
  for (void* p : kept) free(p);
  return r;
}

// The default decay (10 ms): the scenario's freed pages go back without any
// allocator call, well within a second.
TEST(Resident, SeedScenarioReturnsMemoryAfterDefaultDecayWithoutCalls) {
  const DecayRun r = RunScenarioThenIdle("seed scenario, default decay");
  EXPECT_LE(r.after, r.limit);
  EXPECT_LE(r.waited_ms, 1000) << "the default decay is 10 ms";
}

TEST(Resident, NeverDecayKeepsPagesUntilTrim) {
  const auto child = [] {
    assay::internal::InitOptions("decay_ms=-1");
    malloc_trim(0);
    const size_t before = ResidentBytes();
    std::vector<void*> kept;
    RunSeedScenario(&kept, 0);
    usleep(1500 * 1000);
    const size_t idle = ResidentBytes();
    malloc_trim(0);
    const size_t trimmed = ResidentBytes();
    std::printf("decay_ms=-1: before %zu MiB, after 1.5 s idle %zu MiB, after trim %zu MiB\n",
                before / kMiB, idle / kMiB, trimmed / kMiB);
    if (idle < before + 100 * kMiB) _exit(2);  // something purged although decay is off
    if (trimmed > before + 2 * kMiB + kSlack) _exit(3);
  };
  EXPECT_EQ(assay_test::RunInChild(child), 0) << "the child's exit status (-1: it died)";
}

// decay_ms=1000: freed pages stay about that long, then go back without
// any allocator call.
TEST(Resident, SeedScenarioReturnsMemoryAfterOneSecondDecay) {
  const auto child = [] {
    assay::internal::InitOptions("decay_ms=1000");
    const DecayRun r = RunScenarioThenIdle("seed scenario, decay_ms=1000");
    if (r.after > r.limit) _exit(2);
    if (r.waited_ms < 500) _exit(3);  // pages left before the decay time
  };
  EXPECT_EQ(assay_test::RunInChild(child), 0) << "the child's exit status (-1: it died)";
}

TEST(Resident, ZeroDecayPurgesOnFree) {
  const auto child = [] {
    assay::internal::InitOptions("decay_ms=0");
    malloc_trim(0);
    const size_t before = ResidentBytes();
    void* blocks[64];
    for (void*& p : blocks) {
      p = malloc(2 * kMiB);
      Touch(p, 2 * kMiB);
    }
    const size_t full = ResidentBytes();
    for (void* p : blocks) free(p);
    const size_t after = ResidentBytes();  // no wait: purged inside free
    std::printf("decay_ms=0: before %zu MiB, full %zu MiB, after free %zu MiB\n", before / kMiB,
                full / kMiB, after / kMiB);
    if (full < before + 100 * kMiB) _exit(2);
    if (after > before + kSlack) _exit(3);
  };
  EXPECT_EQ(assay_test::RunInChild(child), 0) << "the child's exit status (-1: it died)";
}

TEST(Resident, VeryLargeHugeBlocksGoBackAtFree) {
  malloc_trim(0);
  const size_t before = ResidentBytes();
  void* p = malloc(200 * kMiB);  // above the reuse cache's per-block bound
  ASSERT_NE(p, nullptr);
  Touch(p, 200 * kMiB);
  EXPECT_GE(ResidentBytes(), before + 190 * kMiB);
  free(p);
  EXPECT_LE(ResidentBytes(), before + 8 * kMiB);
}

// decay_ms=1000, so the cache is still there for the second malloc.
TEST(Resident, CachedHugeBlocksAreReusedThenReleasedAfterDecay) {
  const auto child = [] {
    assay::internal::InitOptions("decay_ms=1000");
    malloc_trim(0);
    const size_t before = ResidentBytes();
    void* p = malloc(16 * kMiB);
    Touch(p, 16 * kMiB);
    free(p);
    assay_stats s;
    assay_get_stats(&s);
    if (s.huge_cached < 16 * kMiB) _exit(2);
    void* q = malloc(15 * kMiB);  // within 1/4 of the cached size: reused
    if (q != p) _exit(3);
    free(q);
    std::chrono::milliseconds waited{};
    const size_t after =
        WaitForResidentBelow(before + 8 * kMiB, std::chrono::milliseconds(5000), &waited);
    if (after > before + 8 * kMiB) _exit(4);
    if (waited.count() < 500) _exit(5);  // released before the decay time
    assay_get_stats(&s);
    if (s.huge_cached != 0) _exit(6);
  };
  EXPECT_EQ(assay_test::RunInChild(child), 0) << "the child's exit status (-1: it died)";
}

}  // namespace
