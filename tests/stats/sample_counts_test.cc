// Sample counts through the real allocator: with a profiling session at rate
// 1, 64, 4096 or 512 KiB, blocks of 8 B to 64 MiB allocated (and freed at
// once) in a loop get SampledAllocation::n_samples summing to
// Binomial(total bytes, 1/rate), and are recorded (one on_alloc each) with
// probability q(n) = 1 - (1 - 1/rate)^n. Rate 1 records every block with
// n_samples = n exactly. malloc(0) is never sampled.
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "assay/profiler.hpp"
#include "gtest/gtest.h"
#include "tests/stats/stats_util.h"

namespace {

using stats_util::kGiB;
using stats_util::kKiB;
using stats_util::kMiB;

// Set around the allocation loop only: gtest and the test body allocate too,
// and their blocks are sampled like any other. Callbacks run on the
// allocating thread before the allocator call returns, so what on_alloc sees
// while the flag is set was raised by the loop's malloc or free.
thread_local bool tl_in_loop = false;

struct Counts {
  uint64_t callbacks = 0;     // on_alloc calls for the loop's blocks
  uint64_t points = 0;        // their sum of n_samples
  uint64_t wrong_size = 0;    // ... whose requested_bytes is not n
  uint64_t zero_points = 0;   // ... with n_samples == 0 (the API promises >= 1)
  uint64_t points_not_n = 0;  // rate 1 only: ... with n_samples != n
  uint64_t duplicates = 0;    // blocks with more than one on_alloc
  uint64_t foreign = 0;       // on_alloc for other blocks raised inside the loop
  uint64_t foreign_bytes = 0;
};

// on_alloc calls raised by one malloc or free of the loop. A free can raise
// one too: the first free of a large block starts the allocator's purge
// thread, and pthread_create's own calloc (320 bytes, glibc's DTV) is a real,
// sampled allocation of this thread. Those are told apart by address.
struct Seen {
  static constexpr int kMax = 8;
  struct Record {
    const void* address;
    uint64_t requested;
    uint64_t points;
  } records[kMax];
  int count = 0;
  uint64_t overflow = 0;
};

// Hides a value from the optimiser, so malloc/free pairs are not folded.
template <typename T>
T Opaque(T v) {
  asm volatile("" : "+r"(v));
  return v;
}

// Files the on_alloc calls seen since the last call: those for `block` are
// the loop's (at most one per block), the rest foreign.
void Settle(Seen* seen, const void* block, uint64_t rate, uint64_t n, Counts* c) {
  int mine = 0;
  for (int i = 0; i < seen->count; ++i) {
    const Seen::Record& r = seen->records[i];
    if (block != nullptr && r.address == block) {
      ++mine;
      c->callbacks++;
      c->points += r.points;
      if (r.requested != n) c->wrong_size++;
      if (r.points == 0) c->zero_points++;
      if (rate == 1 && r.points != n) c->points_not_n++;
    } else {
      c->foreign++;
      c->foreign_bytes += r.requested;
    }
  }
  if (mine > 1) c->duplicates++;
  c->foreign += seen->overflow;
  seen->count = 0;
  seen->overflow = 0;
}

// Allocates and frees `count` blocks of n bytes under a session at `rate`
// and returns what on_alloc saw for them. The tracker keeps no block
// (nullopt), so no on_free follows, and nothing allocates in the callback.
Counts RunLoop(uint64_t rate, uint64_t n, uint64_t count, uint64_t seed) {
  Counts c;
  Seen seen;
  assay::Tracker tracker;
  tracker.on_alloc = [&seen](const assay::SampledAllocation& a) -> std::optional<uintptr_t> {
    if (!tl_in_loop) return std::nullopt;
    if (seen.count == Seen::kMax) {
      seen.overflow++;
    } else {
      seen.records[seen.count++] = {a.address, a.requested_bytes, a.n_samples};
    }
    return std::nullopt;
  };
  assay::ProfilerOptions options;
  options.rate = rate;
  options.seed = seed;
  options.max_depth = 4;
  if (!assay::Start(options, std::move(tracker))) {
    ADD_FAILURE() << "assay::Start failed";
    return c;
  }
  tl_in_loop = true;
  for (uint64_t i = 0; i < count; ++i) {
    void* p = malloc(Opaque(n));
    if (p == nullptr) {
      tl_in_loop = false;
      assay::Stop();
      ADD_FAILURE() << "malloc(" << n << ") failed";
      return c;
    }
    Settle(&seen, p, rate, n, &c);
    free(Opaque(p));
    Settle(&seen, nullptr, rate, n, &c);
  }
  tl_in_loop = false;
  assay::Stop();
  if (c.foreign != 0) {
    std::printf("[ stats    ] rate %llu, n %llu: %llu foreign on_alloc in the loop (%llu bytes)\n",
                static_cast<unsigned long long>(rate), static_cast<unsigned long long>(n),
                static_cast<unsigned long long>(c.foreign),
                static_cast<unsigned long long>(c.foreign_bytes));
  }
  return c;
}

// Blocks per case: about 2e5 expected sample points, bounded by 16M
// allocations, 1 GiB of allocation in total (64 MiB blocks: 16 of them,
// 3 MiB: 341), and about 4e4 expected recorded blocks (each costs a stack
// capture and a callback); at least 16 blocks (within 1 GiB).
uint64_t BlockCount(uint64_t rate, uint64_t n) {
  const double q = stats_util::SampledProb(rate, n);
  double count = 2e5 * static_cast<double>(rate) / static_cast<double>(n);
  count = std::min(count, 16e6);
  count = std::min(count, static_cast<double>(kGiB / n));
  count = std::min(count, 4e4 / q);
  count = std::max(count, std::min(16.0, static_cast<double>(kGiB / n)));
  return std::max<uint64_t>(static_cast<uint64_t>(count), 1);
}

constexpr uint64_t kSizes[] = {8, 100, 4 * kKiB, 300 * kKiB, 3 * kMiB, 64 * kMiB};

TEST(SampleCountsTest, RateOneRecordsEveryByte) {
  // p = 1: every block of n >= 1 bytes is recorded, once, with k = n, so the
  // sum of n_samples is exactly the bytes allocated.
  uint64_t seed = 0x1000;
  for (const uint64_t n : kSizes) {
    const uint64_t count = BlockCount(1, n);
    const Counts c = RunLoop(1, n, count, ++seed);
    const std::string name =
        "rate 1, n " + std::to_string(n) + ", " + std::to_string(count) + " blocks";
    std::printf("[ stats    ] %-52s callbacks %llu sum n_samples %llu (bytes %llu)\n", name.c_str(),
                static_cast<unsigned long long>(c.callbacks),
                static_cast<unsigned long long>(c.points),
                static_cast<unsigned long long>(count * n));
    EXPECT_EQ(c.callbacks, count) << name;
    EXPECT_EQ(c.points, count * n) << name;
    EXPECT_EQ(c.points_not_n, 0u) << name;
    EXPECT_EQ(c.wrong_size, 0u) << name;
    EXPECT_EQ(c.duplicates, 0u) << name;
  }
}

TEST(SampleCountsTest, SampledBytesAndBlocksFollowTheModel) {
  // Every requested byte is a sample point with probability p = 1/rate,
  // independently (the countdown's gaps are iid Geometric(p), memoryless, so
  // neither the session's start nor the unflagged allocations between cases
  // matter). Over `count` blocks of n bytes, T = count * n bytes:
  //   sum n_samples ~ Binomial(T, p):           mean T/rate, sigma sqrt(T p (1 - p))
  //   #on_alloc     ~ Binomial(count, q(n)):    mean count q, sigma sqrt(count q (1 - q))
  // Each is held to the 5-sigma level with the exact binomial tail
  // (BinomialWithin: two-sided p >= 2 Phi(-5) = 5.7e-7; for the large means
  // here that is |z| <= 5, and it stays exact where a mean is small, e.g. 0.8
  // expected unrecorded 3 MiB blocks at rate 512 KiB).
  uint64_t seed = 0x2000;
  for (const uint64_t rate : {uint64_t{64}, uint64_t{4096}, 512 * kKiB}) {
    for (const uint64_t n : kSizes) {
      const uint64_t count = BlockCount(rate, n);
      const Counts c = RunLoop(rate, n, count, ++seed);
      const std::string name = "rate " + std::to_string(rate) + ", n " + std::to_string(n) + ", " +
                               std::to_string(count) + " blocks: ";
      EXPECT_TRUE(stats_util::BinomialWithin(name + "sum n_samples", c.points, count * n,
                                             1.0 / static_cast<double>(rate)));
      EXPECT_TRUE(stats_util::BinomialWithin(name + "recorded", c.callbacks, count,
                                             stats_util::SampledProb(rate, n)));
      EXPECT_EQ(c.wrong_size, 0u) << name;
      EXPECT_EQ(c.zero_points, 0u) << name;
      EXPECT_EQ(c.duplicates, 0u) << name;
    }
  }
}

// The sampled (iteration, n_samples) pairs of a loop of `count` malloc/free
// pairs cycling through a few sizes, under a session at `rate` with `seed`.
std::vector<std::pair<uint64_t, uint64_t>> SampledSequence(uint64_t rate, uint64_t seed,
                                                           uint64_t count) {
  constexpr uint64_t kCycle[] = {8, 100, 24, 4096, 1000, 64, 300};
  std::vector<std::pair<uint64_t, uint64_t>> sequence;
  sequence.reserve(count);
  Seen seen;
  assay::Tracker tracker;
  tracker.on_alloc = [&seen](const assay::SampledAllocation& a) -> std::optional<uintptr_t> {
    if (!tl_in_loop) return std::nullopt;
    if (seen.count == Seen::kMax) {
      seen.overflow++;
    } else {
      seen.records[seen.count++] = {a.address, a.requested_bytes, a.n_samples};
    }
    return std::nullopt;
  };
  assay::ProfilerOptions options;
  options.rate = rate;
  options.seed = seed;
  options.max_depth = 4;
  if (!assay::Start(options, std::move(tracker))) {
    ADD_FAILURE() << "assay::Start failed";
    return sequence;
  }
  tl_in_loop = true;
  for (uint64_t i = 0; i < count; ++i) {
    void* p = malloc(Opaque(kCycle[i % 7]));
    for (int r = 0; r < seen.count; ++r) {
      if (seen.records[r].address == p) sequence.emplace_back(i, seen.records[r].points);
    }
    seen.count = 0;
    free(Opaque(p));
    seen.count = 0;  // records raised by free are never the loop's blocks
  }
  tl_in_loop = false;
  assay::Stop();
  return sequence;
}

TEST(SampleCountsTest, FixedSeedReproducesTheMainThreadStream) {
  // ProfilerOptions::seed fixes the main thread's draws: the same seed gives
  // the same blocks sampled with the same n_samples; another seed does not
  // (200k blocks of 799 B on average at rate 4096 hold ~39000 sample points
  // in ~28000 sampled blocks: two independent runs agreeing on all of them is
  // out of the question).
  constexpr uint64_t kCount = 200000;
  // The thread's first unw_backtrace allocates libunwind's thread-local
  // block (glibc's dynamic TLS of a dlopened library, profiler/unwinder.h):
  // an allocation of its own, once, which shifts the first session's
  // stream. Taken here, before the runs compared.
  SampledSequence(4096, 0x5EED, kCount / 10);
  const auto first = SampledSequence(4096, 0x5EED, kCount);
  const auto second = SampledSequence(4096, 0x5EED, kCount);
  const auto other = SampledSequence(4096, 0x5EEE, kCount);
  std::printf("[ stats    ] seed 0x5EED: %zu and %zu sampled blocks, seed 0x5EEE: %zu\n",
              first.size(), second.size(), other.size());
  EXPECT_GT(first.size(), 1000u);
  EXPECT_TRUE(first == second);
  EXPECT_FALSE(first == other);
}

TEST(SampleCountsTest, MallocZeroIsNeverSampled) {
  // A block of 0 bytes holds no byte, so no sample point: q(0) = 0, even at
  // rate 1 where every other allocation is recorded.
  for (const uint64_t rate : {uint64_t{1}, uint64_t{64}}) {
    const Counts c = RunLoop(rate, 0, 100000, 0x3000 + rate);
    EXPECT_EQ(c.callbacks, 0u) << "rate " << rate;
    EXPECT_EQ(c.points, 0u) << "rate " << rate;
  }
}

}  // namespace
