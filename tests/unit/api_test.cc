// Conformance of the C allocation API assay replaces: malloc, free, calloc, realloc,
// reallocarray, the aligned allocators, malloc_usable_size, malloc_trim, mallopt, mallinfo2
// and errno behaviour, for sizes from 0 to 64 MiB across the small, large and huge regimes.
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

#include "assay/assay.h"
#include "gtest/gtest.h"

namespace {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kPage = 4096;

// Hides a value from the optimiser (so impossible constant sizes draw no
// -Walloc-size-larger-than warning and calls are not folded).
template <typename T>
T Opaque(T v) {
  asm volatile("" : "+r"(v));
  return v;
}

bool IsAligned(const void* p, size_t align) { return reinterpret_cast<uintptr_t>(p) % align == 0; }

// The pattern of a block filled with `seed`: word k (8 bytes at offset 8k)
// holds PatternWord(k, seed), little-endian, so any byte range can be
// filled and checked a word at a time.
uint64_t PatternWord(size_t k, uint64_t seed) {
  return (k + 1) * 0x9E3779B97F4A7C15ull ^ (seed + 1) * 0xD1B54A32D192ED03ull;
}

uint8_t PatternByte(size_t i, uint64_t seed) {
  return static_cast<uint8_t>(PatternWord(i >> 3, seed) >> (8 * (i & 7)));
}

void Fill(void* p, size_t begin, size_t end, uint64_t seed) {
  uint8_t* b = static_cast<uint8_t*>(p);
  size_t i = begin;
  for (; i < end && i % 8 != 0; ++i) b[i] = PatternByte(i, seed);
  for (; i + 8 <= end; i += 8) {
    const uint64_t w = PatternWord(i >> 3, seed);
    memcpy(b + i, &w, 8);
  }
  for (; i < end; ++i) b[i] = PatternByte(i, seed);
}

// Returns the first offset in [begin, end) that does not hold the pattern, or end.
size_t FirstMismatch(const void* p, size_t begin, size_t end, uint64_t seed) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  size_t i = begin;
  for (; i < end && i % 8 != 0; ++i) {
    if (b[i] != PatternByte(i, seed)) return i;
  }
  for (; i + 8 <= end; i += 8) {
    uint64_t w;
    memcpy(&w, b + i, 8);
    if (w != PatternWord(i >> 3, seed)) break;
  }
  for (; i < end; ++i) {
    if (b[i] != PatternByte(i, seed)) return i;
  }
  return end;
}

bool AllZero(const void* p, size_t n) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  size_t i = 0;
  uint64_t acc = 0;
  for (; i + 64 <= n; i += 64) {
    for (size_t j = 0; j < 64; j += 8) {
      uint64_t w;
      memcpy(&w, b + i + j, 8);
      acc |= w;
    }
    if (acc != 0) return false;
  }
  for (; i < n; ++i) acc |= b[i];
  return acc == 0;
}

// The alignment malloc owes an n-byte request: max_align_t, or less for
// objects too small to need it.
size_t RequiredAlign(size_t n) {
  if (n >= alignof(max_align_t)) return alignof(max_align_t);
  return n <= sizeof(void*) ? sizeof(void*) : alignof(max_align_t);
}

// Sizes from 0 to 64 MiB: every size up to 4 KiB, then each power of two with
// its neighbours and eight points per doubling, plus the regime boundaries.
std::vector<size_t> SweepSizes() {
  std::vector<size_t> sizes;
  for (size_t n = 0; n <= 4096; ++n) sizes.push_back(n);
  for (size_t p = 8 * kKiB; p <= 64 * kMiB; p *= 2) {
    const size_t half = p / 2;
    for (size_t k = 1; k < 8; ++k) sizes.push_back(half + k * half / 8 + 1);
    sizes.push_back(p - 1);
    sizes.push_back(p);
    if (p < 64 * kMiB) sizes.push_back(p + 1);
  }
  for (size_t n : {256 * kKiB - 1, 256 * kKiB, 256 * kKiB + 1, 300000ul, 2 * kMiB - 1, 2 * kMiB,
                   2 * kMiB + 1, 3 * kMiB}) {
    sizes.push_back(n);
  }
  return sizes;
}

