// Helpers shared by the statistical tests of the sampling profiler
// (tests/stats): the sampling model's q(n) and per-block variances computed
// independently of profiler/sampler.h, a k-sigma check, and an exact binomial
// check at the same 5-sigma level; each prints the z-score of its comparison.
#ifndef ASSAY_TESTS_STATS_STATS_UTIL_H_
#define ASSAY_TESTS_STATS_STATS_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace stats_util {

constexpr uint64_t kKiB = uint64_t{1} << 10;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

// Every bound in tests/stats is a 5-sigma bound: for a normal (or CLT-normal)
// statistic, P(|Z| > 5) = 5.7e-7 per check.
constexpr double kSigmas = 5.0;

// q(n) = P(a block of n bytes holds at least one sample point) = 1 - (1 - p)^n
// with p = 1/rate, computed as -expm1(n log1p(-p)) (no cancellation for small
// p). Rate 1 is p = 1: q = 1 for n >= 1; a block of 0 bytes is never sampled.
inline double SampledProb(uint64_t rate, uint64_t n) {
  if (n == 0) return 0.0;
  if (rate <= 1) return 1.0;
  return -std::expm1(static_cast<double>(n) * std::log1p(-1.0 / static_cast<double>(rate)));
}

// Variance of the Horvitz-Thompson bytes estimator n/q * 1{sampled} for one
// block of n bytes: E[(n/q)^2 1{s}] - n^2 = n^2/q - n^2 = n^2 (1 - q) / q.
inline double BytesVariance(uint64_t rate, uint64_t n) {
  const double q = SampledProb(rate, n);
  const double nn = static_cast<double>(n);
  return nn * nn * (1.0 - q) / q;
}

// Same for the objects estimator 1/q * 1{sampled}: 1/q - 1 = (1 - q) / q.
inline double ObjectsVariance(uint64_t rate, uint64_t n) {
  const double q = SampledProb(rate, n);
  return (1.0 - q) / q;
}

// |observed - expected| <= k * sigma, printing the comparison and its z-score
// either way (the numbers the test report quotes). sigma == 0 demands
// equality: the statistic is deterministic (or its variance underflows to 0
// in double, i.e. a deviation has probability below ~1e-16).
inline ::testing::AssertionResult WithinSigmas(const std::string& what, double observed,
                                               double expected, double sigma, double k = kSigmas) {
  const double diff = observed - expected;
  const double z = sigma > 0 ? diff / sigma : (diff == 0 ? 0.0 : INFINITY);
  std::printf("[ stats    ] %-52s observed %.10g expected %.10g sigma %.6g z %+.3f\n", what.c_str(),
              observed, expected, sigma, z);
  std::fflush(stdout);
  if (std::fabs(diff) <= k * sigma) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": observed " << observed << ", expected " << expected << ", sigma " << sigma
         << ", z = " << z << " (bound: |z| <= " << k << ")";
}

// Two-sided tail probability of a 5-sigma normal deviation, 2 Phi(-5) =
// erfc(5 / sqrt(2)): the false-alarm level every check here is held to.
constexpr double kTwoSidedAlpha = 5.733031437583892e-7;

// log P(X = j) for X ~ Binomial(m, q).
inline double LogBinomialPmf(double m, double j, double q) {
  if (q <= 0) return j == 0 ? 0.0 : -INFINITY;
  if (q >= 1) return j == m ? 0.0 : -INFINITY;
  return std::lgamma(m + 1) - std::lgamma(j + 1) - std::lgamma(m - j + 1) + j * std::log(q) +
         (m - j) * std::log1p(-q);
}

// Exact two-sided p-value of observing k for X ~ Binomial(m, q): twice the
// tail on k's side of the mean, min(1, 2 P(X <= k)) or min(1, 2 P(X >= k)).
// The tail is summed from k away from the mean; past the mode the terms
// decrease faster than geometrically, so the sum stops once they fall below
// 1e-17 of it.
inline double BinomialTwoSidedP(uint64_t m, uint64_t k, double q) {
  const double md = static_cast<double>(m);
  const double mode = std::floor((md + 1) * q);
  const bool lower = static_cast<double>(k) <= md * q;
  double sum = 0;
  for (double j = static_cast<double>(k); j >= 0 && j <= md; j += lower ? -1 : 1) {
    const double t = std::exp(LogBinomialPmf(md, j, q));
    sum += t;
    if ((lower ? j < mode : j > mode) && t <= 1e-17 * sum) break;
  }
  return std::min(1.0, 2 * sum);
}

// A count that is Binomial(m, q) under the model: observed k must not lie
// in a tail of exact probability below kTwoSidedAlpha, i.e. the exact-binomial
// version of |k - m q| <= 5 sqrt(m q (1 - q)). Exact because some counts
// here have a small mean (or a small mean of misses, when q ~ 1), where the
// normal approximation's 5-sigma interval is too narrow (a Poisson(1.85)
// count exceeds its mean by 5 sigma with probability 3e-3, not 6e-7). For
// large means the two agree; both the z-score and the exact p are printed.
inline ::testing::AssertionResult BinomialWithin(const std::string& what, uint64_t k, uint64_t m,
                                                 double q) {
  const double mean = static_cast<double>(m) * q;
  const double sigma = std::sqrt(static_cast<double>(m) * q * (1 - q));
  const double diff = static_cast<double>(k) - mean;
  const double z = sigma > 0 ? diff / sigma : (diff == 0 ? 0.0 : INFINITY);
  const double p = BinomialTwoSidedP(m, k, q);
  std::printf("[ stats    ] %-52s observed %llu expected %.10g sigma %.6g z %+.3f exact p %.3g\n",
              what.c_str(), static_cast<unsigned long long>(k), mean, sigma, z, p);
  std::fflush(stdout);
  if (p >= kTwoSidedAlpha) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": observed " << k << " of Binomial(" << m << ", " << q << "), mean " << mean
         << ", sigma " << sigma << ", z = " << z << ", exact two-sided p = " << p
         << " (bound: p >= " << kTwoSidedAlpha << ", the 5-sigma level)";
}

}  // namespace stats_util

#endif  // ASSAY_TESTS_STATS_STATS_UTIL_H_
