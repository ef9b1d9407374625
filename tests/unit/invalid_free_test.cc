// Invalid frees and reallocs are reported and abort: stack, static, interior pointers of small,
// large and huge blocks, memory assay never mapped, and a double free of a huge block.
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "assay/assay.h"
#include "assay/profiler.hpp"
#include "gtest/gtest.h"

namespace {

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

constexpr char kInvalidFree[] = "assay: invalid free of 0x[0-9a-f]+";
constexpr char kInvalidRealloc[] = "assay: invalid realloc of 0x[0-9a-f]+";

// Hides where a pointer came from, so the compiler neither warns about
// freeing a non-heap object nor reasons about the call.
void* Launder(void* p) {
  asm volatile("" : "+r"(p));
  return p;
}

char g_static_array[256];

class InvalidFreeDeathTest : public testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(InvalidFreeDeathTest, StackAddress) {
  EXPECT_DEATH(
      {
        char local[64];
        local[0] = 1;
        free(Launder(local));
      },
      kInvalidFree);
}

TEST_F(InvalidFreeDeathTest, StaticArray) {
  EXPECT_DEATH(free(Launder(g_static_array)), kInvalidFree);
  EXPECT_DEATH(free(Launder(g_static_array + 16)), kInvalidFree);
}

TEST_F(InvalidFreeDeathTest, InteriorOfSmallBlock) {
  EXPECT_DEATH(
      {
        char* p = static_cast<char*>(malloc(64));
        free(Launder(p + 8));
      },
      kInvalidFree);
  EXPECT_DEATH(
      {
        char* p = static_cast<char*>(malloc(64));
        free(Launder(p + 1));
      },
      kInvalidFree);
}

TEST_F(InvalidFreeDeathTest, InteriorOfLargeBlock) {
  EXPECT_DEATH(
      {
        char* p = static_cast<char*>(malloc(300 * kKiB));
        free(Launder(p + 4096));
      },
      kInvalidFree);
  // On a later slice of the span.
  EXPECT_DEATH(
      {
        char* p = static_cast<char*>(malloc(300 * kKiB));
        free(Launder(p + 64 * kKiB));
      },
      kInvalidFree);
}

TEST_F(InvalidFreeDeathTest, InsideHugeBlock) {
  EXPECT_DEATH(
      {
        char* p = static_cast<char*>(malloc(3 * kMiB));
        free(Launder(p + 4096));
      },
      kInvalidFree);
  EXPECT_DEATH(
      {
        char* p = static_cast<char*>(malloc(3 * kMiB));
        free(Launder(p + 1 * kMiB + 16));
      },
      kInvalidFree);
}

TEST_F(InvalidFreeDeathTest, MemoryAssayNeverMapped) {
  EXPECT_DEATH(
      {
        void* m = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) free(m);
      },
      kInvalidFree);
}

TEST_F(InvalidFreeDeathTest, DoubleFreeOfHugeBlock) {
  EXPECT_DEATH(
      {
        void* p = malloc(3 * kMiB);
        free(p);
        free(Launder(p));
      },
      kInvalidFree);
}

TEST_F(InvalidFreeDeathTest, ReallocOfInvalidPointer) {
  EXPECT_DEATH(
      {
        char local[64];
        local[0] = 1;
        (void)!realloc(Launder(local), 100);
      },
      kInvalidRealloc);
  EXPECT_DEATH((void)!realloc(Launder(g_static_array), 100), kInvalidRealloc);
  EXPECT_DEATH(
      {
        char* p = static_cast<char*>(malloc(64));
        (void)!realloc(Launder(p + 8), 100);
      },
      kInvalidRealloc);
  EXPECT_DEATH(
      {
        char* p = static_cast<char*>(malloc(3 * kMiB));
        (void)!realloc(Launder(p + 4096), 5 * kMiB);
      },
      kInvalidRealloc);
}

// realloc's path for blocks outside plain small spans (a large block, a
// sampled one) finds the span from the pointer's offset: an interior
// pointer, in the block's first slice or a later one, is still reported.
TEST_F(InvalidFreeDeathTest, ReallocOfInteriorOfLargeOrSampledBlock) {
  EXPECT_DEATH(
      {
        char* p = static_cast<char*>(malloc(300 * kKiB));
        (void)!realloc(Launder(p + 16), 310 * kKiB);
      },
      kInvalidRealloc);
  EXPECT_DEATH(
      {
        char* p = static_cast<char*>(malloc(300 * kKiB));
        (void)!realloc(Launder(p + 64 * kKiB + 16), 310 * kKiB);
      },
      kInvalidRealloc);
  EXPECT_DEATH(
      {
        assay::ProfilerOptions o;
        o.rate = 1;  // every block sampled: from the sampled pool
        if (!assay::Start(o)) abort();
        char* p = static_cast<char*>(malloc(64));
        (void)!realloc(Launder(p + 16), 40);  // a size that would stay in place
      },
      kInvalidRealloc);
}

TEST_F(InvalidFreeDeathTest, UsableSizeOfInvalidPointer) {
  EXPECT_DEATH((void)malloc_usable_size(Launder(g_static_array)),
               "assay: invalid malloc_usable_size of 0x[0-9a-f]+");
}

// The valid cases next to the invalid ones do not report anything.
TEST(InvalidFree, ValidFreesAreSilent) {
  void* small = malloc(64);
  void* large = malloc(300 * kKiB);
  void* huge = malloc(3 * kMiB);
  ASSERT_NE(small, nullptr);
  ASSERT_NE(large, nullptr);
  ASSERT_NE(huge, nullptr);
  free(small);
  free(large);
  free(huge);
  free(nullptr);
}

}  // namespace