assay_stats Stats() {
  assay_stats s;
  assay_get_stats(&s);
  return s;
}

TEST(Api, LinkedAgainstAssay) {
  ASSERT_NE(assay_version(), nullptr);
  EXPECT_EQ(strncmp(assay_version(), "assay ", 6), 0) << assay_version();
}

void CheckErrnoKept() {
  for (size_t n :
       {0ul, 1ul, 8ul, 100ul, 1000ul, 4096ul, 100000ul, 300000ul, 2 * kMiB, 3 * kMiB, 40 * kMiB}) {
    errno = 4242;
    void* p = malloc(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_EQ(errno, 4242) << "malloc(" << n << ") changed errno";
    memset(p, 1, n);
    errno = 4242;
    free(p);
    EXPECT_EQ(errno, 4242) << "free of a " << n << "-byte block changed errno";
  }
  // Many blocks at once, so caches refill and overflow.
  std::vector<void*> blocks;
  errno = 4242;
  for (int i = 0; i < 20000; ++i) blocks.push_back(malloc(static_cast<size_t>(i % 2000)));
  for (void* p : blocks) free(p);
  EXPECT_EQ(errno, 4242) << "a malloc/free run with refills and overflows changed errno";
}

TEST(Api, SuccessfulMallocAndFreeKeepErrno) {
  CheckErrnoKept();
  // A new thread's first malloc creates its cache; its exit flushes it.
  std::thread t(CheckErrnoKept);
  t.join();
}

TEST(Api, FreeNullIsANoOp) {
  errno = 77;
  free(nullptr);
  EXPECT_EQ(errno, 77);
}

TEST(Api, MallocImpossibleSizesFailWithEnomem) {
  for (size_t n : {SIZE_MAX, size_t{1} << 62, SIZE_MAX - kPage, SIZE_MAX - kPage + 2,
                   (SIZE_MAX >> 1) + 1, size_t{1} << 48}) {
    errno = 0;
    void* p = malloc(Opaque(n));
    EXPECT_EQ(p, nullptr) << "malloc(" << n << ")";
    EXPECT_EQ(errno, ENOMEM) << "malloc(" << n << ")";
    free(p);
  }
}

TEST(Api, MallocUsableSizeCoversRequestAndIsWritable) {
  EXPECT_EQ(malloc_usable_size(nullptr), 0u);
  for (size_t n : SweepSizes()) {
    void* p = malloc(n);
    ASSERT_NE(p, nullptr) << "malloc(" << n << ")";
    EXPECT_TRUE(IsAligned(p, RequiredAlign(n))) << "malloc(" << n << ") = " << p;
    const size_t usable = malloc_usable_size(p);
    ASSERT_GE(usable, n) << "malloc(" << n << ")";
    // Usable bytes are the program's: write them all, read back the ends.
    memset(p, 0x5a, usable);
    EXPECT_EQ(static_cast<uint8_t*>(p)[0], 0x5a);
    EXPECT_EQ(static_cast<uint8_t*>(p)[usable - 1], 0x5a);
    free(p);
  }
}

TEST(Api, LiveBlocksDoNotOverlap) {
  std::mt19937_64 rng(0x5eed0001);
  struct Block {
    uint8_t* p;
    size_t n;
    uint64_t seed;
  };
  std::vector<Block> blocks;
  for (uint64_t i = 0; i < 6000; ++i) {
    const uint64_t r = rng() % 1000;
    size_t n;
    if (r < 900) {
      n = rng() % 1025;
    } else if (r < 990) {
      n = rng() % (256 * kKiB);
    } else if (r < 998) {
      n = 256 * kKiB + rng() % (2 * kMiB - 256 * kKiB);
    } else {
      n = 2 * kMiB + rng() % (6 * kMiB);
    }
    uint8_t* p = static_cast<uint8_t*>(malloc(n));
    ASSERT_NE(p, nullptr) << n;
    const size_t usable = malloc_usable_size(p);
    ASSERT_GE(usable, n);
    Fill(p, 0, usable, i);
    blocks.push_back({p, usable, i});
  }
  // Every block still holds its own pattern: no two overlap.
  for (const Block& b : blocks) {
    ASSERT_EQ(FirstMismatch(b.p, 0, b.n, b.seed), b.n) << "block " << b.seed << " overwritten";
  }
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  for (const Block& b : blocks) {
    ranges.emplace_back(reinterpret_cast<uintptr_t>(b.p), reinterpret_cast<uintptr_t>(b.p) + b.n);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    ASSERT_LE(ranges[i - 1].second, ranges[i].first) << "usable ranges overlap";
  }
  std::shuffle(blocks.begin(), blocks.end(), rng);
  for (size_t i = 0; i < blocks.size(); ++i) {
    free(blocks[i].p);
    if (i % 1500 == 0) {
      for (size_t j = i + 1; j < blocks.size(); ++j) {
        const Block& b = blocks[j];
        ASSERT_EQ(FirstMismatch(b.p, 0, b.n, b.seed), b.n) << "free corrupted another block";
      }
    }
  }
}

// ---- calloc ----

TEST(Api, CallocOverflowFailsWithEnomem) {
  const std::pair<size_t, size_t> cases[] = {
      {SIZE_MAX, 2},
      {2, SIZE_MAX},
      {(SIZE_MAX >> 1) + 1, 2},
      {size_t{1} << 32, size_t{1} << 32},
      {SIZE_MAX, SIZE_MAX},
      {size_t{1} << 31, size_t{1} << 31},  // no overflow, but 2^62 bytes
  };
  for (const auto& [count, size] : cases) {
    errno = 0;
    void* p = calloc(Opaque(count), Opaque(size));
    EXPECT_EQ(p, nullptr) << "calloc(" << count << ", " << size << ")";
    EXPECT_EQ(errno, ENOMEM) << "calloc(" << count << ", " << size << ")";
    free(p);
  }
}

TEST(Api, CallocZeroIsAUniqueFreeablePointer) {
  void* a = calloc(0, 0);
  void* b = calloc(0, 16);
  void* c = calloc(16, 0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  EXPECT_NE(a, c);
  free(a);
  free(b);
  free(c);
}

const size_t kCallocSizes[] = {1,        8,        24,           100,        1000,     4096,
                               10000,    65536,    100000,       256 * kKiB, 300000,   512 * kKiB,
                               1 * kMiB, 2 * kMiB, 2 * kMiB + 1, 3 * kMiB,   17 * kMiB};

TEST(Api, CallocZeroesRecycledMemory) {
  for (size_t n : kCallocSizes) {
    for (int round = 0; round < 4; ++round) {
      uint8_t* dirty = static_cast<uint8_t*>(malloc(n));
      ASSERT_NE(dirty, nullptr);
      memset(dirty, 0xa5, malloc_usable_size(dirty));
      free(dirty);
      uint8_t* p = static_cast<uint8_t*>(calloc(1, n));
      ASSERT_NE(p, nullptr) << n;
      ASSERT_TRUE(AllZero(p, n)) << "calloc(1, " << n << ") round " << round
                                 << (p == dirty ? " (same block as the dirty one)" : "");
      memset(p, 0xa5, n);
      free(p);
    }
  }
}

TEST(Api, CallocZeroesAfterMixedChurn) {
  // Dirty many blocks of every regime, free them all, then calloc
  // different sizes that land on the recycled memory.
  std::mt19937_64 rng(0x5eed0002);
  std::vector<void*> blocks;
  constexpr size_t kChurnSizes = std::size(kCallocSizes) - 1;  // without the 17 MiB one
  for (int i = 0; i < 300; ++i) {
    const size_t n = kCallocSizes[rng() % kChurnSizes];
    void* p = malloc(n);
    ASSERT_NE(p, nullptr);
    memset(p, 0xff, malloc_usable_size(p));
    blocks.push_back(p);
  }
  std::shuffle(blocks.begin(), blocks.end(), rng);
  for (void* p : blocks) free(p);
  blocks.clear();
  for (int i = 0; i < 300; ++i) {
    const size_t count = 1 + rng() % 4;
    const size_t n = kCallocSizes[rng() % kChurnSizes] / count + 1;
    void* p = calloc(count, n);
    ASSERT_NE(p, nullptr);
    ASSERT_TRUE(AllZero(p, count * n)) << "calloc(" << count << ", " << n << ")";
    memset(p, 0xff, count * n);
    blocks.push_back(p);
  }
  for (void* p : blocks) free(p);
}

// ---- realloc ----

// Reallocs *p to n bytes and checks the common prefix kept the pattern; then
// extends the pattern to the new size.
void ReallocChecked(uint8_t** p, size_t* size, size_t n, uint64_t seed) {
  uint8_t* q = static_cast<uint8_t*>(realloc(*p, n));
  ASSERT_NE(q, nullptr) << "realloc from " << *size << " to " << n;
  ASSERT_GE(malloc_usable_size(q), n);
  const size_t keep = std::min(*size, n);
  ASSERT_EQ(FirstMismatch(q, 0, keep, seed), keep)
      << "realloc from " << *size << " to " << n << " lost contents";
  Fill(q, keep, n, seed);
  *p = q;
  *size = n;
}

TEST(Api, ReallocKeepsContentsThroughEveryRegime) {
  // small->small (grow, shrink), small->large, large->large (grow, shrink),
  // large->huge, huge->huge (grow, shrink), huge->large, huge->small,
  // small->huge, large->small.
  const size_t steps[] = {24,       100,         1000,       10,           4000,      200 * kKiB,
                          300000,   1500 * kKiB, 400 * kKiB, 3 * kMiB,     64 * kMiB, 5 * kMiB,
                          3 * kMiB, 1 * kMiB,    100,        50,           9 * kMiB,  1 * kMiB,
                          300,      300000,      2 * kMiB,   2 * kMiB + 1, 2 * kMiB,  5000,
                          6 * kMiB, 100};
  const uint64_t seed = 3;
  size_t size = 16;
  uint8_t* p = static_cast<uint8_t*>(malloc(size));
  ASSERT_NE(p, nullptr);
  Fill(p, 0, size, seed);
  for (size_t n : steps) {
    ReallocChecked(&p, &size, n, seed);
    if (HasFatalFailure()) return;
  }
  free(p);
}

TEST(Api, ReallocRandomWalk) {
  std::mt19937_64 rng(0x5eed0003);
  const size_t anchors[] = {0, 8, 128, 1024, 64 * kKiB, 256 * kKiB, 2 * kMiB, 4 * kMiB, 12 * kMiB};
  for (uint64_t seed = 0; seed < 4; ++seed) {
    size_t size = 1;
    uint8_t* p = static_cast<uint8_t*>(malloc(size));
    ASSERT_NE(p, nullptr);
    Fill(p, 0, size, seed);
    for (int step = 0; step < 80; ++step) {
      const size_t base = anchors[rng() % std::size(anchors)];
      const size_t n = 1 + base + rng() % (base / 2 + 16);
      ReallocChecked(&p, &size, n, seed);
      if (HasFatalFailure()) return;
    }
    free(p);
  }
}

// A string built by appends: a block that realloc moves to grow past 64 KiB
// becomes a slice run (its usable size is whole 64 KiB slices), which grows
// in place while the slices after it are free; an append that fits the
// block never moves it.
TEST(Api, ReallocGrowthPast64KiBMovesToASliceRun) {
  const uint64_t seed = 11;
  size_t size = 1000;
  uint8_t* p = static_cast<uint8_t*>(malloc(size));
  ASSERT_NE(p, nullptr);
  Fill(p, 0, size, seed);
  size_t slice_runs = 0;
  while (size < 700 * kKiB) {
    uint8_t* before = p;
    const size_t usable = malloc_usable_size(p);
    ReallocChecked(&p, &size, size + 37, seed);
    if (HasFatalFailure()) return;
    if (size <= usable) {
      ASSERT_EQ(p, before) << "an append that fits moved the block, at " << size;
    }
    if (p != before && size > 64 * kKiB) {
      ASSERT_EQ(malloc_usable_size(p) % (64 * kKiB), 0u) << "moved to no slice run at " << size;
      ++slice_runs;
    }
  }
  EXPECT_GT(slice_runs, 0u) << "never moved past 64 KiB";
  free(p);
}

TEST(Api, ReallocOfNullIsMalloc) {
  for (size_t n : {0ul, 1ul, 100ul, 300000ul, 3 * kMiB}) {
    void* p = realloc(nullptr, n);
    ASSERT_NE(p, nullptr) << n;
    ASSERT_GE(malloc_usable_size(p), n);
    memset(p, 0x11, n);
    free(p);
  }
}

TEST(Api, ReallocToZeroFreesAndReturnsNull) {
  for (size_t n : {1ul, 100ul, 300000ul, 3 * kMiB, 20 * kMiB}) {
    void* p = malloc(n);
    ASSERT_NE(p, nullptr);
    memset(p, 1, n);
    const assay_stats before = Stats();
    EXPECT_EQ(realloc(p, 0), nullptr) << n;
    const assay_stats after = Stats();
    if (n > 256 * kKiB) {
      // The block left the program's hands (huge blocks are unmapped).
      EXPECT_LE(after.allocated + n, before.allocated) << n;
    }
    if (n > 2 * kMiB) {
      EXPECT_EQ(after.huge_blocks + 1, before.huge_blocks) << n;
    }
  }
}

TEST(Api, ReallocFailureKeepsTheBlock) {
  for (size_t n : {100ul, 300000ul, 3 * kMiB}) {
    uint8_t* p = static_cast<uint8_t*>(malloc(n));
    ASSERT_NE(p, nullptr);
    Fill(p, 0, n, 9);
    for (size_t huge : {SIZE_MAX, size_t{1} << 62, SIZE_MAX - kPage + 2}) {
      errno = 0;
      EXPECT_EQ(realloc(Opaque(p), Opaque(huge)), nullptr) << n << " -> " << huge;
      EXPECT_EQ(errno, ENOMEM) << n << " -> " << huge;
      ASSERT_EQ(FirstMismatch(p, 0, n, 9), n) << "failed realloc damaged the block";
      ASSERT_GE(malloc_usable_size(p), n);
    }
    free(p);
  }
}

TEST(Api, ReallocArray) {
  uint8_t* p = static_cast<uint8_t*>(reallocarray(nullptr, 4, 8));
  ASSERT_NE(p, nullptr);
  size_t size = 32;
  Fill(p, 0, size, 5);
  errno = 0;
  EXPECT_EQ(reallocarray(Opaque(p), Opaque(SIZE_MAX / 2), 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(reallocarray(Opaque(p), Opaque(size_t{1} << 32), size_t{1} << 32), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  ASSERT_EQ(FirstMismatch(p, 0, size, 5), size) << "failed reallocarray damaged the block";
  for (size_t count : {10ul, 1000ul, 100000ul, 1000ul, 3ul}) {
    uint8_t* q = static_cast<uint8_t*>(reallocarray(p, count, 37));
    ASSERT_NE(q, nullptr) << count;
    const size_t keep = std::min(size, count * 37);
    ASSERT_EQ(FirstMismatch(q, 0, keep, 5), keep);
    Fill(q, keep, count * 37, 5);
    p = q;
    size = count * 37;
  }
  free(p);
}

// ---- aligned allocation ----

// Size 0 last: it is the odd one out for the mapping-backed alignments.
const size_t kAlignedSizes[] = {1, 100, 4096, 300000, 3 * kMiB, 0};

std::vector<size_t> PosixAlignments() {
  std::vector<size_t> aligns;
  for (size_t a = sizeof(void*); a <= 64 * kKiB; a *= 2) aligns.push_back(a);
  for (size_t a : {128 * kKiB, 1 * kMiB, 4 * kMiB}) aligns.push_back(a);
  return aligns;
}

TEST(Api, PosixMemalignRejectsBadAlignments) {
  for (size_t align :
       {0ul, 1ul, 2ul, 3ul, 4ul, 12ul, 24ul, 48ul, 100ul, 4097ul, 65537ul, 3 * kMiB, SIZE_MAX}) {
    void* sentinel = reinterpret_cast<void*>(uintptr_t{0xdeadbeef});
    void* p = sentinel;
    errno = 4242;
    EXPECT_EQ(posix_memalign(&p, align, 64), EINVAL) << "align " << align;
    EXPECT_EQ(p, sentinel) << "posix_memalign wrote its result on failure, align " << align;
    EXPECT_EQ(errno, 4242) << "posix_memalign reports through its result, not errno";
  }
}

TEST(Api, PosixMemalignImpossibleSize) {
  void* sentinel = reinterpret_cast<void*>(uintptr_t{0xdeadbeef});
  for (size_t align : {16ul, 64ul, 4096ul, 1 * kMiB}) {
    void* p = sentinel;
    EXPECT_EQ(posix_memalign(&p, align, Opaque(size_t{1} << 62)), ENOMEM) << align;
    EXPECT_EQ(p, sentinel);
  }
}

TEST(Api, PosixMemalignEveryAlignmentAndSize) {
  // Size-major, so every alignment of one size is live at once.
  for (size_t n : kAlignedSizes) {
    std::vector<std::pair<void*, size_t>> live;
    for (size_t align : PosixAlignments()) {
      void* p = nullptr;
      errno = 4242;
      ASSERT_EQ(posix_memalign(&p, align, n), 0) << "align " << align << " size " << n;
      EXPECT_EQ(errno, 4242);
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(IsAligned(p, align)) << p << " align " << align << " size " << n;
      const size_t usable = malloc_usable_size(p);
      ASSERT_GE(usable, n) << "align " << align << " size " << n;
      Fill(p, 0, n, n + align);
      live.emplace_back(p, align);
    }
    for (auto [p, align] : live) {
      EXPECT_EQ(FirstMismatch(p, 0, n, n + align), n) << "align " << align << " size " << n;
      free(p);
    }
  }
}

TEST(Api, AlignmentSixteenForTinySizes) {
  // An 8-byte class block is only 8-aligned: an explicit 16 must not get one.
  std::vector<void*> live;
  for (int i = 0; i < 64; ++i) {
    for (size_t n : {0ul, 1ul, 8ul}) {
      void* p = nullptr;
      ASSERT_EQ(posix_memalign(&p, 16, n), 0);
      EXPECT_TRUE(IsAligned(p, 16)) << "posix_memalign(16, " << n << ") = " << p;
      live.push_back(p);
      p = aligned_alloc(16, n);
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(IsAligned(p, 16)) << "aligned_alloc(16, " << n << ") = " << p;
      live.push_back(p);
      p = memalign(16, n);
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(IsAligned(p, 16)) << "memalign(16, " << n << ") = " << p;
      live.push_back(p);
    }
  }
  for (void* p : live) free(p);
}

TEST(Api, ZeroSizeWithAlignmentAboveSlice) {
  // Alignments above 64 KiB come from an aligned mapping; size 0 still
  // yields a live, freeable, distinct block.
  for (size_t align : {128 * kKiB, 1 * kMiB, 4 * kMiB}) {
    void* p = nullptr;
    ASSERT_EQ(posix_memalign(&p, align, 0), 0) << align;
    EXPECT_TRUE(IsAligned(p, align));
    void* q = aligned_alloc(align, 0);
    ASSERT_NE(q, nullptr);
    EXPECT_NE(p, q);
    EXPECT_GE(malloc_usable_size(p), 0u);  // aborts if p is not a live block
    free(p);
    free(q);
  }
}

TEST(Api, PosixMemalignBlocksRealloc) {
  for (size_t align : {64ul, 64 * kKiB, 1 * kMiB}) {
    void* v = nullptr;
    ASSERT_EQ(posix_memalign(&v, align, 1000), 0);
    uint8_t* p = static_cast<uint8_t*>(v);
    size_t size = 1000;
    Fill(p, 0, size, 1);
    for (size_t n : {5000ul, 300000ul, 3 * kMiB, 10ul}) {
      ReallocChecked(&p, &size, n, 1);
      if (HasFatalFailure()) return;
    }
    free(p);
  }
}

TEST(Api, AlignedAlloc) {
  for (size_t align : {0ul, 3ul, 24ul, 100ul, 65537ul}) {
    errno = 0;
    EXPECT_EQ(aligned_alloc(Opaque(align), 64), nullptr) << align;
    EXPECT_EQ(errno, EINVAL) << align;
  }
  for (size_t n : kAlignedSizes) {
    for (size_t align = 1; align <= 4 * kMiB; align *= 2) {
      // C11 wants n a multiple of align; glibc and assay accept any size.
      void* p = aligned_alloc(align, n);
      ASSERT_NE(p, nullptr) << align << " " << n;
      EXPECT_TRUE(IsAligned(p, align)) << align << " " << n;
      ASSERT_GE(malloc_usable_size(p), n);
      memset(p, 0x33, n);
      free(p);
    }
  }
}

TEST(Api, Memalign) {
  for (size_t n : kAlignedSizes) {
    for (size_t align = 1; align <= 4 * kMiB; align *= 2) {
      void* p = memalign(align, n);
      ASSERT_NE(p, nullptr) << align << " " << n;
      EXPECT_TRUE(IsAligned(p, align)) << align << " " << n;
      ASSERT_GE(malloc_usable_size(p), n);
      memset(p, 0x44, n);
      free(p);
    }
  }
  // As glibc: a non-power-of-two alignment is rounded up to the next power.
  void* p = memalign(24, 100);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(IsAligned(p, 32)) << p;
  free(p);
  p = memalign(3000, 100);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(IsAligned(p, 4096)) << p;
  free(p);
}

TEST(Api, Valloc) {
  for (size_t n : kAlignedSizes) {
    void* p = valloc(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_TRUE(IsAligned(p, kPage)) << n;
    ASSERT_GE(malloc_usable_size(p), n);
    memset(p, 0x55, n);
    free(p);
  }
}

TEST(Api, Pvalloc) {
  for (size_t n : {0ul, 1ul, 100ul, 4095ul, 4096ul, 4097ul, 300000ul, 3 * kMiB, 3 * kMiB + 1}) {
    void* p = pvalloc(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_TRUE(IsAligned(p, kPage)) << n;
    const size_t rounded = n == 0 ? kPage : (n + kPage - 1) / kPage * kPage;
    const size_t usable = malloc_usable_size(p);
    EXPECT_GE(usable, rounded) << "pvalloc(" << n << ")";
    EXPECT_EQ(usable % kPage, 0u) << "pvalloc(" << n << ") usable " << usable;
    memset(p, 0x66, rounded);
    free(p);
  }
  errno = 0;
  EXPECT_EQ(pvalloc(Opaque(SIZE_MAX - 10)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

// ---- malloc_trim, mallopt, mallinfo2 ----

TEST(Api, MallocTrim) {
  std::vector<void*> blocks;
  for (int i = 0; i < 16; ++i) {
    void* p = malloc(1 * kMiB);
    ASSERT_NE(p, nullptr);
    memset(p, 1, 1 * kMiB);
    blocks.push_back(p);
  }
  for (void* p : blocks) free(p);
  // 16 MiB of dirty pages were just freed: trimming releases something.
  EXPECT_EQ(malloc_trim(0), 1);
  EXPECT_EQ(Stats().free_dirty, 0u) << "malloc_trim left dirty pages";
  const int again = malloc_trim(0);
  EXPECT_TRUE(again == 0 || again == 1);
  // The allocator still works after trimming.
  void* p = malloc(300000);
  ASSERT_NE(p, nullptr);
  memset(p, 2, 300000);
  free(p);
}

// mallopt is accepted and ignored: it answers as glibc's own mallopt does
// (found after ours with RTLD_NEXT: this binary links assay) for glibc's
// parameters, good and bad values, and unknown ones, and the allocator behaves
// the same afterwards.
TEST(Api, MalloptAnswersAsGlibcAndChangesNothing) {
  using MalloptFn = int (*)(int, int);
  const auto glibc = reinterpret_cast<MalloptFn>(dlsym(RTLD_NEXT, "mallopt"));
  ASSERT_NE(glibc, nullptr) << dlerror();
  ASSERT_NE(reinterpret_cast<void*>(glibc), reinterpret_cast<void*>(&mallopt))
      << "RTLD_NEXT found assay's own mallopt";

  const size_t sizes[] = {1, 24, 100, 200, 1000, 5000, 70000, 300000, 3 * kMiB};
  std::vector<size_t> usable_before;
  for (size_t n : sizes) {
    void* p = malloc(n);
    ASSERT_NE(p, nullptr);
    usable_before.push_back(malloc_usable_size(p));
    free(p);
  }

  const struct {
    int param;
    int value;
  } cases[] = {
      {M_MXFAST, 0},
      {M_MXFAST, 64},
      {M_MXFAST, 160},
      {M_MXFAST, 161},
      {M_MXFAST, 1000},
      {M_MXFAST, -1},
      {M_TRIM_THRESHOLD, 0},
      {M_TRIM_THRESHOLD, 128 * 1024},
      {M_TRIM_THRESHOLD, -1},
      {M_TOP_PAD, 0},
      {M_TOP_PAD, 1 << 20},
      {M_MMAP_THRESHOLD, 4096},
      {M_MMAP_THRESHOLD, 1 << 20},
      {M_MMAP_MAX, 0},
      {M_CHECK_ACTION, 3},
      {M_PERTURB, 0x5a},
      {M_ARENA_TEST, 8},
      {M_ARENA_MAX, 1},
      {M_ARENA_MAX, 0},
      {12345, -1},
      {-100, 7},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(mallopt(c.param, c.value), glibc(c.param, c.value))
        << "mallopt(" << c.param << ", " << c.value << ")";
  }
  // What glibc's manual page promises, independently of the glibc at hand:
  // an unknown parameter is no error; M_MXFAST above 80 * sizeof(size_t) / 4 is.
  EXPECT_EQ(mallopt(12345, -1), 1);
  EXPECT_EQ(mallopt(M_MXFAST, 80 * sizeof(size_t) / 4 + 1), 0);

  // Ignored: M_MMAP_THRESHOLD 4096 and M_TOP_PAD 1 MiB above would change
  // glibc's block sizes; assay's stay as they were.
  for (size_t i = 0; i < std::size(sizes); ++i) {
    void* p = malloc(sizes[i]);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(malloc_usable_size(p), usable_before[i]) << "malloc(" << sizes[i] << ")";
    free(p);
  }
  // M_PERTURB 0x5a above would make glibc overwrite freed blocks with 0xa5:
  // a freed block reused at once still holds its bytes past the free-list link.
  unsigned char* p = static_cast<unsigned char*>(malloc(200));
  ASSERT_NE(p, nullptr);
  memset(p, 0x11, 200);
  free(p);
  unsigned char* q = static_cast<unsigned char*>(malloc(200));
  ASSERT_EQ(q, p) << "the thread cache did not hand the freed block back";
  for (size_t i = sizeof(void*); i < 200; ++i) ASSERT_EQ(q[i], 0x11) << "byte " << i;
  free(q);
}

TEST(Api, Mallinfo2TracksLiveBytes) {
  constexpr size_t kTotal = 10 * kMiB;
  std::mt19937_64 rng(0x5eed0004);
  const size_t before = mallinfo2().uordblks;
  std::vector<void*> blocks;
  size_t requested = 0;
  while (requested < kTotal) {
    const size_t r = rng() % 100;
    const size_t n = r < 80 ? 16 + rng() % 2000 : (r < 98 ? 4096 + rng() % 60000 : 300000);
    void* p = malloc(n);
    ASSERT_NE(p, nullptr);
    memset(p, 3, n);
    blocks.push_back(p);
    requested += n;
  }
  const struct mallinfo2 during = mallinfo2();
  EXPECT_GE(during.uordblks, before + requested)
      << "before " << before << " requested " << requested;
  EXPECT_GE(during.arena + during.hblkhd, during.uordblks);
  for (void* p : blocks) free(p);
  const size_t after = mallinfo2().uordblks;
  EXPECT_LT(after, during.uordblks);
  EXPECT_LE(after, before + 1 * kMiB) << "before " << before << " during " << during.uordblks;
}

TEST(Api, Mallinfo2CountsHugeBlocks) {
  const struct mallinfo2 before = mallinfo2();
  void* p = malloc(5 * kMiB);
  ASSERT_NE(p, nullptr);
  const struct mallinfo2 during = mallinfo2();
  EXPECT_EQ(during.hblks, before.hblks + 1);
  EXPECT_GE(during.hblkhd, before.hblkhd + 5 * kMiB);
  free(p);
  const struct mallinfo2 after = mallinfo2();
  EXPECT_EQ(after.hblks, before.hblks);
  EXPECT_EQ(after.hblkhd, before.hblkhd);
}

}  // namespace
