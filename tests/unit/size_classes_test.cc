// Size classes: spacing bound, lookup consistency, span geometry, and the
// divisibility test the free fast path uses to reject interior pointers.
#include "alloc/size_classes.h"

#include <gtest/gtest.h>

namespace assay::internal {
namespace {

TEST(SizeClasses, SizesIncreaseAndAreAligned) {
  for (size_t c = 2; c < kNumClasses; ++c) {
    EXPECT_GT(kClasses[c].size, kClasses[c - 1].size) << c;
    EXPECT_EQ(kClasses[c].size % 16, 0u) << "class " << c << " size " << kClasses[c].size;
  }
  EXPECT_EQ(kClasses[1].size, 8u);
  EXPECT_EQ(kClasses[kNumClasses - 1].size, kMaxSmallSize);
}

TEST(SizeClasses, WasteAtMostOneEighthAbove128) {
  for (size_t n = 129; n <= kMaxSmallSize; ++n) {
    const size_t size = kClasses[ClassOfSize(n)].size;
    ASSERT_GE(size, n);
    ASSERT_LE((size - n) * 8, size) << "n=" << n << " class size=" << size;
  }
}

TEST(SizeClasses, LookupMatchesSmallestFittingClass) {
  for (size_t n = 0; n <= kMaxSmallSize; ++n) {
    const size_t c = ClassOfSize(n);
    ASSERT_GE(c, 1u);
    ASSERT_LT(c, kNumClasses);
    ASSERT_GE(kClasses[c].size, n) << n;
    if (c > 1) {
      ASSERT_LT(kClasses[c - 1].size, n) << n;
    }
  }
}

TEST(SizeClasses, SpanGeometry) {
  for (size_t c = 1; c < kNumClasses; ++c) {
    const SizeClassInfo& k = kClasses[c];
    const size_t bytes = k.span_slices * kSliceSize;
    EXPECT_GE(k.span_blocks, 4u) << c;
    EXPECT_EQ(k.span_blocks, bytes / k.size) << c;
    EXPECT_LE((bytes - size_t{k.span_blocks} * k.size) * 8, bytes) << c;
    EXPECT_LT(k.span_slices, kSlicesPerSegment) << c;
    EXPECT_GE(k.batch, 2u);
    EXPECT_GE(k.max_cached, k.batch);
  }
}

TEST(SizeClasses, BlockOffsetTestIsExactDivisibility) {
  for (size_t c = 1; c < kNumClasses; ++c) {
    const SizeClassInfo& k = kClasses[c];
    const uint32_t span_bytes = static_cast<uint32_t>(k.span_slices * kSliceSize);
    // Every offset in the span, for small classes; a stride for the rest.
    const uint32_t step = k.size <= 1024 ? 1 : 7;
    for (uint32_t off = 0; off < span_bytes; off += step) {
      ASSERT_EQ(IsBlockOffset(k, off), off % k.size == 0) << "class " << c << " offset " << off;
    }
    for (uint32_t i = 0; i < k.span_blocks; ++i) ASSERT_TRUE(IsBlockOffset(k, i * k.size));
  }
}

}  // namespace
}  // namespace assay::internal
