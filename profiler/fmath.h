// The few elementary functions the sampling law needs (log, log1p, exp,
// expm1, lgamma, sqrt, cos, llround), without libm: mapping libm.so (its IFUNC
// resolvers and tables) cost every process 0.3 MiB of RSS, 0.6 MiB with the
// profiler on. Each is within a few ulp of libm on the arguments sampler.h
// passes (lgamma: 2e-14 absolute near its zeros), as tests/unit/fmath_test.cc
// checks against libm; none sets errno.
#pragma once

#include <cstdint>
#include <cstring>

namespace assay::profiler::fmath {

inline constexpr double kLn2Hi = 6.93147180369123816490e-01;  // ln 2, top 32 bits
inline constexpr double kLn2Lo = 1.90821492927058770002e-10;  // ln 2 - kLn2Hi
inline constexpr double kInfinity = __builtin_inf();

// sqrtsd itself: __builtin_sqrt keeps a call to libm's sqrt for errno.
inline double Sqrt(double x) {
#if defined(__x86_64__)
  double r;
  __asm__("sqrtsd %1, %0" : "=x"(r) : "x"(x));
  return r;
#else
  return __builtin_sqrt(x);
#endif
}

// 2^k for -1074 <= k <= 1023 (subnormal below -1022).
inline double Pow2(int k) {
  if (k < -1022) return Pow2(k + 600) * 0x1p-600;
  const uint64_t bits = static_cast<uint64_t>(k + 1023) << 52;
  double r;
  std::memcpy(&r, &bits, sizeof(r));
  return r;
}

// x = 2^e m for a positive normal x, m in [sqrt(1/2), sqrt(2)): the range
// where ln m = 2 atanh(t), t = (m - 1)/(m + 1), |t| < 0.1716, converges
// fast (Log here, and the sampler's shorter FastLog). Returns m, adds e to *e.
inline double SplitForLog(double x, int* e) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  *e += static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & ((uint64_t{1} << 52) - 1)) | (uint64_t{1023} << 52);
  double m;
  std::memcpy(&m, &bits, sizeof(m));
  if (m > 1.4142135623730951) {
    m *= 0.5;
    ++*e;
  }
  return m;
}

// ln x for x > 0, finite: SplitForLog, then the odd series of atanh to t^21
// (next term < 1e-17).
inline double Log(double x) {
  if (!(x > 0)) return x == 0 ? -kInfinity : __builtin_nan("");
  if (x == kInfinity) return x;
  int e = 0;
  if (x < 0x1p-1022) {  // subnormal: scale into the normal range first
    x *= 0x1p54;
    e = -54;
  }
  const double m = SplitForLog(x, &e);
  const double t = (m - 1.0) / (m + 1.0);
  const double t2 = t * t;
  // Horner with constant coefficients (a loop over 1/k divided at run time).
  const double s =
      1.0 / 3 +
      t2 * (1.0 / 5 +
            t2 * (1.0 / 7 +
                  t2 * (1.0 / 9 +
                        t2 * (1.0 / 11 +
                              t2 * (1.0 / 13 +
                                    t2 * (1.0 / 15 +
                                          t2 * (1.0 / 17 + t2 * (1.0 / 19 + t2 * (1.0 / 21)))))))));
  const double log_m = 2.0 * t + 2.0 * t * t2 * s;
  return (e * kLn2Lo + log_m) + e * kLn2Hi;
}

// ln(1 + x) for x > -1, exact near 0: u = 1 + x rounded, then
// ln(u) * x / (u - 1) corrects u's rounding (Goldberg's trick).
inline double Log1p(double x) {
  const double u = 1.0 + x;
  if (u == 1.0) return x;
  if (u == kInfinity) return u;
  return Log(u) * (x / (u - 1.0));
}

// e^r - 1 for |r| <= 0.35 by its Taylor series to r^15 (next term < 1e-19).
inline double Expm1Small(double r) {
  // sum r^k / k!, k = 1..15, Horner with the constants 1/k! folded.
  constexpr double c2 = 1.0 / 2, c3 = c2 / 3, c4 = c3 / 4, c5 = c4 / 5, c6 = c5 / 6, c7 = c6 / 7,
                   c8 = c7 / 8, c9 = c8 / 9, c10 = c9 / 10, c11 = c10 / 11, c12 = c11 / 12,
                   c13 = c12 / 13, c14 = c13 / 14, c15 = c14 / 15;
  const double s =
      c2 +
      r * (c3 +
           r * (c4 +
                r * (c5 +
                     r * (c6 +
                          r * (c7 +
                               r * (c8 +
                                    r * (c9 +
                                         r * (c10 +
                                              r * (c11 +
                                                   r * (c12 +
                                                        r * (c13 + r * (c14 + r * c15))))))))))));
  return r + r * r * s;
}

