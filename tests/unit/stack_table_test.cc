// The stack table on its own: interning deduplicates (also after its hash
// shards grow), references count, and resetting the cumulative counts frees
// exactly the stacks no entry refers to.
#include "profiler/stack_table.h"

#include <gtest/gtest.h>

#include <vector>

namespace assay::profiler {
namespace {

std::vector<uintptr_t> FramesOf(uintptr_t i) {
  // Distinct stacks of varying depth (1..8), distinct from real addresses.
  std::vector<uintptr_t> f(1 + i % 8);
  for (size_t k = 0; k < f.size(); ++k) f[k] = 0x5000000000ull + i * 64 + k;
  return f;
}

TEST(StackTable, InternDeduplicatesAcrossGrowthAndResetFreesUnreferenced) {
  const size_t before = stack_table::Count();
  constexpr uintptr_t kStacks = 20000;  // enough to grow every shard several times
  std::vector<Stack*> first(kStacks);
  for (uintptr_t i = 0; i < kStacks; ++i) {
    const auto f = FramesOf(i);
    first[i] = stack_table::Intern(f.data(), f.size(), 1.0, 100.0);
    ASSERT_NE(first[i], nullptr);
  }
  EXPECT_EQ(stack_table::Count(), before + kStacks);
  stack_table::AssertValid();
  for (uintptr_t i = 0; i < kStacks; ++i) {
    const auto f = FramesOf(i);
    ASSERT_EQ(stack_table::Intern(f.data(), f.size(), 1.0, 100.0), first[i]) << i;
    EXPECT_EQ(first[i]->refs, 2u);
    EXPECT_EQ(first[i]->alloc_samples, 2u);
    EXPECT_DOUBLE_EQ(first[i]->alloc_bytes, 200.0);
  }
  // Drop both references of the even stacks; the odd ones keep one.
  for (uintptr_t i = 0; i < kStacks; ++i) {
    stack_table::Unref(first[i]);
    if (i % 2 == 0) stack_table::Unref(first[i]);
  }
  // Unreferenced stacks live on while they hold cumulative counts...
  EXPECT_EQ(stack_table::Count(), before + kStacks);
  // ...and go at the reset; referenced ones stay, with zeroed counts.
  stack_table::ResetCumulative();
  EXPECT_EQ(stack_table::Count(), before + kStacks / 2);
  stack_table::AssertValid();
  for (uintptr_t i = 1; i < kStacks; i += 2) {
    EXPECT_EQ(first[i]->alloc_samples, 0u);
    const auto f = FramesOf(i);
    ASSERT_EQ(stack_table::Intern(f.data(), f.size(), 1.0, 1.0), first[i]);
    stack_table::Unref(first[i]);
    stack_table::Unref(first[i]);
  }
  stack_table::ResetCumulative();
  EXPECT_EQ(stack_table::Count(), before);
  stack_table::AssertValid();
}

}  // namespace
}  // namespace assay::profiler
