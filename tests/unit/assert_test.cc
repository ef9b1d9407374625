// base/assert.h in this build: ASSAY_CHECK's report line, whether
// ASSAY_ASSERT evaluates its condition, and whether the heap walk runs.
#include "base/assert.h"

#include <gtest/gtest.h>

#include "tests/check_heap.h"

namespace assay::internal {
namespace {

TEST(AssertDeathTest, ReportsConditionFileAndLine) {
  const int line = __LINE__ + 1;
  EXPECT_DEATH(ASSAY_CHECK(1 + 1 == 3),
               "^assay: assertion failed: 1 \\+ 1 == 3 at unit/assert_test.cc:" +
                   std::to_string(line) + "\n$");
}

TEST(Assert, EvaluatesItsConditionOnlyWhenOn) {
  int evaluated = 0;
  ASSAY_ASSERT(++evaluated == 1);
  // Release (NDEBUG) without ASSAY_CHECKED: compiled out, never evaluated.
#if defined(NDEBUG) && !ASSAY_CHECKED
  EXPECT_FALSE(kAssertsOn);
#else
  EXPECT_TRUE(kAssertsOn);
#endif
  EXPECT_EQ(evaluated, kAssertsOn ? 1 : 0);
}

TEST(Assert, HeapWalkRunsOnlyInTheCheckedBuild) {
  void* p = malloc(100);
  EXPECT_EQ(assay_check_heap(1), kChecked ? 1 : 0);
  free(p);
}

}  // namespace
}  // namespace assay::internal
