// The 2011 jemalloc huge-realloc race: several threads realloc huge blocks up and down between
// 3 MiB and 64 MiB (mremap frees and reuses address ranges) while others malloc/free huge and
// large blocks; every block's first, last and middle bytes must keep their values.
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "assay/assay.h"
#include "tests/stress/stress_util.h"

namespace {

using assay_test::kKiB;
using assay_test::kMiB;
constexpr int kReallocThreads = 4;
constexpr int kChurnThreads = 2;

[[noreturn]] void Fail(const char* what, const void* p, size_t a, size_t b) {
  assay_test::Fail("huge_realloc_stress", "%s (block %p, %zu, %zu)", what, p, a, b);
}

uint8_t Marker(uint64_t x) { return static_cast<uint8_t>((x * 0x9E3779B97F4A7C15ull) >> 56) | 1; }

// A random size in [lo, hi], sometimes page-aligned, sometimes not.
size_t RandomSize(std::mt19937_64& rng, size_t lo, size_t hi) {
  size_t n = lo + rng() % (hi - lo + 1);
  if (rng() % 2 == 0) n = n / 4096 * 4096;
  return n < lo ? lo : n;
}

// Resizes one block up and down between 3 and 64 MiB, with rare trips
// through the large and small regimes. Checks markers at the first, last
// kept and middle bytes, and at a random offset, across every realloc.
void ReallocWorker(int index, int iterations, std::atomic<uint64_t>* moves) {
  std::mt19937_64 rng(0x4a11000 + static_cast<uint64_t>(index));
  size_t n = 3 * kMiB;
  uint8_t* p = static_cast<uint8_t*>(malloc(n));
  if (p == nullptr) Fail("malloc returned NULL", nullptr, n, 0);
  for (int it = 0; it < iterations; ++it) {
    size_t m;
    const uint64_t r = rng() % 100;
    if (r < 2) {
      m = 256 * kKiB + 1 + rng() % (1792 * kKiB);  // large
    } else if (r < 3) {
      m = 1 + rng() % 4000;  // small
    } else {
      m = RandomSize(rng, 3 * kMiB, 64 * kMiB);
    }
    const size_t keep = m < n ? m : n;
    const size_t offsets[4] = {0, keep - 1, keep / 2, rng() % keep};
    uint8_t values[4];
    for (int k = 0; k < 4; ++k) {
      values[k] = Marker(rng());
      p[offsets[k]] = values[k];
    }
    // Later markers may overwrite earlier ones at the same offset.
    for (int k = 0; k < 4; ++k) values[k] = p[offsets[k]];
    uint8_t* q = static_cast<uint8_t*>(realloc(p, m));
    if (q == nullptr) Fail("realloc returned NULL", p, n, m);
    for (int k = 0; k < 4; ++k) {
      if (q[offsets[k]] != values[k])
        Fail("realloc lost a byte (old size, offset)", q, n, offsets[k]);
    }
    if (malloc_usable_size(q) < m) Fail("usable size below request", q, m, malloc_usable_size(q));
    q[m - 1] = Marker(m);  // touch the new end
    if (q != p) moves->fetch_add(1, std::memory_order_relaxed);
    if (it % 2000 == 1999) {
      assay_test::CheckHeap("huge_realloc_stress", assay_test::HeapScope::kOwnThread);
    }
    p = q;
    n = m;
  }
  free(p);
}

struct Tagged {
  uint8_t* p = nullptr;
  size_t n = 0;
  uint8_t tag = 0;
};

// Maps and unmaps other huge and large blocks meanwhile: the ranges mremap
// releases get reused here, and a block handed out twice shows as a
// changed tag.
void ChurnWorker(int index, int iterations) {
  std::mt19937_64 rng(0xc4a2000 + static_cast<uint64_t>(index));
  Tagged slots[8];
  for (int it = 0; it < iterations; ++it) {
    Tagged& s = slots[rng() % 8];
    if (s.p != nullptr) {
      if (s.p[0] != s.tag || s.p[s.n - 1] != s.tag || s.p[s.n / 2] != s.tag) {
        Fail("another thread's block changed under us", s.p, s.n, s.tag);
      }
      free(s.p);
      s.p = nullptr;
      continue;
    }
    s.n = rng() % 4 == 0 ? RandomSize(rng, 256 * kKiB + 1, 2 * kMiB)
                         : RandomSize(rng, 2 * kMiB + 1, 8 * kMiB);
    s.p = static_cast<uint8_t*>(malloc(s.n));
    if (s.p == nullptr) Fail("malloc returned NULL", nullptr, s.n, 0);
    s.tag = Marker(rng());
    s.p[0] = s.p[s.n - 1] = s.p[s.n / 2] = s.tag;
  }
  for (Tagged& s : slots) {
    if (s.p == nullptr) continue;
    if (s.p[0] != s.tag || s.p[s.n - 1] != s.tag || s.p[s.n / 2] != s.tag) {
      Fail("another thread's block changed under us", s.p, s.n, s.tag);
    }
    free(s.p);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool smoke = argc > 1 && strcmp(argv[1], "--smoke") == 0;
  const int iterations = smoke ? 6000 : 60000;
  std::atomic<uint64_t> moves{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kReallocThreads; ++t) {
    threads.emplace_back(ReallocWorker, t, iterations, &moves);
  }
  for (int t = 0; t < kChurnThreads; ++t) threads.emplace_back(ChurnWorker, t, iterations * 2);
  for (std::thread& t : threads) t.join();
  assay_test::CheckHeap("huge_realloc_stress", assay_test::HeapScope::kAllThreads);

  assay_stats s;
  assay_get_stats(&s);
  if (s.huge_blocks != 0) {
    assay_test::ReportFailure("huge_realloc_stress", "%zu huge blocks live after all were freed",
                              s.huge_blocks);
    return 1;
  }
  printf("huge_realloc_stress: OK: %d reallocs in %d threads (%llu moved the block)\n",
         iterations * kReallocThreads, kReallocThreads,
         static_cast<unsigned long long>(moves.load()));
  return 0;
}
