// The sampler: which allocations hold a sample point, and how to turn the
// samples back into unbiased estimates of the heap.
//
// Model. Every requested byte of every allocation is, independently, a
// sample point with probability p = 1/rate (a Bernoulli process over the
// stream of requested bytes, in allocation order, per thread). The gap from
// one sample point to the next is then Geometric(p) on {1, 2, ...}, mean
// `rate`, and memoryless: where a block starts relative to the previous
// sample point does not matter. A thread keeps `left`, the index (0-based,
// from the next byte it will allocate) of its next sample point; an
// allocation of n bytes covers indices 0..n-1, so it holds a sample point
// iff left < n, i.e. iff left - n < 0, which is the one subtraction and sign
// test of the malloc fast path. The countdown counts requested bytes (not
// usable bytes): estimates are of what the program asked for; both sizes are
// recorded with each sample.
//
// For a block of n bytes:
//   k = number of sample points in it ~ Binomial(n, p),   E[k] = n p = n / rate
//   P(sampled) = P(k >= 1) = 1 - (1 - p)^n =: q(n)
// Estimators, summed over the sampled blocks (of one stack, or of the heap):
//   bytes   B^ = sum n / q(n)      E[B^] = sum over all blocks of q(n) n / q(n) = true bytes
//   objects N^ = sum 1 / q(n)      E[N^] = true count
// Both are unbiased for every n (a block is sampled with probability exactly
// q(n)), and for n >> rate, q(n) -> 1 so a big block is counted exactly,
// without the Poisson noise of the k * rate estimator (whose mean is also
// right: E[k rate] = n). Variance of B^ for one block: n^2 (1 - q) / q.
//
// rate = 1 makes p = 1: every byte is a sample point, k = n, q = 1: every
// allocation of at least one byte is recorded with weight 1 (audit mode).
//
// Draws: a Geometric(p) gap is 1 + floor(ln U / ln(1 - p)) for U uniform in
// (0, 1]; ln U comes from FastLog (no libm on the sampling path), ln(1 - p)
// is computed once per rate.
#pragma once

#include <cmath>
#include <cstdint>

#include "profiler/fmath.h"

namespace assay::profiler {

// xoshiro256** (Blackman and Vigna): fast, 256 bits of state, seedable.
class Rng {
 public:
  void Seed(uint64_t seed) {
    for (uint64_t& s : s_) s = SplitMix(&seed);
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Uniform in (0, 1]: 53 random bits, never 0 (so ln U is finite).
  double UniformOpenZero() { return static_cast<double>((Next() >> 11) + 1) * 0x1.0p-53; }

  static uint64_t SplitMix(uint64_t* x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];  // seed before use (all zero is a fixed point)
};

// Natural logarithm of x > 0 (finite, normal), relative error below 1e-9:
// x = 2^e * m with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(t), t = (m-1)/(m+1),
// |t| < 0.172, by its odd series to t^15.
inline double FastLog(double x) {
  int e = 0;
  const double m = fmath::SplitForLog(x, &e);
  const double t = (m - 1.0) / (m + 1.0);
  const double t2 = t * t;
  const double series =
      1.0 +
      t2 * (1.0 / 3 +
            t2 * (1.0 / 5 +
                  t2 * (1.0 / 7 +
                        t2 * (1.0 / 9 + t2 * (1.0 / 11 + t2 * (1.0 / 13 + t2 * (1.0 / 15)))))));
  return e * 0.6931471805599453 + 2.0 * t * series;
}

// The sampling law for one rate.
class SamplingRate {
 public:
  constexpr SamplingRate() = default;  // rate 1 until Set
  explicit SamplingRate(uint64_t rate) { Set(rate); }
  void Set(uint64_t rate) {
    rate_ = rate == 0 ? 1 : rate;
    // ln(1 - p) with p = 1/rate; -inf for rate 1 (every byte a sample point).
    log_not_p_ = rate_ == 1 ? -INFINITY : fmath::Log1p(-1.0 / static_cast<double>(rate_));
    inv_log_not_p_ = rate_ == 1 ? 0.0 : 1.0 / log_not_p_;
    log_p_ = -fmath::Log(static_cast<double>(rate_));
    odds_ = rate_ == 1 ? 0.0 : 1.0 / static_cast<double>(rate_ - 1);
    binomial_min_ = rate_ > UINT64_MAX / kBinomialMean ? UINT64_MAX : kBinomialMean * rate_;
  }
  uint64_t rate() const { return rate_; }
  const uint64_t* rate_address() const { return &rate_; }

