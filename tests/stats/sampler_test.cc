// Statistical tests of the sampling law in profiler/sampler.h, pure math (no
// heap, no profiler session): SamplingRate::DrawGap is Geometric(1/rate) on
// {1, 2, ...} (mean, chi-square on quantile bins, Kolmogorov-Smirnov),
// FastLog's relative error is below 1e-9, CountPoints over a stream of
// blocks gives Binomial(n, 1/rate) sample points per block, and rate 1 is
// deterministic (gap 1, k = n). Fixed seeds throughout.
#include "profiler/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/stats/stats_util.h"

namespace {

using assay::profiler::FastLog;
using assay::profiler::Rng;
using assay::profiler::SamplingRate;
using stats_util::kKiB;
using stats_util::kMiB;
using stats_util::SampledProb;
using stats_util::WithinSigmas;

constexpr uint64_t kRates[] = {64, 4096, 512 * kKiB};

// P(G <= k) for G ~ Geometric(p) on {1, 2, ...}: 1 - (1 - p)^k.
double GeometricCdf(uint64_t rate, double k) {
  if (k <= 0) return 0.0;
  return -std::expm1(k * std::log1p(-1.0 / static_cast<double>(rate)));
}

std::vector<int64_t> DrawGaps(uint64_t rate, uint64_t seed, size_t count) {
  const SamplingRate law(rate);
  Rng rng;
  rng.Seed(seed);
  std::vector<int64_t> gaps(count);
  for (int64_t& g : gaps) g = law.DrawGap(rng);
  return gaps;
}

TEST(SamplerTest, DrawGapMeanIsRate) {
  // G ~ Geometric(p), p = 1/rate: E[G] = 1/p = rate, Var[G] = (1 - p)/p^2.
  // The mean of N iid draws has sigma = sqrt(1 - p)/p / sqrt(N), and by the
  // CLT (N = 1e6) it is within 5 sigma of rate except with probability 5.7e-7.
  constexpr size_t kDraws = 1'000'000;
  for (const uint64_t rate : kRates) {
    const std::vector<int64_t> gaps = DrawGaps(rate, 0x5A3D1E00 + rate, kDraws);
    double sum = 0;
    int64_t min_gap = INT64_MAX;
    for (const int64_t g : gaps) {
      sum += static_cast<double>(g);
      min_gap = std::min(min_gap, g);
    }
    const double p = 1.0 / static_cast<double>(rate);
    const double sigma = std::sqrt(1.0 - p) / p / std::sqrt(static_cast<double>(kDraws));
    EXPECT_GE(min_gap, 1) << "rate " << rate;
    EXPECT_TRUE(WithinSigmas("mean gap, rate " + std::to_string(rate),
                             sum / static_cast<double>(kDraws), static_cast<double>(rate), sigma));
  }
}

TEST(SamplerTest, DrawGapChiSquareOnQuantileBins) {
  // B = 32 bins cut at the rounded quantiles of the geometric law,
  // b_j = round(rate * -ln(1 - j/B)), j = 1..31: bin 0 = {G <= b_1}, bin j =
  // {b_j < G <= b_{j+1}}, bin 31 = {G > b_31}. Bin probabilities are exact
  // (from the geometric CDF at the integer cuts), so with N = 200k draws
  // (>= ~5000 expected per bin) X^2 = sum (O - E)^2 / E is chi-square with
  // B - 1 = 31 degrees of freedom (no parameter is fitted). Critical value at
  // alpha = 1e-4: chi2_{31}^{-1}(1 - 1e-4) = 69.106 (upper regularised
  // incomplete gamma Q(15.5, x/2) = 1e-4 solved numerically).
  constexpr size_t kDraws = 200'000;
  constexpr int kBins = 32;
  constexpr double kCritical = 69.106;
  for (const uint64_t rate : kRates) {
    std::vector<int64_t> cuts;
    for (int j = 1; j < kBins; ++j) {
      cuts.push_back(std::llround(static_cast<double>(rate) * -std::log1p(-double(j) / kBins)));
    }
    // Distinct cuts (quantile spacing is >= rate/(B-1) >= 2 for rate 64).
    ASSERT_TRUE(std::adjacent_find(cuts.begin(), cuts.end(),
                                   [](int64_t a, int64_t b) { return a >= b; }) == cuts.end());
    std::vector<double> observed(kBins, 0.0);
    for (const int64_t g : DrawGaps(rate, 0xC0FFEE00 + rate, kDraws)) {
      observed[std::lower_bound(cuts.begin(), cuts.end(), g) - cuts.begin()] += 1;
    }
    double chi2 = 0;
    double min_expected = 1e300;
    for (int j = 0; j < kBins; ++j) {
      const double lo = j == 0 ? 0.0 : GeometricCdf(rate, static_cast<double>(cuts[j - 1]));
      const double hi = j == kBins - 1 ? 1.0 : GeometricCdf(rate, static_cast<double>(cuts[j]));
      const double expected = (hi - lo) * kDraws;
      min_expected = std::min(min_expected, expected);
      chi2 += (observed[j] - expected) * (observed[j] - expected) / expected;
    }
    std::printf("[ stats    ] chi-square, rate %-8llu X^2 = %.3f (df 31, critical %.3f)\n",
                static_cast<unsigned long long>(rate), chi2, kCritical);
    EXPECT_GE(min_expected, 1000.0) << "rate " << rate;
    EXPECT_LT(chi2, kCritical) << "rate " << rate;
  }
}

TEST(SamplerTest, DrawGapKolmogorovSmirnov) {
  // D = sup_x |F_N(x) - F(x)| against the exact geometric CDF F. Both are step
  // functions constant on [k, k+1), so the sup is over integers k, and it is
  // attained at an observed value v (F_N(v) vs F(v)) or just below it
  // (F_N(v-1) = F_N(previous value) vs F(v-1)). Critical value from the
  // Kolmogorov limit P(sqrt(N) D > x) ~ 2 exp(-2 x^2) at alpha = 1e-4:
  // x = sqrt(ln(2/alpha)/2) = 2.2253, D_crit = 2.2253/sqrt(N) = 0.004976 for
  // N = 200k. For a discrete F the test is conservative (its true level is
  // below alpha), so no continuity correction is needed.
  constexpr size_t kDraws = 200'000;
  const double critical = 2.2253 / std::sqrt(static_cast<double>(kDraws));
  for (const uint64_t rate : kRates) {
    std::vector<int64_t> gaps = DrawGaps(rate, 0xD15EA5E0 + rate, kDraws);
    std::sort(gaps.begin(), gaps.end());
    double d = 0;
    size_t i = 0;
    while (i < gaps.size()) {
      const int64_t v = gaps[i];
      const double below = static_cast<double>(i) / kDraws;  // F_N(v - 1)
      while (i < gaps.size() && gaps[i] == v) ++i;
      const double at = static_cast<double>(i) / kDraws;  // F_N(v)
      d = std::max(d, std::fabs(below - GeometricCdf(rate, static_cast<double>(v - 1))));
      d = std::max(d, std::fabs(at - GeometricCdf(rate, static_cast<double>(v))));
    }
    std::printf("[ stats    ] KS, rate %-8llu D = %.6f sqrt(N) D = %.4f (critical %.6f)\n",
                static_cast<unsigned long long>(rate), d, d * std::sqrt(double(kDraws)), critical);
    EXPECT_LT(d, critical) << "rate " << rate;
  }
}

// Relative error of FastLog(x) against libm's log, which is correctly rounded
// to within an ulp or so (~1e-16 relative), far below the 1e-9 under test.
double RelativeError(double x) {
  const double exact = std::log(x);
  const double fast = FastLog(x);
  if (exact == 0.0) return fast == 0.0 ? 0.0 : INFINITY;
  return std::fabs(fast - exact) / std::fabs(exact);
}

TEST(SamplerTest, FastLogRelativeErrorBelow1e9) {
  constexpr double kBound = 1e-9;  // the bound sampler.h documents
  double worst = 0;
  double worst_x = 0;
  auto check = [&](double x) {
    const double e = RelativeError(x);
    if (!(e <= worst)) {  // also catches NaN
      worst = e;
      worst_x = x;
    }
  };
  // Dense linear sweep of (0, 1]: x = i / 2^24.
  constexpr uint64_t kSteps = uint64_t{1} << 24;
  for (uint64_t i = 1; i <= kSteps; ++i) check(static_cast<double>(i) / kSteps);
  // Geometric sweep down to 2^-53 (the smallest UniformOpenZero value),
  // 2^16 points per octave.
  for (int64_t i = 0; i <= 53 * 65536; ++i) check(std::exp2(-static_cast<double>(i) / 65536.0));
  // Around 1 from both sides, ulp by ulp (ln x ~ x - 1: the relative error is
  // hardest to keep there) and around the sqrt(2) reduction boundary.
  for (int i = 1; i <= 100000; ++i) {
    check(1.0 - i * 0x1.0p-53);
    check(1.0 + i * 0x1.0p-52);
    check(std::sqrt(2.0) + i * 0x1.0p-52);
    check(std::sqrt(2.0) - i * 0x1.0p-52);
    check(std::sqrt(0.5) + i * 0x1.0p-53);
    check(std::sqrt(0.5) - i * 0x1.0p-53);
  }
  // Random doubles: what DrawGap feeds it, and random finite normal positive
  // doubles over the whole exponent range.
  Rng rng;
  rng.Seed(0xFA57106);
  for (int i = 0; i < 2'000'000; ++i) check(rng.UniformOpenZero());
  for (int i = 0; i < 2'000'000; ++i) {
    uint64_t bits = rng.Next() & ((uint64_t{1} << 63) - 1);  // sign 0
    const uint64_t exponent = 1 + (bits >> 52) % 2046;       // 1..2046: normal, finite
    bits = (bits & ((uint64_t{1} << 52) - 1)) | (exponent << 52);
    double x;
    std::memcpy(&x, &bits, sizeof(x));
    check(x);
  }
  std::printf("[ stats    ] FastLog worst relative error %.3g at x = %.17g\n", worst, worst_x);
  EXPECT_LT(worst, kBound) << "at x = " << worst_x;
}

TEST(SamplerTest, CountPointsIsBinomial) {
  // The allocator's use of the law, replayed without the heap: a countdown
  // `left` (index of the next sample point from the next byte); a block of n
  // bytes holds a point iff left < n, then CountPoints gives its k, else
  // left -= n. Sample points are a Bernoulli(p) process over the byte stream,
  // so over M blocks of n bytes, T = M n bytes:
  //   sum k ~ Binomial(T, p):                   mean T p, sigma sqrt(T p (1 - p))
  //   #blocks with k >= 1 ~ Binomial(M, q(n)):  mean M q, sigma sqrt(M q (1 - q))
  // (blocks are disjoint byte ranges, so their k are independent). Both are
  // held to the 5-sigma level with the exact binomial tail (BinomialWithin:
  // two-sided p >= 5.7e-7): some means are small, e.g. 1.85 expected
  // unsampled 3 MiB blocks at rate 512 KiB.
  constexpr uint64_t kSizes[] = {8, 100, 4 * kKiB, 300 * kKiB, 3 * kMiB};
  uint64_t seed = 0xB10C0000;
  for (const uint64_t rate : kRates) {
    const SamplingRate law(rate);
    for (const uint64_t n : kSizes) {
      // Enough bytes for ~2e5 expected points, at most 2e7 blocks and 1 GiB.
      uint64_t blocks = 200'000 * rate / n;
      blocks = std::min<uint64_t>(blocks, 20'000'000);
      blocks = std::min<uint64_t>(blocks, stats_util::kGiB / n);
      blocks = std::max<uint64_t>(blocks, 1);
      Rng rng;
      rng.Seed(++seed);
      int64_t left = law.DrawLeft(rng);
      uint64_t points = 0;
      uint64_t sampled = 0;
      for (uint64_t b = 0; b < blocks; ++b) {
        if (left < static_cast<int64_t>(n)) {
          const uint64_t k = law.CountPoints(&left, n, rng);
          ASSERT_GE(k, 1u);
          points += k;
          ++sampled;
        } else {
          left -= static_cast<int64_t>(n);
        }
        ASSERT_GE(left, 0);
      }
      const double p = 1.0 / static_cast<double>(rate);
      const double q = SampledProb(rate, n);
      const std::string name = "rate " + std::to_string(rate) + ", n " + std::to_string(n) + ": ";
      EXPECT_TRUE(stats_util::BinomialWithin(name + "sum k", points, blocks * n, p));
      EXPECT_TRUE(stats_util::BinomialWithin(name + "sampled blocks", sampled, blocks, q));
    }
  }
}

TEST(SamplerTest, CountPointsOfBigBlocksIsBinomialInShape) {
  // Blocks expecting kBinomialMean points or more get their count drawn at
  // once (DrawBinomial). With the countdown at the block's first byte
  // (left = 0), k - 1 ~ Binomial(n - 1, p) exactly. N = 100k blocks per case;
  // the values are binned so every bin expects >= 200 (both tails merged
  // into their neighbours), and X^2 = sum (O - E)^2 / E is held below the
  // chi-square critical value at alpha = 1e-4 for its degrees of freedom
  // (bins - 1; Wilson-Hilferty: df (1 - 2/(9 df) + z sqrt(2/(9 df)))^3,
  // z = 3.719). The countdown left behind is a fresh Geometric(p) - 1 draw:
  // its mean is held to 5 sigma. Cases cover means 16 (the threshold), 64
  // (32 MiB at 512 KiB) and 16384 (64 MiB at 4 KiB).
  struct Case {
    uint64_t rate, n;
  };
  constexpr size_t kBlocks = 100'000;
  uint64_t seed = 0xB16B0000;
  for (const Case c :
       {Case{512 * kKiB, 8 * kMiB + 1}, Case{512 * kKiB, 32 * kMiB}, Case{4 * kKiB, 64 * kMiB}}) {
    const SamplingRate law(c.rate);
    Rng rng;
    rng.Seed(++seed);
    const double m = static_cast<double>(c.n - 1);
    const double p = 1.0 / static_cast<double>(c.rate);
    std::vector<uint64_t> counts(kBlocks);
    double left_sum = 0;
    for (uint64_t& k : counts) {
      int64_t left = 0;
      k = law.CountPoints(&left, c.n, rng) - 1;
      ASSERT_GE(left, 0);
      left_sum += static_cast<double>(left);
    }
    // Bins over j = 0..m by the exact pmf, cut where >= 200 are expected.
    const double mean = m * p, sd = std::sqrt(m * p * (1 - p));
    const uint64_t lo = static_cast<uint64_t>(std::max(0.0, std::floor(mean - 12 * sd)));
    const uint64_t hi = static_cast<uint64_t>(std::ceil(mean + 12 * sd));
    std::vector<uint64_t> cut_hi;  // bin i holds values <= cut_hi[i]
    std::vector<double> expected;
    double acc = 0;
    for (uint64_t j = lo; j <= hi; ++j) {
      acc += std::exp(stats_util::LogBinomialPmf(m, static_cast<double>(j), p)) * kBlocks;
      if (acc >= 200) {
        cut_hi.push_back(j);
        expected.push_back(acc);
        acc = 0;
      }
    }
    expected.back() += acc;  // the upper tail joins the last bin
    cut_hi.back() = UINT64_MAX;
    std::vector<double> observed(expected.size(), 0.0);
    for (const uint64_t k : counts) {
      observed[std::lower_bound(cut_hi.begin(), cut_hi.end(), k) - cut_hi.begin()] += 1;
    }
    double chi2 = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      chi2 += (observed[i] - expected[i]) * (observed[i] - expected[i]) / expected[i];
    }
    const double df = static_cast<double>(expected.size() - 1);
    const double h = 2.0 / (9.0 * df);
    const double critical = df * std::pow(1 - h + 3.719 * std::sqrt(h), 3);
    std::printf(
        "[ stats    ] big-block counts, rate %llu n %llu: X^2 = %.2f (df %.0f, critical %.2f)\n",
        static_cast<unsigned long long>(c.rate), static_cast<unsigned long long>(c.n), chi2, df,
        critical);
    EXPECT_GE(df, 10.0);
    EXPECT_LT(chi2, critical) << "rate " << c.rate << ", n " << c.n;
    // left ~ Geometric(p) - 1: mean (1 - p) / p, variance (1 - p) / p^2.
    const double left_mean = (1 - p) / p, left_sd = std::sqrt(1 - p) / p;
    EXPECT_TRUE(WithinSigmas("countdown left after a big block", left_sum / kBlocks, left_mean,
                             left_sd / std::sqrt(static_cast<double>(kBlocks))));
  }
}

