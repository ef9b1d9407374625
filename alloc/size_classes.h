// Size classes: the sizes small blocks are rounded up to, the span length
// each class is carved from, and the batch sizes moved between the caches.
// The table is computed at compile time (no constructor runs).
//
// Spacing: 8, then 16-byte steps to 128, then 8 classes per doubling
// (144, 160, ..., 256, 288, ...), so above 128 bytes a block wastes at most
// 1/8 of its size (12.5%). Every class but 8 is a multiple of 16.
#pragma once

#include <array>
#include <bit>

#include "base/base.h"

namespace assay::internal {

// Class 0 is "no class": it marks slices that are not small spans.
inline constexpr size_t kNumClasses = 1 + 1 + 8 + 8 * 11;  // 98: 8 B .. 256 KiB
inline constexpr size_t kMaxTableSize = 1024;              // sizes the lookup table covers

struct SizeClassInfo {
  uint32_t size;         // block size in bytes
  uint32_t span_slices;  // slices per span of this class
  uint32_t batch;        // blocks moved at once between thread and central caches
  uint32_t max_cached;   // upper bound on one thread's free list of this class
  uint32_t span_blocks;  // blocks in one span
  // Divisibility test for "is this offset a block start?", from Hacker's
  // Delight 10-17: x % size == 0  <=>  rotr(x * inv, shift) <= limit,
  // where size = odd * 2^shift and inv is odd's inverse modulo 2^32.
  uint32_t inv;
  uint32_t shift;
  uint32_t limit;
};

constexpr uint32_t ClassSizeOf(size_t cls) {
  if (cls == 0) return 0;
  if (cls == 1) return 8;
  if (cls <= 9) return static_cast<uint32_t>((cls - 1) * 16);
  const size_t i = cls - 10;    // 0.. : eight per doubling above 128
  const size_t lg = 7 + i / 8;  // interval (2^lg, 2^(lg+1)]
  return static_cast<uint32_t>((size_t{1} << lg) + (i % 8 + 1) * (size_t{1} << (lg - 3)));
}

// Class of a size above 128 and at most kMaxSmallSize, by formula.
ASSAY_INLINE constexpr size_t ClassOfLarge(size_t n) {
  const size_t m = n - 1;
  const unsigned lg = 63 - static_cast<unsigned>(std::countl_zero(m));
  return 10 + (lg - 7) * 8 + ((m >> (lg - 3)) & 7);
}

constexpr size_t ClassOfSizeSlow(size_t n) {
  if (n <= 8) return 1;
  if (n <= 128) return (n + 15) / 16 + 1;
  return ClassOfLarge(n);
}

constexpr uint32_t InverseMod32(uint32_t odd) {
  uint32_t x = odd;  // Newton: each step doubles the correct low bits
  for (int i = 0; i < 5; ++i) x *= 2 - odd * x;
  return x;
}

constexpr SizeClassInfo MakeClassInfo(size_t cls) {
  SizeClassInfo c{};
  if (cls == 0) return c;
  c.size = ClassSizeOf(cls);
  // At least 4 blocks per span and at most 1/8 of the span left unused.
  uint32_t slices = 1;
  while (true) {
    const size_t bytes = slices * kSliceSize;
    const size_t blocks = bytes / c.size;
    if (blocks >= 4 && (bytes - blocks * c.size) * 8 <= bytes) break;
    ++slices;
  }
  c.span_slices = slices;
  c.span_blocks = static_cast<uint32_t>(slices * kSliceSize / c.size);
  const uint32_t b = static_cast<uint32_t>(32 * 1024 / c.size);
  c.batch = b < 2 ? 2 : (b > 32 ? 32 : b);
  const uint32_t m = static_cast<uint32_t>(256 * 1024 / c.size);
  c.max_cached = m < 2 * c.batch ? 2 * c.batch : (m > 2048 ? 2048 : m);
  c.shift = static_cast<uint32_t>(std::countr_zero(c.size));
  c.inv = InverseMod32(c.size >> c.shift);
  c.limit = 0xffffffffu / c.size;
  return c;
}

constexpr std::array<SizeClassInfo, kNumClasses> MakeClassTable() {
  std::array<SizeClassInfo, kNumClasses> t{};
  for (size_t i = 0; i < kNumClasses; ++i) t[i] = MakeClassInfo(i);
  return t;
}

constexpr std::array<uint8_t, kMaxTableSize / 8 + 1> MakeSmallLookup() {
  std::array<uint8_t, kMaxTableSize / 8 + 1> t{};
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<uint8_t>(ClassOfSizeSlow(i * 8));
  return t;
}

inline constexpr std::array<SizeClassInfo, kNumClasses> kClasses = MakeClassTable();
// kSmallLookup[(n + 7) / 8] is the class of n, for n <= kMaxTableSize.
inline constexpr std::array<uint8_t, kMaxTableSize / 8 + 1> kSmallLookup = MakeSmallLookup();

static_assert(ClassSizeOf(kNumClasses - 1) == kMaxSmallSize);
static_assert(ClassOfSizeSlow(kMaxSmallSize) == kNumClasses - 1);
static_assert(kNumClasses <= 255, "classes must fit the slice map's byte");

ASSAY_INLINE size_t ClassOfSize(size_t n) {
  return n <= kMaxTableSize ? kSmallLookup[(n + 7) >> 3] : ClassOfLarge(n);
}

// True when offset (from the span start) is the start of a block of class c.
ASSAY_INLINE bool IsBlockOffset(const SizeClassInfo& c, uint32_t offset) {
  return std::rotr(offset * c.inv, static_cast<int>(c.shift)) <= c.limit;
}

}  // namespace assay::internal