  // Gap to the next sample point: Geometric(1/rate) on {1, 2, ...}.
  int64_t DrawGap(Rng& rng) const {
    if (rate_ == 1) return 1;
    // A multiplication, not a division: a block of n >> rate bytes draws
    // n / rate gaps (64 for 32 MiB at 512 KiB).
    const double g = FastLog(rng.UniformOpenZero()) * inv_log_not_p_;
    return g >= 4e18 ? int64_t{4} << 60 : 1 + static_cast<int64_t>(g);
  }

  // A fresh countdown: index of the next sample point.
  int64_t DrawLeft(Rng& rng) const { return DrawGap(rng) - 1; }

  // Walks an allocation of n bytes over the countdown *left (which must be
  // < n: the block holds a sample point). Returns k >= 1, the number of
  // sample points in the block, and leaves *left for the bytes after it.
  //
  // The point at *left is the first; the m = n - *left - 1 bytes after it
  // hold Binomial(m, p) more, and the gap from the block's end to the next
  // point is a fresh draw (the process is memoryless). With few points
  // expected the gaps are drawn one by one; with kBinomialMean or more (a
  // 32 MiB block at 512 KiB expects 64) the count is drawn at once, which
  // took a third of the profiler's instructions on big blocks.
  static constexpr uint64_t kBinomialMean = 16;
  uint64_t CountPoints(int64_t* left, uint64_t n, Rng& rng) const {
    const int64_t pos = *left;  // index in the block of its first sample point
    if (rate_ == 1) {
      *left = 0;
      return n - static_cast<uint64_t>(pos);
    }
    const uint64_t m = n - static_cast<uint64_t>(pos) - 1;
    if (m >= binomial_min_) {
      const uint64_t k = 1 + DrawBinomial(m, rng);
      *left = DrawLeft(rng);
      return k;
    }
    // Nearly always the next point lies past the block: one draw, which is
    // also the countdown after it. The loop for more points is out of line
    // (its registers made every sample save six and load fourteen constants).
    const int64_t end = static_cast<int64_t>(n);
    const int64_t next = pos + DrawGap(rng);
    if (__builtin_expect(next >= end, 1)) {
      *left = next - end;
      return 1;
    }
    return CountFurtherPoints(left, next, end, rng);
  }

  // Binomial(m, p), by inversion searched outward from the mode: the mode's
  // probability from log-gamma, then the probabilities on either side by
  // their ratios, alternately, until they pass a uniform draw. Exact but for
  // rounding (a relative 1e-6 at most, from lgamma of m up to 2^40); about
  // 1.6 sqrt(m p) steps.
  //
  // Past kNormalMean expected points (a block of 512 GiB at 512 KiB, or a
  // request that will fail anyway, such as malloc(SIZE_MAX / 2)) the search
  // would take thousands of steps: the count is then drawn from the normal
  // law with the same mean and variance (Box-Muller, rounded), whose CDF is
  // within 0.5 / sqrt(m p (1 - p)) < 5e-4 of the binomial's (Berry-Esseen).
  static constexpr double kNormalMean = double{1 << 20};
  uint64_t DrawBinomial(uint64_t m, Rng& rng) const {
    const double md = static_cast<double>(m);
    const double p = 1.0 / static_cast<double>(rate_);
    if (md * p > kNormalMean) {
      const double radius = fmath::Sqrt(-2.0 * FastLog(rng.UniformOpenZero()));
      const double z = radius * fmath::Cos(6.283185307179586 * rng.UniformOpenZero());
      const double k = std::floor(md * p + fmath::Sqrt(md * p * (1 - p)) * z + 0.5);
      return k <= 0 ? 0 : (k >= md ? m : static_cast<uint64_t>(k));
    }
    double mode = std::floor((md + 1) * p);
    if (mode > md) mode = md;
    const double log_f = fmath::Lgamma(md + 1) - fmath::Lgamma(mode + 1) -
                         fmath::Lgamma(md - mode + 1) + mode * log_p_ + (md - mode) * log_not_p_;
    double u = rng.UniformOpenZero();
    const double f_mode = fmath::Exp(log_f);
    u -= f_mode;
    double lo = mode, hi = mode, f_lo = f_mode, f_hi = f_mode;
    while (u > 0) {
      const bool can_down = lo > 0, can_up = hi < md;
      if (!can_down && !can_up) break;  // rounding left some mass unclaimed
      if (can_down) {
        f_lo *= lo / ((md - lo + 1) * odds_);
        lo -= 1;
        u -= f_lo;
        if (u <= 0) return static_cast<uint64_t>(lo);
      }
      if (can_up) {
        f_hi *= (md - hi) / (hi + 1) * odds_;
        hi += 1;
        u -= f_hi;
        if (u <= 0) return static_cast<uint64_t>(hi);
      }
    }
    return static_cast<uint64_t>(mode);
  }

