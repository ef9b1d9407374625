// profiler/fmath.h, the sampling law's libm-free functions, against libm
// (the oracle, linked into this test only) over the arguments sampler.h uses
// and beyond: relative error in ulps-sized bounds.
#include "profiler/fmath.h"

#include <cmath>
#include <cstdint>

#include "gtest/gtest.h"

namespace fm = assay::profiler::fmath;

namespace {

// |got - want| <= rel * |want| (+ abs for results near zero).
void ExpectClose(double got, double want, double rel, double abs, const char* what, double x) {
  EXPECT_LE(std::fabs(got - want), rel * std::fabs(want) + abs)
      << what << "(" << x << ") = " << got << ", libm " << want;
}

// Arguments spread log-uniformly over [lo, hi] (lo > 0).
template <typename F>
void ForLogSpread(double lo, double hi, int n, F f) {
  const double a = std::log(lo), b = std::log(hi);
  for (int i = 0; i <= n; ++i) f(std::exp(a + (b - a) * i / n));
}

TEST(Fmath, LogMatchesLibm) {
  ForLogSpread(1e-300, 1e300, 20000,
               [](double x) { ExpectClose(fm::Log(x), std::log(x), 4e-16, 0, "Log", x); });
  for (double x = 0.5; x < 2.0; x += 1.0 / 4096) {
    ExpectClose(fm::Log(x), std::log(x), 4e-16, 0, "Log", x);
  }
  ExpectClose(fm::Log(5e-324), std::log(5e-324), 4e-16, 0, "Log", 5e-324);
  EXPECT_EQ(fm::Log(1.0), 0.0);
}

TEST(Fmath, Log1pIsExactNearZero) {
  // -1/rate for every rate the sampler may get, and the guard's -u, -g.
  ForLogSpread(1e-300, 0.999, 20000, [](double x) {
    ExpectClose(fm::Log1p(-x), std::log1p(-x), 6e-16, 0, "Log1p", -x);
    ExpectClose(fm::Log1p(x), std::log1p(x), 6e-16, 0, "Log1p", x);
  });
  for (uint64_t rate = 2; rate < (uint64_t{1} << 62); rate = rate * 3 + 1) {
    const double x = -1.0 / static_cast<double>(rate);
    ExpectClose(fm::Log1p(x), std::log1p(x), 6e-16, 0, "Log1p", x);
  }
}

TEST(Fmath, ExpAndExpm1MatchLibm) {
  ForLogSpread(1e-300, 700, 20000, [](double x) {
    ExpectClose(fm::Exp(-x), std::exp(-x), 8e-16, 0, "Exp", -x);
    ExpectClose(fm::Exp(x), std::exp(x), 8e-16, 0, "Exp", x);
    ExpectClose(fm::Expm1(-x), std::expm1(-x), 8e-16, 0, "Expm1", -x);
    ExpectClose(fm::Expm1(x), std::expm1(x), 8e-16, 0, "Expm1", x);
  });
  EXPECT_EQ(fm::Exp(-800), 0.0);
  EXPECT_EQ(fm::Expm1(-800), -1.0);
  EXPECT_EQ(fm::Expm1(0.0), 0.0);
  // q(n) = -expm1(n ln(1 - 1/rate)) for one byte at 512 KiB: about 1/rate.
  const double l = fm::Log1p(-1.0 / 524288);
  ExpectClose(-fm::Expm1(l), 1.0 / 524288, 1e-15, 0, "q(1)", l);
}

TEST(Fmath, LgammaMatchesLibmOnTheBinomialsArguments) {
  // md + 1, mode + 1, md - mode + 1: integers from 1 to past 2^40; the
  // absolute error grows as x ln x times an ulp, as libm's does; near its
  // zeros (1, 2) the series' sum of ~40 loses ~2e-14 absolute, which moves
  // the mode's probability (DrawBinomial) by a relative 2e-14.
  for (double x = 1; x < 1e13; x = std::floor(x * 1.37) + 1) {
    ExpectClose(fm::Lgamma(x), std::lgamma(x), 1e-15, 2e-14, "Lgamma", x);
  }
  ForLogSpread(1e-3, 1e6, 5000, [](double x) {
    ExpectClose(fm::Lgamma(x), std::lgamma(x), 1e-14, 2e-14, "Lgamma", x);
  });
  EXPECT_NEAR(fm::Lgamma(1.0), 0.0, 2e-14);
  EXPECT_NEAR(fm::Lgamma(2.0), 0.0, 2e-14);
}

TEST(Fmath, SqrtCosAndLlround) {
  ForLogSpread(1e-300, 1e300, 2000, [](double x) { EXPECT_EQ(fm::Sqrt(x), std::sqrt(x)) << x; });
  for (double x = -8; x <= 8; x += 1.0 / 1024) {
    // Absolute: the reduction by a rounded 2 pi costs ~1e-15 (Box-Muller only).
    ExpectClose(fm::Cos(x), std::cos(x), 0, 2e-15, "Cos", x);
  }
  for (double x : {0.0, 0.49999999999999994, 0.5, 1.5, 2.5, -2.5, 1e15 + 0.5, 123456.7, -0.3}) {
    EXPECT_EQ(fm::Llround(x), std::llround(x)) << x;
  }
}

}  // namespace
