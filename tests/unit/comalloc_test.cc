// assay_comalloc and assay_bulk_free: distinct, non-overlapping, independently freeable
// blocks of mixed sizes; all-or-nothing failure that leaves `out` untouched and leaks nothing;
// bulk free of mixed and null entries.
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <random>
#include <vector>

#include "assay/assay.h"
#include "gtest/gtest.h"

namespace {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

void* const kSentinel = reinterpret_cast<void*>(uintptr_t{0x5e5e5e5e5e5e5e50});

size_t Allocated() {
  assay_stats s;
  assay_get_stats(&s);
  return s.allocated;
}

// Word k (8 bytes at offset 8k) of a block filled with `seed`.
uint64_t PatternWord(size_t k, uint64_t seed) {
  return (k + 1) * 0x9E3779B97F4A7C15ull ^ (seed + 1) * 0xD1B54A32D192ED03ull;
}

void Fill(void* p, size_t n, uint64_t seed) {
  uint8_t* b = static_cast<uint8_t*>(p);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t w = PatternWord(i >> 3, seed);
    memcpy(b + i, &w, 8);
  }
  const uint64_t last = PatternWord(i >> 3, seed);
  memcpy(b + i, &last, n - i);
}

bool Holds(const void* p, size_t n, uint64_t seed) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, b + i, 8);
    if (w != PatternWord(i >> 3, seed)) return false;
  }
  const uint64_t last = PatternWord(i >> 3, seed);
  return memcmp(b + i, &last, n - i) == 0;
}

// Checks out[0..n) are distinct live blocks of at least sizes[i] bytes whose
// usable ranges do not overlap, then fills each with its own pattern.
void CheckBatch(const size_t* sizes, void* const* out, size_t n, uint64_t seed) {
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_NE(out[i], nullptr) << "block " << i;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(out[i]) % (sizes[i] <= 8 ? 8 : 16), 0u)
        << "block " << i << " of " << sizes[i] << " bytes misaligned";
    const size_t usable = malloc_usable_size(out[i]);
    ASSERT_GE(usable, sizes[i]) << "block " << i;
    const uintptr_t a = reinterpret_cast<uintptr_t>(out[i]);
    ranges.emplace_back(a, a + usable);
    Fill(out[i], usable, seed + i);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    ASSERT_LT(ranges[i - 1].first, ranges[i].first) << "two blocks share an address";
    ASSERT_LE(ranges[i - 1].second, ranges[i].first) << "blocks overlap";
  }
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(Holds(out[i], malloc_usable_size(out[i]), seed + i)) << "block " << i;
  }
}

TEST(Comalloc, MixedSizes) {
  const size_t sizes[] = {0,
                          1,
                          8,
                          24,
                          100,
                          1000,
                          4096,
                          0,
                          64 * kKiB,
                          256 * kKiB,
                          256 * kKiB + 1,
                          300 * kKiB,
                          2 * kMiB,
                          2 * kMiB + 1,
                          3 * kMiB,
                          17,
                          0};
  constexpr size_t kN = std::size(sizes);
  void* out[kN];
  ASSERT_EQ(assay_comalloc(kN, sizes, out), 0);
  CheckBatch(sizes, out, kN, 1);
  if (HasFatalFailure()) return;
  // Independently freeable: free every other one, check the rest, free the rest.
  for (size_t i = 0; i < kN; i += 2) free(out[i]);
  for (size_t i = 1; i < kN; i += 2) {
    ASSERT_TRUE(Holds(out[i], malloc_usable_size(out[i]), 1 + i)) << "block " << i;
  }
  for (size_t i = 1; i < kN; i += 2) free(out[i]);
}

TEST(Comalloc, BlocksCanBeReallocated) {
  const size_t sizes[] = {10, 300 * kKiB, 3 * kMiB, 100};
  void* out[4];
  ASSERT_EQ(assay_comalloc(4, sizes, out), 0);
  for (size_t i = 0; i < 4; ++i) Fill(out[i], sizes[i], i);
  const size_t new_sizes[] = {5000, 3 * kMiB, 100, 400 * kKiB};
  for (size_t i = 0; i < 4; ++i) {
    void* q = realloc(out[i], new_sizes[i]);
    ASSERT_NE(q, nullptr);
    ASSERT_TRUE(Holds(q, std::min(sizes[i], new_sizes[i]), i)) << "block " << i;
    out[i] = q;
  }
  assay_bulk_free(out, 4);
}

TEST(Comalloc, ManyBlocksOfOneClass) {
  // More blocks than one batch or one thread-cache list: several refills.
  constexpr size_t kN = 5000;
  std::vector<size_t> sizes(kN, 48);
  std::vector<void*> out(kN, kSentinel);
  ASSERT_EQ(assay_comalloc(kN, sizes.data(), out.data()), 0);
  CheckBatch(sizes.data(), out.data(), kN, 7);
  if (HasFatalFailure()) return;
  assay_bulk_free(out.data(), kN);
  for (void* p : out) ASSERT_EQ(p, nullptr);
}

TEST(Comalloc, ZeroBlocks) {
  const size_t sizes[1] = {100};
  void* out[1] = {kSentinel};
  EXPECT_EQ(assay_comalloc(0, sizes, out), 0);
  EXPECT_EQ(out[0], kSentinel);
}

