// The slice-run cache (alloc/large_cache.h): a freed large block is reused
// by its thread's next request of the same slice count, counts as free in
// the stats and the heap walk, is refused a second free, and goes back to
// the page heap on trim, at thread exit, in a fork child and after decay.
#include "alloc/large_cache.h"

#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "alloc/page_heap.h"
#include "assay/assay.h"
#include "base/options.h"
#include "base/os.h"
#include "tests/test_util.h"

namespace assay::internal {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(LargeCache, PairReusesTheRunAndCountsItFree) {
  malloc_trim(0);
  ASSERT_EQ(large_cache::CachedBytes(), 0u);
  char* p = static_cast<char*>(malloc(kMiB));
  ASSERT_NE(p, nullptr);
  p[0] = 1;
  assay_stats live;
  assay_get_stats(&live);
  free(p);
  assay_stats freed;
  assay_get_stats(&freed);
  // Unless the purger took it back in between (decay is 10 ms), the run
  // sits in this thread's cache: free and resident, not live.
  const size_t cached = large_cache::CachedBytes();
  ASSERT_TRUE(cached == kMiB || cached == 0) << cached;
  EXPECT_LE(freed.allocated + kMiB, live.allocated + 64 * 1024);
  if (cached == kMiB) {
    EXPECT_GE(freed.free_dirty, kMiB);
  }
  void* q = malloc(kMiB);
  if (cached == kMiB) {
    EXPECT_EQ(q, p);  // the cached run, no page-heap search
  }
  EXPECT_EQ(large_cache::CachedBytes(), 0u);
  EXPECT_EQ(malloc_usable_size(q), kMiB);
  free(q);
  malloc_trim(0);
  EXPECT_EQ(large_cache::CachedBytes(), 0u);
  EXPECT_EQ(page_heap::GetStats().dirty, 0u);  // trim returned the run, then purged it
}

TEST(LargeCache, OtherSizesMissAndTheCacheStaysBounded) {
  malloc_trim(0);
  // 12 distinct sizes of 5..27 slices, all freed: at most 4 runs and 4 MiB
  // stay cached, the rest go to the page heap.
  std::vector<void*> blocks;
  for (size_t slices = 5; slices < 29; slices += 2) blocks.push_back(malloc(slices * 64 * 1024));
  for (void* p : blocks) free(p);
  EXPECT_LE(large_cache::CachedBytes(), 4 * kMiB);
  // A size that is not cached comes from the page heap, not from a bigger run.
  void* p = malloc(7 * 64 * 1024 + 1);
  EXPECT_EQ(malloc_usable_size(p), 8u * 64 * 1024);
  free(p);
  malloc_trim(0);
}

TEST(LargeCache, ReallocGrowsOverTheThreadsCachedRunBehindIt) {
  // After a trim nothing is dirty; a 2 MiB run freed and given back is
  // then the only dirty run, which the page heap prefers: a and b split it.
  malloc_trim(0);
  free(malloc(2 * kMiB - 1));
  large_cache::Reclaim(os::NowMs(), 0);
  char* a = static_cast<char*>(malloc(kMiB));
  char* b = static_cast<char*>(malloc(kMiB));
  ASSERT_EQ(b, a + kMiB);
  free(b);  // into this thread's cache, right behind a
  a[0] = 7;
  void* grown = realloc(a, 2 * kMiB - 1);
  EXPECT_EQ(grown, a);
  EXPECT_EQ(static_cast<char*>(grown)[0], 7);
  EXPECT_EQ(malloc_usable_size(grown), 2 * kMiB);
  free(grown);
  malloc_trim(0);
}

TEST(LargeCache, SecondFreeOfACachedRunIsReported) {
  EXPECT_DEATH(
      {
        void* p = malloc(kMiB);
        free(p);
        free(p);
      },
      "invalid free|double free");
}

TEST(LargeCache, HeapWalkDoesNotReportCachedRuns) {
  malloc_trim(0);
  void* p = malloc(kMiB);
  free(p);
  struct Seen {
    void* p;
    bool found;
  } seen{p, false};
  const long n = assay_heap_iterate(
      [](void* a, size_t, void* arg) {
        auto* s = static_cast<Seen*>(arg);
        if (a == s->p) s->found = true;
      },
      &seen);
  ASSERT_GT(n, 0);
  EXPECT_FALSE(seen.found);
  malloc_trim(0);
}

TEST(LargeCache, ThreadExitReturnsItsRuns) {
  malloc_trim(0);
  size_t in_thread = 0;
  std::thread t([&] {
    free(malloc(2 * kMiB - 1));
    in_thread = large_cache::CachedBytes();
  });
  t.join();
  EXPECT_TRUE(in_thread == 2 * kMiB || in_thread == 0) << in_thread;
  EXPECT_EQ(large_cache::CachedBytes(), 0u);
}

TEST(LargeCache, PurgerReturnsRunsAfterDecay) {
  free(malloc(kMiB));
  // decay_ms 10 (the default): the purger's passes every 10 ms return a
  // run after at most decay + 2 intervals; allow a loaded machine 2 s.
  const auto start = std::chrono::steady_clock::now();
  while (large_cache::CachedBytes() != 0 &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(2)) {
    usleep(5000);
  }
  EXPECT_EQ(large_cache::CachedBytes(), 0u);
}

TEST(LargeCache, NeverDecayKeepsRunsUntilTrim) {
  const auto child = [] {
    InitOptions("decay_ms=-1");
    free(malloc(kMiB));
    usleep(100 * 1000);
    if (large_cache::CachedBytes() != kMiB) _exit(2);
    malloc_trim(0);
    if (large_cache::CachedBytes() != 0) _exit(3);
  };
  EXPECT_EQ(assay_test::RunInChild(child), 0) << "the child's exit status (-1: it died)";
}

TEST(LargeCache, ForkChildGetsBackTheOtherThreadsRuns) {
  // A thread caches a run and waits; the child of a fork has only the
  // forking thread, so the waiting thread's run must go back to the page
  // heap there. decay_ms=-1: no purger takes the run back first.
  const auto child = [] {
    InitOptions("decay_ms=-1");
    std::atomic<int> stage{0};
    std::thread t([&] {
      free(malloc(kMiB));
      stage = 1;
      while (stage != 2) usleep(1000);
    });
    while (stage != 1) usleep(1000);
    if (large_cache::CachedBytes() != kMiB) _exit(2);
    const size_t dirty = page_heap::GetStats().dirty;
    const pid_t pid = fork();
    if (pid < 0) _exit(3);
    if (pid == 0) {
      const bool ok =
          large_cache::CachedBytes() == 0 && page_heap::GetStats().dirty == dirty + kMiB;
      void* q = malloc(kMiB);  // the run, from the page heap's dirty slices
      free(q);
      _exit(ok && q != nullptr ? 0 : 1);
    }
    stage = 2;
    t.join();
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) _exit(4);
    if (WEXITSTATUS(status) != 0) _exit(5);
  };
  EXPECT_EQ(assay_test::RunInChild(child), 0) << "the child's exit status (-1: it died)";
}

}  // namespace
}  // namespace assay::internal