TEST(SamplerTest, CountPointsOfHugeBlocksIsNormalWithTheBinomialMoments) {
  // Past 2^20 expected points the count is drawn from the normal law with the
  // binomial's mean and variance: one draw, however big the block. Over 20k
  // draws the sample mean is held to 5 sigma and the sample variance to
  // within 5% (its own relative sigma is sqrt(2 / 20000) = 1%).
  struct Case {
    uint64_t rate, n;
  };
  constexpr size_t kBlocks = 20'000;
  uint64_t seed = 0x4E0A0000;
  for (const Case c : {Case{512 * kKiB, uint64_t{1} << 50}, Case{4 * kKiB, uint64_t{1} << 62}}) {
    const SamplingRate law(c.rate);
    Rng rng;
    rng.Seed(++seed);
    const double p = 1.0 / static_cast<double>(c.rate);
    const double mean = static_cast<double>(c.n - 1) * p + 1;
    const double var = static_cast<double>(c.n - 1) * p * (1 - p);
    double sum = 0, sum2 = 0;
    for (size_t b = 0; b < kBlocks; ++b) {
      int64_t left = 0;
      const double k = static_cast<double>(law.CountPoints(&left, c.n, rng));
      sum += k - mean;
      sum2 += (k - mean) * (k - mean);
    }
    EXPECT_TRUE(WithinSigmas("huge-block count mean - expected", sum / kBlocks, 0.0,
                             std::sqrt(var / kBlocks)));
    EXPECT_NEAR(sum2 / kBlocks / var, 1.0, 0.05) << "rate " << c.rate << ", n " << c.n;
  }
}