TEST(Comalloc, ImpossibleSizeFailsWithoutSideEffects) {
  const std::vector<std::vector<size_t>> batches = {
      {size_t{1} << 62},
      {100, 300 * kKiB, 3 * kMiB, size_t{1} << 62, 50},
      {size_t{1} << 62, 8, 8, 8},
      {1, 2, 3, 4000, 500 * kKiB, 5 * kMiB, SIZE_MAX},
      {64, 64, 64, 64, 64, 64, 64, 64, SIZE_MAX - 4095, 64},
  };
  // Warm up so first-use costs (thread cache, segments) do not count.
  for (const auto& sizes : batches) {
    std::vector<void*> out(sizes.size(), kSentinel);
    (void)assay_comalloc(sizes.size(), sizes.data(), out.data());
  }
  const size_t before = Allocated();
  for (int round = 0; round < 100; ++round) {
    for (const auto& sizes : batches) {
      std::vector<void*> out(sizes.size() + 1, kSentinel);
      ASSERT_EQ(assay_comalloc(sizes.size(), sizes.data(), out.data()), ENOMEM);
      for (size_t i = 0; i < out.size(); ++i) {
        ASSERT_EQ(out[i], kSentinel) << "failed comalloc wrote out[" << i << "]";
      }
    }
  }
  const size_t after = Allocated();
  // Without the cleanup, 100 rounds would leak over 100 MiB.
  EXPECT_LE(after, before + 256 * kKiB) << "before " << before << " after " << after;
  // The allocator still works.
  const size_t sizes[] = {100, 300 * kKiB, 3 * kMiB};
  void* out[3];
  ASSERT_EQ(assay_comalloc(3, sizes, out), 0);
  CheckBatch(sizes, out, 3, 3);
  assay_bulk_free(out, 3);
}

TEST(Comalloc, BulkFreeSkipsNullsAndClears) {
  std::mt19937_64 rng(0xc0a110c1);
  const size_t before = Allocated();
  for (int round = 0; round < 20; ++round) {
    std::vector<void*> ptrs;
    const size_t sizes[] = {16, 200, 3000, 70 * kKiB, 300 * kKiB, 3 * kMiB};
    void* batch[std::size(sizes)];
    ASSERT_EQ(assay_comalloc(std::size(sizes), sizes, batch), 0);
    for (void* p : batch) {
      ptrs.push_back(p);
      ptrs.push_back(nullptr);
    }
    for (int i = 0; i < 50; ++i) {
      void* p = malloc(rng() % 5000);
      ASSERT_NE(p, nullptr);
      ptrs.push_back(p);
      if (i % 7 == 0) ptrs.push_back(nullptr);
    }
    void* big = malloc(4 * kMiB);
    ASSERT_NE(big, nullptr);
    ptrs.push_back(big);
    std::shuffle(ptrs.begin(), ptrs.end(), rng);
    assay_bulk_free(ptrs.data(), ptrs.size());
    for (size_t i = 0; i < ptrs.size(); ++i) ASSERT_EQ(ptrs[i], nullptr) << i;
  }
  assay_bulk_free(nullptr, 0);
  EXPECT_LE(Allocated(), before + 256 * kKiB);
}

TEST(Comalloc, RandomOrderFreeMixedWithMalloc) {
  std::mt19937_64 rng(0xc0a110c2);
  struct Block {
    void* p;
    size_t n;
    uint64_t seed;
  };
  std::vector<Block> live;
  uint64_t next_seed = 0;
  for (int round = 0; round < 200; ++round) {
    const size_t n = 1 + rng() % 64;
    std::vector<size_t> sizes(n);
    for (size_t& s : sizes) {
      const uint64_t r = rng() % 100;
      s = r < 85 ? rng() % 1025 : (r < 97 ? rng() % (256 * kKiB) : 256 * kKiB + rng() % (4 * kMiB));
    }
    std::vector<void*> out(n, kSentinel);
    ASSERT_EQ(assay_comalloc(n, sizes.data(), out.data()), 0);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_NE(out[i], nullptr);
      ASSERT_GE(malloc_usable_size(out[i]), sizes[i]);
      Fill(out[i], sizes[i], next_seed);
      live.push_back({out[i], sizes[i], next_seed++});
    }
    for (int i = 0; i < 20; ++i) {
      const size_t m = rng() % 3000;
      void* p = malloc(m);
      ASSERT_NE(p, nullptr);
      Fill(p, m, next_seed);
      live.push_back({p, m, next_seed++});
    }
    // Free a random half, verifying each block before it goes.
    std::shuffle(live.begin(), live.end(), rng);
    const size_t keep = live.size() / 2;
    for (size_t i = keep; i < live.size(); ++i) {
      ASSERT_TRUE(Holds(live[i].p, live[i].n, live[i].seed)) << "block corrupted";
      free(live[i].p);
    }
    live.resize(keep);
  }
  for (const Block& b : live) {
    ASSERT_TRUE(Holds(b.p, b.n, b.seed)) << "block corrupted";
    free(b.p);
  }
}

}  // namespace
