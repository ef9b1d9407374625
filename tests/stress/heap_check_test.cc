// The checked build's heap walk (alloc/check.h), built only with
// ASSAY_CHECKED: it passes on a heap that many threads have worked on, and
// each kind of corruption it is meant to see aborts with the assertion line.
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/mman.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "alloc/central.h"
#include "alloc/segment.h"
#include "alloc/size_classes.h"
#include "alloc/thread_cache.h"
#include "base/assert.h"
#include "tests/check_heap.h"

namespace assay::internal {
namespace {

static_assert(kChecked, "heap_check_test belongs to the ASSAY_CHECKED build");

// The death message, as a regex: "assay: assertion failed: <cond> at <file>:<line>".
std::string Failed(const std::string& cond_regex, const std::string& file) {
  return "assay: assertion failed: " + cond_regex + " at " + file + ":[0-9]+";
}

TEST(HeapCheck, PassesAfterThreadsWorkedOnTheHeap) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      std::vector<void*> keep;
      for (int i = 0; i < 20000; ++i) {
        const size_t n = (i % 97 == 0) ? 300 * 1024 + i : 8 + (i * 37 + t) % 3000;
        void* p = malloc(n);
        ASSERT_NE(p, nullptr);
        if (i % 3 == 0) {
          keep.push_back(p);  // freed by the main thread: blocks cross caches
        } else {
          free(p);
        }
      }
      EXPECT_EQ(assay_check_heap(0), 1);  // own cache, others still running
      static std::mutex mu;
      std::lock_guard<std::mutex> lock(mu);
      for (void* p : keep) free(p);
    });
  }
  void* huge = malloc(5 << 20);
  ASSERT_NE(huge, nullptr);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(assay_check_heap(1), 1);
  free(huge);
  EXPECT_EQ(assay_check_heap(1), 1);
}

// A list of class cls in this thread's cache holding at least two blocks.
FreeList& CachedList(size_t cls) {
  void* a = malloc(kClasses[cls].size);
  void* b = malloc(kClasses[cls].size);
  free(a);
  free(b);
  FreeList& l = tls_cache->lists[cls];
  EXPECT_GE(l.count, 2u);
  return l;
}

TEST(HeapCheckDeathTest, FreeListCountAboveItsLength) {
  EXPECT_DEATH(
      {
        CachedList(ClassOfSize(64)).count++;
        assay_check_heap(0);
      },
      Failed("n == l.count", "alloc/check.cc"));
}

TEST(HeapCheckDeathTest, FreeListBlockOfAnotherClass) {
  EXPECT_DEATH(
      {
        FreeList& l = CachedList(ClassOfSize(64));
        void* other = malloc(1000);  // another class
        *static_cast<void**>(other) = l.head;
        l.head = other;
        l.count++;
        assay_check_heap(0);
      },
      Failed("e.cls == \\(pool == kSampled \\? 0 : cls\\)", "alloc/central(_check)?\\.cc"));
}

TEST(HeapCheckDeathTest, SpanUsedCountOffByOne) {
  EXPECT_DEATH(
      {
        const uintptr_t a = reinterpret_cast<uintptr_t>(malloc(200));
        Segment* seg = SegmentOf(a);
        seg->spans[seg->slice_map[SliceOf(a)].first].used++;
        assay_check_heap(0);
      },
      Failed("span->used \\+ nfree \\+ npurged \\+ \\(capacity - carved\\) == capacity",
             "alloc/central(_check)?\\.cc"));
}

// A purged unit (alloc/span_purge.h) under a block that is out of its span:
// the block's memory would read as zero.
TEST(HeapCheckDeathTest, PurgedUnitUnderALiveBlock) {
  EXPECT_DEATH(
      {
        const uintptr_t a = reinterpret_cast<uintptr_t>(malloc(200));
        Segment* seg = SegmentOf(a);
        Span& span = seg->spans[seg->slice_map[SliceOf(a)].first];
        span.aux |= uint64_t{1} << ((a - reinterpret_cast<uintptr_t>(SpanStart(&span))) / 4096);
        assay_check_heap(0);
      },
      "assay: assertion failed: .*(purge|OnPurged).* at alloc/central(_check)?\\.cc:[0-9]+");
}

TEST(HeapCheckDeathTest, DirtyBitOnASliceInUse) {
  EXPECT_DEATH(
      {
        const uintptr_t a = reinterpret_cast<uintptr_t>(malloc(600 * 1024));  // a large span
        SegmentOf(a)->dirty_mask |= uint64_t{1} << SliceOf(a);
        assay_check_heap(0);
      },
      Failed("\\(dirty_mask & ~free_mask\\) == 0", "alloc/page_heap_check.cc"));
}

TEST(HeapCheckDeathTest, HugeEntryLargerThanItsMapping) {
  EXPECT_DEATH(
      {
        const size_t n = 6 << 20;
        char* p = static_cast<char*>(malloc(n));
        munmap(p + n - 4096, 4096);  // the table still says n bytes are mapped
        assay_check_heap(0);
      },
      Failed("os::IsMapped\\(.*\\)", "alloc/huge.cc"));
}

TEST(HeapCheckDeathTest, BatchGivenToAnotherClass) {
  // A block handed to the central list of another class: caught where the
  // batch arrives (Give), not by a later walk.
  EXPECT_DEATH(
      {
        void* p = malloc(64);
        *static_cast<void**>(p) = nullptr;
        central::Give(ClassOfSize(4096), p, 1);
      },
      "assay: assertion failed: .* at alloc/central(_check)?\\.cc:[0-9]+");
}

}  // namespace
}  // namespace assay::internal
