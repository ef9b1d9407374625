// Heap introspection: assay_heap_iterate finds exactly the blocks the program
// holds (and none it freed), assay_stats_print's table counts them by size in
// the seed's format, assay_stats_json agrees, and mallinfo2 follows a known
// allocation pattern within the bounds the size classes allow.
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "alloc/size_classes.h"
#include "assay/assay.h"
#include "assay/profiler.hpp"

namespace {

struct Seen {
  std::map<void*, size_t> blocks;
};

void Collect(void* address, size_t usable, void* arg) {
  static_cast<Seen*>(arg)->blocks.emplace(address, usable);
}

TEST(HeapIterate, FindsExactlyTheHeldBlocks) {
  std::mt19937_64 rng(7);
  std::vector<std::pair<void*, size_t>> held;
  std::vector<void*> freed;
  for (int i = 0; i < 5000; ++i) {
    const int kind = static_cast<int>(rng() % 100);
    const size_t n = kind < 90 ? 1 + rng() % 3000 : kind < 98 ? 300 * 1024 : 3 << 20;
    void* p = malloc(n);
    ASSERT_NE(p, nullptr);
    if (rng() % 3 == 0) {
      freed.push_back(p);
    } else {
      held.emplace_back(p, n);
    }
  }
  for (void* p : freed) free(p);
  // Blocks sitting in another thread's cache must not count as live.
  std::thread([] {
    std::vector<void*> v;
    for (int i = 0; i < 100; ++i) v.push_back(malloc(48));
    for (void* p : v) free(p);
  }).join();

  Seen seen;
  const long n = assay_heap_iterate(Collect, &seen);
  ASSERT_GE(n, 0) << strerror(errno);
  EXPECT_EQ(static_cast<size_t>(n), seen.blocks.size()) << "a block was reported twice";
  std::set<void*> freed_set(freed.begin(), freed.end());
  for (const auto& [p, size] : held) {
    auto it = seen.blocks.find(p);
    ASSERT_NE(it, seen.blocks.end()) << "held block " << p << " of " << size << " not visited";
    EXPECT_GE(it->second, size);
    EXPECT_EQ(it->second, malloc_usable_size(p));
  }
  // A freed block may only appear if something reallocated its address.
  size_t freed_seen = 0;
  for (void* p : freed_set) freed_seen += seen.blocks.count(p);
  EXPECT_LE(freed_seen, 20u) << "freed blocks reported live";
  for (const auto& [p, size] : held) free(p);
}

// Sampled small blocks freed by their thread wait in its sampled-pool
// magazine (alloc/thread_cache.h): free to the heap walk and to the stats,
// live again once taken back out.
TEST(HeapIterate, SampledBlocksInTheMagazineAreFree) {
  assay::ProfilerOptions o;
  o.rate = 1;  // every allocation is sampled
  o.seed = 3;
  ASSERT_TRUE(assay::Start(o));
  constexpr int kBlocks = 8;  // <= the magazine's bound for 64-byte blocks
  // A thread's first unw_backtrace (after its first 8 stacks, which
  // libunwind steps) allocates libunwind's thread-local block (glibc's
  // dynamic TLS of a dlopened library, profiler/unwinder.h): 16 bytes the
  // stats would count below if it came there.
  for (int i = 0; i < 2 * kBlocks; ++i) free(malloc(64));
  void* warm[kBlocks];
  for (void*& p : warm) p = malloc(64);
  for (void* p : warm) free(p);  // the magazine now holds blocks; stats settle
  assay_stats before, after;
  assay_get_stats(&before);
  void* held[kBlocks];
  for (void*& p : held) p = malloc(64);
  for (int i = 0; i < kBlocks / 2; ++i) free(held[i]);
  assay_get_stats(&after);
  Seen seen;
  ASSERT_GE(assay_heap_iterate(Collect, &seen), 0) << strerror(errno);
  assay::Stop();
  for (int i = 0; i < kBlocks; ++i) {
    EXPECT_EQ(seen.blocks.count(held[i]), i < kBlocks / 2 ? 0u : 1u)
        << "block " << i << (i < kBlocks / 2 ? " freed, reported live" : " held, not visited");
  }
  EXPECT_EQ(after.allocated, before.allocated + (kBlocks / 2) * 64);
  for (int i = kBlocks / 2; i < kBlocks; ++i) free(held[i]);
}

TEST(HeapIterate, VisitorMayAllocate) {
  std::vector<void*> keep;
  for (int i = 0; i < 100; ++i) keep.push_back(malloc(100));
  std::vector<std::string> notes;
  const long n = assay_heap_iterate(
      [](void* a, size_t, void* arg) {
        auto* notes = static_cast<std::vector<std::string>*>(arg);
        notes->push_back(std::to_string(reinterpret_cast<uintptr_t>(a)));  // allocates
      },
      &notes);
  ASSERT_GT(n, 100);
  EXPECT_EQ(static_cast<size_t>(n), notes.size());
  for (void* p : keep) free(p);
}

std::string Capture(void (*fn)(FILE*)) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  fn(f);
  fclose(f);
  std::string s(buf, len);
  free(buf);
  return s;
}

