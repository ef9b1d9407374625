// A thread's first refill of a class takes what fits in 4 KiB
// (thread_cache.cc Refill): carving links a batch through its blocks, a page
// each from 4 KiB up, so a full batch of 4 KiB blocks (8) made a thread's
// first malloc of the class touch 32 KiB. Later refills take whole batches.
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

#include "alloc/size_classes.h"
#include "assay/assay.h"

namespace {

using assay::internal::kClasses;

size_t ThreadCached() {
  assay_stats s;
  assay_get_stats(&s);
  return s.thread_cached;
}

// On a new thread (its lists empty; the main thread waits in join): the
// free bytes its cache holds after one malloc, and after `fits` more (which
// empty the first refill's list and take a second).
void FirstAndSecondRefill(size_t size, size_t fits, size_t* first, size_t* second) {
  std::thread t([&] {
    const size_t before = ThreadCached();
    void* p = malloc(size);
    *first = ThreadCached() - before;
    void* q[64];
    for (size_t i = 0; i < fits; ++i) q[i] = malloc(size);
    *second = ThreadCached() - before;
    for (size_t i = 0; i < fits; ++i) free(q[i]);
    free(p);
  });
  t.join();
}

TEST(FirstRefill, TakesOnePageOfBlocks) {
  for (size_t size : {4096, 8192, 1024}) {
    const size_t cls = assay::internal::ClassOfSizeSlow(size);
    const size_t block = kClasses[cls].size;
    const size_t batch = kClasses[cls].batch;
    const size_t fits = 4096 / block < 1 ? 1 : 4096 / block;
    ASSERT_LT(fits, batch) << size;
    size_t first = 0, second = 0;
    FirstAndSecondRefill(size, fits, &first, &second);
    // The first refill took `fits` blocks, one of them returned.
    EXPECT_EQ(first, (fits - 1) * block) << size;
    // The next took a whole batch, one of them returned.
    EXPECT_EQ(second, (batch - 1) * block) << size;
  }
}

}  // namespace