TEST(SamplerTest, SampledProbabilityMatchesModel) {
  // q(n) = 1 - (1 - 1/rate)^n, against the same formula evaluated in long
  // double with powl (independent of expm1/log1p): relative error < 1e-12.
  for (const uint64_t rate : {uint64_t{2}, uint64_t{64}, uint64_t{4096}, 512 * kKiB}) {
    const SamplingRate law(rate);
    for (const uint64_t n :
         {uint64_t{1}, uint64_t{8}, uint64_t{100}, 4 * kKiB, 300 * kKiB, 3 * kMiB, 64 * kMiB}) {
      const long double reference =
          1.0L - powl(1.0L - 1.0L / static_cast<long double>(rate), static_cast<long double>(n));
      EXPECT_NEAR(law.SampledProbability(n), static_cast<double>(reference),
                  1e-12 * static_cast<double>(reference))
          << "rate " << rate << ", n " << n;
    }
    EXPECT_EQ(law.SampledProbability(0), 0.0) << "rate " << rate;
  }
}

TEST(SamplerTest, RateOneIsDeterministic) {
  // p = 1: every byte is a sample point, so every gap is 1, the countdown is
  // always 0, and a block of n >= 1 bytes has k = n, q = 1.
  for (const uint64_t r : {uint64_t{1}, uint64_t{0}}) {  // Set(0) means rate 1
    const SamplingRate law(r);
    EXPECT_EQ(law.rate(), 1u);
    Rng rng;
    rng.Seed(1);
    for (int i = 0; i < 100000; ++i) {
      ASSERT_EQ(law.DrawGap(rng), 1);
    }
    EXPECT_EQ(law.DrawLeft(rng), 0);
    int64_t left = law.DrawLeft(rng);
    uint64_t total = 0;
    uint64_t points = 0;
    for (const uint64_t n : {uint64_t{1}, uint64_t{8}, uint64_t{100}, 4 * kKiB, 300 * kKiB,
                             3 * kMiB, 64 * kMiB, uint64_t{7}}) {
      ASSERT_LT(left, static_cast<int64_t>(n));  // every block of >= 1 byte is sampled
      const uint64_t k = law.CountPoints(&left, n, rng);
      EXPECT_EQ(k, n);
      EXPECT_EQ(left, 0);
      EXPECT_EQ(law.SampledProbability(n), 1.0);
      total += n;
      points += k;
    }
    EXPECT_EQ(points, total);
    EXPECT_EQ(law.SampledProbability(0), 0.0);
  }
}

}  // namespace
