// Sampling of assay_comalloc batches: at rate 256, batches of 64 blocks of
// mixed sizes (0 B to 40 KB, shuffled) get n_samples summing to
// Binomial(total bytes, 1/256) and are recorded with probability q(n) each;
// every recorded block reports batch_size 64 and batch_index equal to its
// position in the batch (its address is out[batch_index]), and a 0-byte
// block is never recorded. At rate 1 every non-empty block is recorded with
// n_samples = its size.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <string>

#include "assay/assay.h"
#include "assay/profiler.hpp"
#include "gtest/gtest.h"
#include "tests/stats/stats_util.h"

namespace {

using stats_util::SampledProb;

constexpr size_t kBatch = 64;
// 16 sizes, each four times per batch: empty, tiny, every small-class range,
// above the 1 KiB lookup table, and 40000 B. 230244 bytes per batch.
constexpr size_t kBaseSizes[16] = {0,   1,   8,   24,   48,   64,   100,   128,
                                   256, 300, 512, 1000, 1024, 4096, 10000, 40000};

// Set around assay_comalloc: callbacks run before it returns, on this thread.
thread_local bool tl_in_batch = false;

struct Seen {
  static constexpr int kMax = 2 * kBatch;
  assay::SampledAllocation records[kMax];
  int count = 0;
  uint64_t overflow = 0;
};

struct Totals {
  uint64_t bytes = 0;            // requested bytes of all batch blocks
  uint64_t points = 0;           // sum of n_samples of recorded batch blocks
  uint64_t recorded = 0;         // recorded batch blocks
  double expected_recorded = 0;  // sum of q(n) over all batch blocks
  double recorded_var = 0;       // sum of q(n) (1 - q(n))
  uint64_t foreign = 0;          // records of blocks outside the batch
  uint64_t bad = 0;              // records failing a per-block check (each reported)
};

// Runs `batches` comalloc batches under a session at `rate` and checks each
// record against its batch as it comes.
Totals RunBatches(uint64_t rate, int batches, uint64_t seed) {
  Totals t;
  Seen seen;
  assay::Tracker tracker;
  tracker.on_alloc = [&seen](const assay::SampledAllocation& a) -> std::optional<uintptr_t> {
    if (!tl_in_batch) return std::nullopt;
    if (seen.count == Seen::kMax) {
      seen.overflow++;
    } else {
      seen.records[seen.count] = a;
      seen.records[seen.count].stack = {};  // the span dies with the callback
      seen.count++;
    }
    return std::nullopt;
  };
  assay::ProfilerOptions options;
  options.rate = rate;
  options.seed = seed;
  options.max_depth = 8;
  if (!assay::Start(options, std::move(tracker))) {
    ADD_FAILURE() << "assay::Start failed";
    return t;
  }
  std::mt19937_64 shuffle_rng(seed);
  size_t sizes[kBatch];
  void* out[kBatch];
  for (size_t i = 0; i < kBatch; ++i) sizes[i] = kBaseSizes[i % 16];
  for (int b = 0; b < batches; ++b) {
    std::shuffle(sizes, sizes + kBatch, shuffle_rng);
    tl_in_batch = true;
    const int rc = assay_comalloc(kBatch, sizes, out);
    tl_in_batch = false;
    if (rc != 0) {
      ADD_FAILURE() << "assay_comalloc failed: " << rc;
      break;
    }
    for (size_t i = 0; i < kBatch; ++i) {
      const double q = SampledProb(rate, sizes[i]);
      t.bytes += sizes[i];
      t.expected_recorded += q;
      t.recorded_var += q * (1 - q);
    }
    bool index_seen[kBatch] = {};
    for (int r = 0; r < seen.count; ++r) {
      const assay::SampledAllocation& a = seen.records[r];
      const size_t pos = static_cast<size_t>(std::find(out, out + kBatch, a.address) - out);
      if (pos == kBatch) {
        t.foreign++;
        if (a.batch_size != 1) {
          t.bad++;
          ADD_FAILURE() << "batch " << b << ": record of a block outside the batch with "
                        << "batch_size " << a.batch_size;
        }
        continue;
      }
      t.recorded++;
      t.points += a.n_samples;
      const bool ok = a.batch_size == kBatch && a.batch_index < kBatch && a.batch_index == pos &&
                      !index_seen[pos] && a.requested_bytes == sizes[pos] &&
                      a.requested_bytes > 0 && a.n_samples >= 1 &&
                      (rate != 1 || a.n_samples == sizes[pos]);
      index_seen[pos] = true;
      if (!ok) {
        t.bad++;
        ADD_FAILURE() << "batch " << b << ", block " << pos << " (" << sizes[pos]
                      << " B): batch_index " << a.batch_index << ", batch_size " << a.batch_size
                      << ", requested " << a.requested_bytes << ", n_samples " << a.n_samples;
      }
    }
    if (seen.overflow != 0) {
      t.bad++;
      ADD_FAILURE() << "batch " << b << ": more than " << Seen::kMax << " on_alloc calls";
    }
    seen.count = 0;
    seen.overflow = 0;
    if (rate == 1) {
      for (size_t i = 0; i < kBatch; ++i) {
        if (sizes[i] > 0 && !index_seen[i]) {
          t.bad++;
          ADD_FAILURE() << "rate 1, batch " << b << ": block " << i << " (" << sizes[i]
                        << " B) not recorded";
        }
      }
    }
    assay_bulk_free(out, kBatch);
  }
  assay::Stop();
  return t;
}

TEST(ComallocSamplingTest, BatchSamplesFollowTheModel) {
  // The countdown walks a batch's blocks in order, byte by byte, like
  // consecutive mallocs, so each requested byte is a sample point with
  // probability p = 1/256 independently:
  //   sum n_samples over the batch blocks ~ Binomial(T, p), T = total bytes:
  //     mean T/256, sigma sqrt(T p (1 - p)); checked with the exact binomial
  //     tail at the 5-sigma level (BinomialWithin; mean ~4.5e5, so |z| <= 5).
  //   #recorded = sum of independent Bernoulli(q(n_i)): mean sum q, variance
  //     sum q (1 - q) (~1.6e4 recorded): |#recorded - mean| <= 5 sigma.
  constexpr uint64_t kRate = 256;
  constexpr int kBatches = 500;
  const Totals t = RunBatches(kRate, kBatches, 0xC0A1100C);
  EXPECT_EQ(t.bad, 0u);
  std::printf("[ stats    ] %d batches: %llu records outside the batches\n", kBatches,
              static_cast<unsigned long long>(t.foreign));
  EXPECT_TRUE(stats_util::BinomialWithin("comalloc rate 256: sum n_samples", t.points, t.bytes,
                                         1.0 / kRate));
  EXPECT_TRUE(stats_util::WithinSigmas("comalloc rate 256: recorded blocks",
                                       static_cast<double>(t.recorded), t.expected_recorded,
                                       std::sqrt(t.recorded_var)));
}

TEST(ComallocSamplingTest, RateOneRecordsEveryNonEmptyBlock) {
  // p = 1: every block of n >= 1 bytes is recorded with n_samples = n (checked
  // per block in RunBatches), so the sum is the batch bytes exactly; the
  // 0-byte blocks (4 per batch) are never recorded.
  constexpr int kBatches = 20;
  const Totals t = RunBatches(1, kBatches, 0xC0A11001);
  EXPECT_EQ(t.bad, 0u);
  EXPECT_EQ(t.points, t.bytes);
  EXPECT_EQ(t.recorded, uint64_t{kBatches} * (kBatch - 4));
}

}  // namespace
