// Unbiased heap estimates from the samples, through the real allocator: three
// allocation sites hold known live amounts (20000 x 64 B, 2000 x 1000 B,
// 50 x 200 KiB); at rates 4096 and 64 KiB the Horvitz-Thompson estimates
// sum n/q(n) (bytes) and sum 1/q(n) (objects) over each site's recorded
// blocks land within 5 sigma of the truth, and their mean over 20 seeds
// within 5 sigma/sqrt(20). Recorded blocks are attributed to sites by
// address (no stacks needed).
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "assay/profiler.hpp"
#include "gtest/gtest.h"
#include "tests/stats/stats_util.h"

namespace {

using stats_util::BinomialWithin;
using stats_util::BytesVariance;
using stats_util::kKiB;
using stats_util::ObjectsVariance;
using stats_util::SampledProb;
using stats_util::WithinSigmas;

// Hides a value from the optimiser.
template <typename T>
T Opaque(T v) {
  asm volatile("" : "+r"(v));
  return v;
}

// The three sites. Each appends its blocks to a vector reserved beforehand,
// so a site allocates nothing but its own blocks.
constexpr int kSites = 3;
constexpr uint64_t kSiteSize[kSites] = {64, 1000, 200 * kKiB};
constexpr uint64_t kSiteCount[kSites] = {20000, 2000, 50};

__attribute__((noinline)) bool SiteSmall(std::vector<void*>* out) {
  for (uint64_t i = 0; i < kSiteCount[0]; ++i) {
    void* p = malloc(Opaque(kSiteSize[0]));
    if (p == nullptr) return false;
    out->push_back(p);
  }
  return true;
}

__attribute__((noinline)) bool SiteMedium(std::vector<void*>* out) {
  for (uint64_t i = 0; i < kSiteCount[1]; ++i) {
    void* p = malloc(Opaque(kSiteSize[1]));
    if (p == nullptr) return false;
    out->push_back(p);
  }
  return true;
}

__attribute__((noinline)) bool SiteLarge(std::vector<void*>* out) {
  for (uint64_t i = 0; i < kSiteCount[2]; ++i) {
    void* p = malloc(Opaque(kSiteSize[2]));
    if (p == nullptr) return false;
    out->push_back(p);
  }
  return true;
}

// Set while the sites run: only on_alloc calls raised there are kept.
thread_local bool tl_in_sites = false;

struct Record {
  const void* address;
  uint64_t requested;
  uint64_t points;
};

struct SiteEstimate {
  uint64_t recorded = 0;
  double bytes = 0;    // sum n / q(n)
  double objects = 0;  // sum 1 / q(n)
  uint64_t wrong_size = 0;
};

struct RunResult {
  bool ok = false;
  SiteEstimate site[kSites];
  uint64_t unmatched = 0;  // records of blocks of no site (raised by the runtime)
};

// One session at `rate`: runs the three sites with all their blocks live,
// stops, attributes each recorded block to the site that allocated it, then
// frees everything.
RunResult RunSites(uint64_t rate, uint64_t seed) {
  RunResult result;
  std::vector<void*> blocks[kSites];
  uint64_t total_count = 0;
  for (int s = 0; s < kSites; ++s) {
    blocks[s].reserve(kSiteCount[s]);
    total_count += kSiteCount[s];
  }
  std::vector<Record> records;
  records.reserve(total_count + 64);  // no allocation inside the callback
  uint64_t overflow = 0;

  assay::Tracker tracker;
  tracker.on_alloc = [&records,
                      &overflow](const assay::SampledAllocation& a) -> std::optional<uintptr_t> {
    if (!tl_in_sites) return std::nullopt;
    if (records.size() == records.capacity()) {
      overflow++;
    } else {
      records.push_back({a.address, a.requested_bytes, a.n_samples});
    }
    return std::nullopt;
  };
  assay::ProfilerOptions options;
  options.rate = rate;
  options.seed = seed;
  options.max_depth = 8;
  if (!assay::Start(options, std::move(tracker))) {
    ADD_FAILURE() << "assay::Start failed";
    return result;
  }
  tl_in_sites = true;
  const bool allocated = SiteSmall(&blocks[0]) && SiteMedium(&blocks[1]) && SiteLarge(&blocks[2]);
  tl_in_sites = false;
  assay::Stop();

  if (!allocated) {
    ADD_FAILURE() << "malloc failed";
  } else if (overflow != 0) {
    ADD_FAILURE() << overflow << " on_alloc calls beyond one per block";
  } else {
    for (int s = 0; s < kSites; ++s) std::sort(blocks[s].begin(), blocks[s].end());
    for (const Record& r : records) {
      int site = -1;
      for (int s = 0; s < kSites && site < 0; ++s) {
        if (std::binary_search(blocks[s].begin(), blocks[s].end(), r.address)) site = s;
      }
      if (site < 0) {
        result.unmatched++;
        continue;
      }
      SiteEstimate& e = result.site[site];
      e.recorded++;
      if (r.requested != kSiteSize[site]) e.wrong_size++;
      const double q = SampledProb(rate, r.requested);
      e.bytes += static_cast<double>(r.requested) / q;
      e.objects += 1.0 / q;
    }
    result.ok = true;
  }
  for (auto& site : blocks) {
    for (void* p : site) free(p);
  }
  return result;
}

// Truth and standard deviations of the estimators for a site (or, summed,
// for the whole heap). Blocks are disjoint byte ranges of a Bernoulli(p)
// process, so their sampled indicators are independent and the per-block
// variances add: Var B^ = sum n^2 (1 - q)/q, Var N^ = sum (1 - q)/q.
struct Truth {
  double bytes = 0;
  double objects = 0;
  double bytes_var = 0;
  double objects_var = 0;
};

Truth SiteTruth(uint64_t rate, int s) {
  const double count = static_cast<double>(kSiteCount[s]);
  return {count * static_cast<double>(kSiteSize[s]), count,
          count * BytesVariance(rate, kSiteSize[s]), count * ObjectsVariance(rate, kSiteSize[s])};
}

Truth HeapTruth(uint64_t rate) {
  Truth t;
  for (int s = 0; s < kSites; ++s) {
    const Truth st = SiteTruth(rate, s);
    t.bytes += st.bytes;
    t.objects += st.objects;
    t.bytes_var += st.bytes_var;
    t.objects_var += st.objects_var;
  }
  return t;
}

constexpr uint64_t kRates[] = {4096, 64 * kKiB};

TEST(EstimatorTest, PerSiteEstimatesWithinFiveSigma) {
  // Per site (n fixed, `count` blocks): B^ = sum over recorded blocks of n/q,
  // E[B^] = count n (each block is recorded with probability exactly q),
  // sd(B^) = sqrt(count n^2 (1 - q)/q); N^ likewise with 1/q and
  // sqrt(count (1 - q)/q). Bound: |estimate - truth| <= 5 sd. Since B^ = (n/q)
  // X with X = #recorded ~ Binomial(count, q), X is also checked with the
  // exact binomial tail at the same 5-sigma level (p >= 5.7e-7). Where X has
  // a small mean of misses the normal 5 sd bound is the looser guarantee:
  // for 200 KiB at 64 KiB (q = 0.956, 2.2 expected misses of 50) it fails
  // for >= 10 misses, probability 5.5e-5. A site with q = 1 in double (200
  // KiB at rate 4096: 1 - q = e^-50) has sd 0 and must be exact.
  uint64_t seed = 0xE571000;
  for (const uint64_t rate : kRates) {
    const RunResult r = RunSites(rate, ++seed);
    ASSERT_TRUE(r.ok);
    std::printf("[ stats    ] rate %llu: %llu recorded blocks of no site\n",
                static_cast<unsigned long long>(rate),
                static_cast<unsigned long long>(r.unmatched));
    for (int s = 0; s < kSites; ++s) {
      const Truth t = SiteTruth(rate, s);
      const SiteEstimate& e = r.site[s];
      const std::string name = "rate " + std::to_string(rate) + ", site " +
                               std::to_string(kSiteCount[s]) + " x " +
                               std::to_string(kSiteSize[s]) + ": ";
      EXPECT_EQ(e.wrong_size, 0u) << name;
      EXPECT_TRUE(WithinSigmas(name + "bytes", e.bytes, t.bytes, std::sqrt(t.bytes_var)));
      EXPECT_TRUE(WithinSigmas(name + "objects", e.objects, t.objects, std::sqrt(t.objects_var)));
      EXPECT_TRUE(BinomialWithin(name + "recorded", e.recorded, kSiteCount[s],
                                 SampledProb(rate, kSiteSize[s])));
    }
  }
}

TEST(EstimatorTest, HeapTotalIsUnbiasedOverTwentySeeds) {
  // The heap totals B^ = sum over all recorded blocks of n/q and N^ = sum
  // 1/q, over 20 runs with independent seeds: the mean of 20 iid copies has
  // expectation the truth and sd sqrt(Var/20) with Var = sum over all blocks
  // of the per-block variances (HeapTruth). Each B^ is a sum of 22050
  // independent terms dominated by the 22000 small blocks, so the mean is
  // close to normal; bound |mean - truth| <= 5 sd / sqrt(20).
  constexpr int kRuns = 20;
  uint64_t seed = 0xB1A5000;
  for (const uint64_t rate : kRates) {
    const Truth t = HeapTruth(rate);
    double bytes_sum = 0;
    double objects_sum = 0;
    for (int run = 0; run < kRuns; ++run) {
      const RunResult r = RunSites(rate, ++seed);
      ASSERT_TRUE(r.ok);
      for (const SiteEstimate& e : r.site) {
        bytes_sum += e.bytes;
        objects_sum += e.objects;
      }
    }
    const std::string name = "rate " + std::to_string(rate) + ", mean of 20 runs: ";
    EXPECT_TRUE(WithinSigmas(name + "heap bytes", bytes_sum / kRuns, t.bytes,
                             std::sqrt(t.bytes_var / kRuns)));
    EXPECT_TRUE(WithinSigmas(name + "heap objects", objects_sum / kRuns, t.objects,
                             std::sqrt(t.objects_var / kRuns)));
  }
}

}  // namespace