// Splits x = k ln2 + r, |r| <= ln2/2 (nearly).
inline int Reduce(double x, double* r) {
  const double kd = __builtin_floor(x * 1.4426950408889634 + 0.5);
  *r = (x - kd * kLn2Hi) - kd * kLn2Lo;
  return static_cast<int>(kd);
}

inline double Exp(double x) {
  if (x != x) return x;
  if (x > 709.782712893384) return kInfinity;
  if (x < -745.2) return 0.0;
  double r;
  const int k = Reduce(x, &r);
  return (1.0 + Expm1Small(r)) * Pow2(k);
}

// e^r - 1 for |r| <= 1/64, by the series to r^8 (the first term left out,
// r^9/9!, is below 2^-54 r): the sampler's q(n) for blocks up to rate/64.
inline double Expm1Tiny(double r) {
  constexpr double c2 = 1.0 / 2, c3 = c2 / 3, c4 = c3 / 4, c5 = c4 / 5, c6 = c5 / 6, c7 = c6 / 7,
                   c8 = c7 / 8;
  return r + r * r * (c2 + r * (c3 + r * (c4 + r * (c5 + r * (c6 + r * (c7 + r * c8))))));
}

inline double Expm1(double x) {
  if (x != x) return x;
  if (x >= -0.015625 && x <= 0.015625) return Expm1Tiny(x);
  if (x > -0.34 && x < 0.34) return Expm1Small(x);
  if (x < -40) return -1.0;  // e^-40 < 2^-57
  if (x > 709.782712893384) return kInfinity;
  double r;
  const int k = Reduce(x, &r);
  if (k > 1000) return (1.0 + Expm1Small(r)) * Pow2(k);
  const double two_k = Pow2(k);
  return two_k * Expm1Small(r) + (two_k - 1.0);
}

// ln k! for k = 0..15 (correctly rounded, from 40-digit decimal logarithms).
inline constexpr double kLogFactorial[16] = {
    0.0,
    0.0,
    0.6931471805599453,
    1.791759469228055,
    3.1780538303479458,
    4.787491742782046,
    6.579251212010101,
    8.525161361065415,
    10.60460290274525,
    12.801827480081469,
    15.104412573075516,
    17.502307845873887,
    19.987214495661885,
    22.552163853123425,
    25.19122118273868,
    27.89927138384089,
};

// ln Gamma(x) for x > 0. The binomial's arguments are whole numbers: below
// 16 a table, above Stirling's series; other x < 15 are shifted up to z >= 15
// (subtracting the log of the product). Stirling's series to z^-13 (next
// term < 1e-19 at 15).
inline double Lgamma(double x) {
  if (!(x > 0)) return kInfinity;
  if (x < 16 && x == static_cast<double>(static_cast<int>(x))) {
    return kLogFactorial[static_cast<int>(x) - 1];
  }
  double shift = 1.0;
  double z = x;
  while (z < 15) shift *= z++;
  const double iz = 1.0 / z, iz2 = iz * iz;
  // From z = 1000 on, the terms past z^-3 are below 1e-18.
  const double series =
      z >= 1000 ? iz * (1.0 / 12 - iz2 * (1.0 / 360))
                : iz * (1.0 / 12 +
                        iz2 * (-1.0 / 360 +
                               iz2 * (1.0 / 1260 +
                                      iz2 * (-1.0 / 1680 +
                                             iz2 * (1.0 / 1188 + iz2 * (-691.0 / 360360 +
                                                                        iz2 * (1.0 / 156)))))));
  const double half_log_2pi = 0.91893853320467274178;
  const double result = (z - 0.5) * Log(z) - z + half_log_2pi + series;
  return shift == 1.0 ? result : result - Log(shift);
}

// cos x for |x| <= 8 (Box-Muller's angle): reduced to [-pi/2, pi/2] by
// symmetry, then the Taylor series to x^22.
inline double Cos(double x) {
  constexpr double kPi = 3.14159265358979323846;
  if (x < 0) x = -x;
  while (x > kPi) x -= 2 * kPi;
  if (x < 0) x = -x;
  double sign = 1.0;
  if (x > kPi / 2) {
    x = kPi - x;
    sign = -1.0;
  }
  const double x2 = x * x;
  double s = 1.0;
  for (int k = 22; k >= 2; k -= 2) s = 1.0 - x2 * s / (k * (k - 1));
  return sign * s;
}

// std::llround (to nearest, halves away from zero) for |x| < 2^63.
inline int64_t Llround(double x) {
  const double a = x < 0 ? -x : x;
  int64_t r = static_cast<int64_t>(a);  // truncated; a - r is exact
  if (a - static_cast<double>(r) >= 0.5) ++r;
  return x < 0 ? -r : r;
}

}  // namespace assay::profiler::fmath