  // q(n): probability that a block of n bytes holds a sample point.
  double SampledProbability(uint64_t n) const {
    if (rate_ == 1) return n == 0 ? 0.0 : 1.0;
    return -fmath::Expm1(static_cast<double>(n) * log_not_p_);
  }

 private:
  uint64_t rate_ = 1;
  double log_not_p_ = -INFINITY;
  double inv_log_not_p_ = 0.0;             // 1 / log_not_p_
  double log_p_ = 0.0;                     // ln p
  double odds_ = 0.0;                      // p / (1 - p)
  uint64_t binomial_min_ = kBinomialMean;  // kBinomialMean * rate_, saturated

  // CountPoints from the block's second point on, at pos < end.
  __attribute__((noinline)) uint64_t CountFurtherPoints(int64_t* left, int64_t pos, int64_t end,
                                                        Rng& rng) const {
    uint64_t k = 1;
    while (pos < end) {
      ++k;
      pos += DrawGap(rng);
    }
    *left = pos - end;
    return k;
  }
};

// The production guard (ASSAY_DEBUG=guard=N) samples small blocks with a
// point process of its own on the same bytes: G, a guard point at each byte
// with probability g = 1/(64 N), independent of the profiler's P (probability
// p = 1/rate, or 0 with no session). Both share the thread's one countdown,
// which runs over their union: a point at a byte with probability
// u = p + g - pg. At the first union point in a block its kind is drawn
// (P only with probability p(1-g)/u, G only g(1-p)/u, both pg/u); the m
// bytes after it are fresh trials of each process, so the profiler counts
// its further points with its own law (SamplingRate::CountPoints from a
// fresh countdown) and the guard only asks whether any of them is a G point
// (probability 1 - (1-g)^m). A block's P points are then Binomial(n, p) and
// its G points Binomial(n, g), independent of each other and of other
// blocks, exactly as with two countdowns; the countdown after the block is
// a fresh draw (both processes are memoryless).
class CombinedLaw {
 public:
  enum Kind : uint8_t { kProfile = 1, kGuard = 2 };

  void Set(double p, double g) {
    p_ = p;
    g_ = g;
    u_ = p + g - p * g;
    p_only_ = p * (1 - g);
    g_only_ = g * (1 - p);
    inv_log_not_u_ = u_ >= 1 ? 0.0 : 1.0 / fmath::Log1p(-u_);
    log_not_g_ = fmath::Log1p(-g);
  }
  double p() const { return p_; }
  double g() const { return g_; }

  // A fresh countdown over the union: index of its next point.
  int64_t DrawLeft(Rng& rng) const {
    if (u_ >= 1) return 0;
    const double gap = FastLog(rng.UniformOpenZero()) * inv_log_not_u_;
    return gap >= 4e18 ? int64_t{4} << 60 : static_cast<int64_t>(gap);
  }

  // The kind of a union point: kProfile, kGuard, or both.
  uint8_t DrawKind(Rng& rng) const {
    const double x = rng.UniformOpenZero() * u_;
    if (x <= p_only_) return kProfile;
    if (x <= p_only_ + g_only_) return kGuard;
    return kProfile | kGuard;
  }

  // Whether m fresh bytes hold a guard point: probability 1 - (1-g)^m.
  bool AnyGuardPoint(uint64_t m, Rng& rng) const {
    if (m == 0 || g_ <= 0) return false;
    return rng.UniformOpenZero() <= -fmath::Expm1(static_cast<double>(m) * log_not_g_);
  }

 private:
  double p_ = 0, g_ = 0, u_ = 0, p_only_ = 0, g_only_ = 0;
  double inv_log_not_u_ = 0;
  double log_not_g_ = 0;
};

}  // namespace assay::profiler