TEST(StatsPrint, TableCountsBlocksBySizeInTheSeedFormat) {
  // 2990 B is served by the 3072 B class; the program allocates nothing
  // else of that size meanwhile.
  std::vector<void*> blocks;
  for (int i = 0; i < 777; ++i) blocks.push_back(malloc(2990));
  const std::string table = Capture([](FILE* f) { assay_stats_print(f); });
  const size_t line = table.find("   3,072 bytes *        777 allocs (");
  ASSERT_NE(line, std::string::npos) << table;
  EXPECT_NE(table.find("=     2,386,944 bytes (", line), std::string::npos) << table;
  EXPECT_NE(table.find("Heap: "), std::string::npos);
  EXPECT_NE(table.find("Total VM allocated by heap: "), std::string::npos);
  for (const char* total :
       {"thread caches", "central caches", "resident", "purged", "metadata", "profiler"}) {
    EXPECT_NE(table.find(total), std::string::npos) << total;
  }
  char json[16384];
  const size_t need = assay_stats_json(json, sizeof(json));
  ASSERT_LT(need, sizeof(json));
  EXPECT_EQ(strlen(json), need);
  EXPECT_NE(std::string(json).find("{\"size\":3072,\"count\":777,\"bytes\":2386944}"),
            std::string::npos)
      << json;
  for (void* p : blocks) free(p);
  const std::string after = Capture([](FILE* f) { assay_stats_print(f); });
  EXPECT_EQ(after.find("   3,072 bytes *        777 allocs"), std::string::npos);
}

TEST(StatsPrint, JsonTruncatesSafely) {
  char small[16];
  memset(small, 'x', sizeof(small));
  const size_t need = assay_stats_json(small, sizeof(small));
  EXPECT_GT(need, sizeof(small));
  EXPECT_EQ(small[sizeof(small) - 1], '\0');
  EXPECT_EQ(std::string(small, 9), "{\"sizes\":");
}

