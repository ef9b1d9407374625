// Shared helpers of the whole-program workloads (tests/bench/workloads/*.cc).
// Every workload is a program `NAME [SCALE] [THREADS]`: SCALE (a positive
// number, default 1) multiplies the amount of work, sized so that SCALE 1
// runs in about 1-3 s on glibc malloc on a 2-core machine; THREADS (where the
// workload is threaded) defaults to the workload's own choice. Random numbers
// come from fixed seeds, so every allocator sees the same sequence of
// requests (threaded workloads interleave differently from run to run).
// At the end a workload prints one line:
//   NAME scale=S threads=T seconds=... maxrss_kib=... check=...
// (check is a value computed from the blocks' contents, so no work can be
// optimized away). The workloads link no allocator: run them with
// LD_PRELOAD=<allocator>. They are benchmarks, never pass/fail tests.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace wl {

// xoshiro-free, tiny and fast: splitmix64 as a stream.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  uint64_t Next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<__uint128_t>(Next()) * n) >> 64);
  }
  // Uniform in [lo, hi].
  uint64_t Range(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }
  // Log-uniform in [lo, hi]: as many blocks per doubling.
  uint64_t LogRange(uint64_t lo, uint64_t hi) {
    const double a = __builtin_log(static_cast<double>(lo));
    const double b = __builtin_log(static_cast<double>(hi));
    const double u = static_cast<double>(Next() >> 11) * 0x1.0p-53;
    uint64_t v = static_cast<uint64_t>(__builtin_exp(a + (b - a) * u));
    return v < lo ? lo : (v > hi ? hi : v);
  }
  // true with probability num/den.
  bool Chance(uint64_t num, uint64_t den) { return Below(den) < num; }

 private:
  uint64_t s_;
};

struct Args {
  double scale = 1.0;
  int threads = 0;
};

inline Args Parse(int argc, char** argv, int default_threads) {
  Args a;
  if (argc > 1) a.scale = strtod(argv[1], nullptr);
  if (!(a.scale > 0)) {
    fprintf(stderr, "usage: %s [SCALE>0] [THREADS]\n", argv[0]);
    exit(2);
  }
  a.threads = argc > 2 ? atoi(argv[2]) : default_threads;
  if (a.threads < 1) a.threads = 1;
  return a;
}

// n scaled, at least 1.
inline uint64_t Scaled(double scale, uint64_t n) {
  const double v = scale * static_cast<double>(n);
  return v < 1 ? 1 : static_cast<uint64_t>(v);
}

// Writes a few bytes at the start and end of a block (a real program touches
// what it allocates), returns a value to fold into the check.
inline uint64_t Touch(void* p, size_t n, uint64_t v) {
  auto* c = static_cast<unsigned char*>(p);
  c[0] = static_cast<unsigned char>(v);
  c[n - 1] = static_cast<unsigned char>(v >> 8);
  if (n >= 16) memcpy(c + n / 2 - 4, &v, 8);
  return c[0];
}

class Timer {
 public:
  Timer() : t0_(std::chrono::steady_clock::now()) {}
  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  std::chrono::steady_clock::time_point t0_;
};

inline long MaxRssKiB() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

inline void Report(const char* name, const Args& a, const Timer& t, uint64_t check) {
  printf("%s scale=%g threads=%d seconds=%.3f maxrss_kib=%ld check=%llu\n", name, a.scale,
         a.threads, t.Seconds(), MaxRssKiB(), static_cast<unsigned long long>(check));
}

}  // namespace wl