// mallinfo2 against blocks of known sizes: uordblks grows by at least the
// requested bytes and at most their rounding (a small block's size class from
// alloc/size_classes.h, 64 KiB slices for a large one, pages for a huge one),
// arena holds every small and large block, hblks/hblkhd count the huge ones,
// and all of it drops back when they are freed.
TEST(StatsPrint, Mallinfo2FollowsAKnownAllocationPattern) {
  using assay::internal::AlignUp;
  using assay::internal::ClassOfSizeSlow;
  using assay::internal::ClassSizeOf;
  using assay::internal::kMaxLargeSize;
  using assay::internal::kMaxSmallSize;
  using assay::internal::kPageSize;
  using assay::internal::kSliceSize;

  std::mt19937_64 rng(0x3a11f02);
  std::vector<size_t> sizes;
  for (int i = 0; i < 3000; ++i) sizes.push_back(1 + rng() % 4096);
  for (int i = 0; i < 200; ++i) sizes.push_back(4097 + rng() % (kMaxSmallSize - 4096));
  for (int i = 0; i < 6; ++i)
    sizes.push_back(kMaxSmallSize + 1 + rng() % (kMaxLargeSize - kMaxSmallSize));
  sizes.push_back(3 * 1024 * 1024 + 123);  // huge
  sizes.push_back(5 * 1024 * 1024 + 1);

  size_t requested = 0, rounded = 0;  // every block
  size_t in_segments = 0;             // small and large blocks, requested bytes
  size_t huge_requested = 0, huge_rounded = 0, huge_blocks = 0;
  for (size_t n : sizes) {
    requested += n;
    if (n <= kMaxSmallSize) {
      const size_t cls = ClassOfSizeSlow(n);
      ASSERT_GE(ClassSizeOf(cls), n);
      rounded += ClassSizeOf(cls);
      in_segments += n;
    } else if (n <= kMaxLargeSize) {
      rounded += AlignUp(n, kSliceSize);
      in_segments += n;
    } else {
      rounded += AlignUp(n, kPageSize);
      huge_requested += n;
      huge_rounded += AlignUp(n, kPageSize);
      huge_blocks++;
    }
  }
  ASSERT_EQ(huge_blocks, 2u);

  std::vector<void*> blocks;
  blocks.reserve(sizes.size());
  // Once before measuring: the first frees that leave dirty pages start the
  // purger thread, whose creation allocates (libc's thread descriptor).
  for (size_t n : sizes) blocks.push_back(malloc(n));
  for (void* p : blocks) free(p);
  blocks.clear();
  // Gives back the thread cache and the cached huge ranges, so a huge block
  // is a fresh mapping of its own pages and not a bigger cached one.
  malloc_trim(0);
  const struct mallinfo2 before = mallinfo2();
  for (size_t n : sizes) {
    void* p = malloc(n);
    ASSERT_NE(p, nullptr);
    static_cast<char*>(p)[n - 1] = 1;
    blocks.push_back(p);
  }
  const struct mallinfo2 during = mallinfo2();
  ASSERT_GE(during.uordblks, before.uordblks);
  const size_t grew = during.uordblks - before.uordblks;
  EXPECT_GE(grew, requested);
  EXPECT_LE(grew, rounded) << "requested " << requested;
  EXPECT_GE(during.arena, in_segments);
  EXPECT_GE(during.arena + during.hblkhd, during.uordblks);
  EXPECT_EQ(during.hblks, before.hblks + huge_blocks);
  EXPECT_GE(during.hblkhd, before.hblkhd + huge_requested);
  EXPECT_LE(during.hblkhd, before.hblkhd + huge_rounded);

  for (void* p : blocks) free(p);
  const struct mallinfo2 after = mallinfo2();
  EXPECT_EQ(after.uordblks, before.uordblks) << "during " << during.uordblks;
  EXPECT_EQ(after.hblks, before.hblks);
  EXPECT_EQ(after.hblkhd, before.hblkhd);
}

TEST(StatsPrint, StatsAtExitOption) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(pipefd[1], 2);
    setenv("ASSAY_OPTIONS", "stats_at_exit=1", 1);
    execl("/proc/self/exe", "self", "--gtest_filter=StatsPrint.JsonTruncatesSafely", nullptr);
    _exit(127);
  }
  close(pipefd[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof(buf))) > 0;) err.append(buf, n);
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NE(err.find("assay heap by size"), std::string::npos) << err;
  EXPECT_NE(err.find("Total VM allocated by heap: "), std::string::npos) << err;
}

}  // namespace
