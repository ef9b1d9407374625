// Call stacks of sampled allocations (ProfilerOptions::max_depth and stack_method): stack[0] is
// the program's allocation site for malloc, calloc, realloc, aligned_alloc, new, new[], aligned
// new, posix_memalign and assay_comalloc, with both stack methods, on the main thread and on
// another; max_depth bounds the stack exactly. (The cost of a sampled allocation is measured by
// tests/bench/profiler_bench.cc.)
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "assay/assay.h"
#include "assay/profiler.hpp"
#include "gtest/gtest.h"

// A distinct function the stack must name: never inlined or cloned, and not
// a tail call (it stores the result after the call).
#define ASSAY_TEST_SITE __attribute__((noinline, noclone))

namespace {

using assay::ProfilerOptions;
using assay::SampledAllocation;
using assay::StackMethod;
using assay::Token;
using assay::Tracker;

// Every allocation site below is shorter than this.
constexpr uintptr_t kMaxSiteBytes = 256;

volatile uintptr_t g_sink;

void Sink(const void* p) { g_sink = reinterpret_cast<uintptr_t>(p); }
void Sink(int v) { g_sink = static_cast<uintptr_t>(v); }

// > 0 while this thread makes the allocations a test follows.
thread_local int t_mine = 0;

class StopGuard {
 public:
  StopGuard() = default;
  StopGuard(const StopGuard&) = delete;
  StopGuard& operator=(const StopGuard&) = delete;
  ~StopGuard() { assay::Stop(); }
};

// ---- Allocation sites ----

struct Object {
  char bytes[200];
};
struct alignas(64) AlignedObject {
  char bytes[100];
};

ASSAY_TEST_SITE void* SiteMalloc() {
  void* p = malloc(100);
  Sink(p);
  return p;
}
ASSAY_TEST_SITE void* SiteCalloc() {
  void* p = calloc(10, 30);
  Sink(p);
  return p;
}
ASSAY_TEST_SITE void* SiteRealloc(void* old) {
  void* p = realloc(old, 5000);
  Sink(p);
  return p;
}
ASSAY_TEST_SITE void* SiteAlignedAlloc() {
  void* p = aligned_alloc(128, 256);
  Sink(p);
  return p;
}
ASSAY_TEST_SITE Object* SiteNew() {
  Object* p = new Object;
  Sink(p);
  return p;
}
ASSAY_TEST_SITE char* SiteNewArray() {
  char* p = new char[300];
  Sink(p);
  return p;
}
ASSAY_TEST_SITE AlignedObject* SiteAlignedNew() {
  AlignedObject* p = new AlignedObject;
  Sink(p);
  return p;
}
ASSAY_TEST_SITE void* SitePosixMemalign() {
  void* p = nullptr;
  const int rc = posix_memalign(&p, 64, 700);
  Sink(rc);
  return p;
}
ASSAY_TEST_SITE int SiteComalloc(void** out) {
  static const size_t kSizes[3] = {24, 4000, 300 * 1024};
  const int rc = assay_comalloc(3, kSizes, out);
  Sink(rc);
  return rc;
}

// Calls site() under `depth` frames of its own.
ASSAY_TEST_SITE void* Recurse(int depth, void* (*site)()) {
  void* p = depth == 0 ? site() : Recurse(depth - 1, site);
  Sink(p);
  return p;
}

uintptr_t Address(const void* fn) { return reinterpret_cast<uintptr_t>(fn); }

// True if pc is a return address inside the function starting at fn.
testing::AssertionResult InFunction(uintptr_t pc, const void* fn, const char* name) {
  const uintptr_t start = Address(fn);
  if (pc > start && pc < start + kMaxSiteBytes) return testing::AssertionSuccess();
  return testing::AssertionFailure()
         << "frame 0x" << std::hex << pc << " is not in " << name << " [0x" << start << ", 0x"
         << start + kMaxSiteBytes << ")" << std::dec << " (offset "
         << static_cast<int64_t>(pc - start) << ")";
}

struct Captured {
  void* address;
  std::vector<uintptr_t> stack;
};

// Follows the test's own blocks and keeps their stacks.
class StackRecorder {
 public:
  Tracker MakeTracker() {
    Tracker t;
    t.on_alloc = [this](const SampledAllocation& a) -> std::optional<Token> {
      if (t_mine == 0) return std::nullopt;
      std::lock_guard<std::mutex> lock(mu_);
      captured_.push_back(Captured{a.address, {a.stack.begin(), a.stack.end()}});
      return Token{captured_.size()};
    };
    return t;
  }
  std::vector<Captured> TakeAll() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Captured> all;
    all.swap(captured_);
    return all;
  }

 private:
  std::mutex mu_;
  std::vector<Captured> captured_;
};

template <typename F>
auto Mine(F&& f) {
  ++t_mine;
  auto r = f();
  --t_mine;
  return r;
}

const char* MethodName(StackMethod m) {
  return m == StackMethod::kFramePointer ? "FramePointer" : "Unwind";
}

class ProfilerStacksTest : public testing::TestWithParam<StackMethod> {
 protected:
  ProfilerOptions Options(int max_depth) const {
    ProfilerOptions o;
    o.rate = 1;
    o.seed = 5;
    o.max_depth = max_depth;
    o.stack_method = GetParam();
    return o;
  }
};

// Allocates once through every entry point and checks stack[0] of each block.
void CheckEveryEntryPoint(StackRecorder& rec) {
  struct Site {
    const char* name;
    const void* fn;
    size_t blocks;
  };
  const Site sites[] = {
      {"SiteMalloc", reinterpret_cast<const void*>(&SiteMalloc), 1},
      {"SiteCalloc", reinterpret_cast<const void*>(&SiteCalloc), 1},
      {"SiteRealloc", reinterpret_cast<const void*>(&SiteRealloc), 1},
      {"SiteAlignedAlloc", reinterpret_cast<const void*>(&SiteAlignedAlloc), 1},
      {"SiteNew", reinterpret_cast<const void*>(&SiteNew), 1},
      {"SiteNewArray", reinterpret_cast<const void*>(&SiteNewArray), 1},
      {"SiteAlignedNew", reinterpret_cast<const void*>(&SiteAlignedNew), 1},
      {"SitePosixMemalign", reinterpret_cast<const void*>(&SitePosixMemalign), 1},
      {"SiteComalloc", reinterpret_cast<const void*>(&SiteComalloc), 3},
  };
  // The block realloc moves is allocated outside the test's own blocks.
  void* to_move = malloc(16);
  rec.TakeAll();

  std::vector<void*> to_free;
  to_free.push_back(Mine([] { return SiteMalloc(); }));
  to_free.push_back(Mine([] { return SiteCalloc(); }));
  to_free.push_back(Mine([&] { return SiteRealloc(to_move); }));
  to_free.push_back(Mine([] { return SiteAlignedAlloc(); }));
  Object* object = Mine([] { return SiteNew(); });
  char* array = Mine([] { return SiteNewArray(); });
  AlignedObject* aligned = Mine([] { return SiteAlignedNew(); });
  to_free.push_back(Mine([] { return SitePosixMemalign(); }));
  void* batch[3] = {};
  ASSERT_EQ(Mine([&] { return SiteComalloc(batch); }), 0);
  const std::vector<Captured> all = rec.TakeAll();

  size_t k = 0;
  for (const Site& site : sites) {
    for (size_t b = 0; b < site.blocks; ++b, ++k) {
      SCOPED_TRACE(testing::Message() << site.name << " block " << b);
      ASSERT_LT(k, all.size()) << "missing on_alloc";
      ASSERT_FALSE(all[k].stack.empty());
      EXPECT_TRUE(InFunction(all[k].stack[0], site.fn, site.name));
    }
  }
  EXPECT_EQ(all.size(), k) << "one on_alloc per block";

  for (void* p : to_free) free(p);
  delete object;
  delete[] array;
  delete aligned;
  assay_bulk_free(batch, 3);
}

TEST_P(ProfilerStacksTest, InnermostFrameIsTheAllocationSiteForEveryEntryPoint) {
  StackRecorder rec;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(Options(64), rec.MakeTracker()));
  CheckEveryEntryPoint(rec);
}

TEST_P(ProfilerStacksTest, InnermostFrameIsTheAllocationSiteOnAnotherThread) {
  StackRecorder rec;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(Options(64), rec.MakeTracker()));
  std::thread([&] { CheckEveryEntryPoint(rec); }).join();
}

TEST_P(ProfilerStacksTest, SecondFrameIsTheCallerOfTheSite) {
  StackRecorder rec;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(Options(64), rec.MakeTracker()));
  void* p = Mine([] { return Recurse(0, SiteMalloc); });
  free(p);
  const std::vector<Captured> all = rec.TakeAll();
  ASSERT_EQ(all.size(), 1u);
  ASSERT_GE(all[0].stack.size(), 3u) << "the stack goes on past the site and its caller";
  EXPECT_TRUE(
      InFunction(all[0].stack[0], reinterpret_cast<const void*>(&SiteMalloc), "SiteMalloc"));
  EXPECT_TRUE(InFunction(all[0].stack[1], reinterpret_cast<const void*>(&Recurse), "Recurse"));
}

// Allocates at SiteMalloc under `frames` frames of Recurse and returns the stack.
std::vector<uintptr_t> StackUnder(StackRecorder& rec, int frames) {
  void* p = Mine([&] { return Recurse(frames - 1, SiteMalloc); });
  free(p);
  std::vector<Captured> all = rec.TakeAll();
  if (all.size() != 1) {
    ADD_FAILURE() << all.size() << " on_alloc for one allocation";
    return {};
  }
  return all[0].stack;
}

void ExpectSiteThenRecurse(const std::vector<uintptr_t>& stack) {
  ASSERT_FALSE(stack.empty());
  EXPECT_TRUE(InFunction(stack[0], reinterpret_cast<const void*>(&SiteMalloc), "SiteMalloc"));
  for (size_t i = 1; i < stack.size(); ++i) {
    EXPECT_TRUE(InFunction(stack[i], reinterpret_cast<const void*>(&Recurse), "Recurse"))
        << "frame " << i;
  }
}

TEST_P(ProfilerStacksTest, MaxDepthThreeKeepsThreeFrames) {
  StackRecorder rec;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(Options(3), rec.MakeTracker()));
  const std::vector<uintptr_t> stack = StackUnder(rec, 10);
  EXPECT_EQ(stack.size(), 3u);
  ExpectSiteThenRecurse(stack);
}

TEST_P(ProfilerStacksTest, MaxDepthOneKeepsTheSiteOnly) {
  StackRecorder rec;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(Options(1), rec.MakeTracker()));
  const std::vector<uintptr_t> stack = StackUnder(rec, 10);
  EXPECT_EQ(stack.size(), 1u);
  ExpectSiteThenRecurse(stack);
}

TEST_P(ProfilerStacksTest, DeepRecursionIsCutAtMaxDepth64) {
  StackRecorder rec;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(Options(64), rec.MakeTracker()));
  const std::vector<uintptr_t> stack = StackUnder(rec, 100);
  EXPECT_EQ(stack.size(), 64u);
  ExpectSiteThenRecurse(stack);
}

TEST_P(ProfilerStacksTest, MaxDepthIsCappedAt256) {
  StackRecorder rec;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(Options(1000), rec.MakeTracker()));
  const std::vector<uintptr_t> stack = StackUnder(rec, 300);
  EXPECT_EQ(stack.size(), 256u);
  ExpectSiteThenRecurse(stack);
}

// A thread's first stacks are walked with unw_step and later ones with
// unw_backtrace and its per-thread cache (profiler/stack_capture.cc): on a new
// thread, 24 allocations from one site must all carry the same stack.
TEST_P(ProfilerStacksTest, EveryStackOfANewThreadIsTheSame) {
  StackRecorder rec;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(Options(64), rec.MakeTracker()));
  std::thread([&] {
    for (int i = 0; i < 24; ++i) free(Mine([] { return Recurse(5, SiteMalloc); }));
  }).join();
  const std::vector<Captured> all = rec.TakeAll();
  ASSERT_EQ(all.size(), 24u);
  ASSERT_GE(all[0].stack.size(), 7u) << "the site, six Recurse frames and the thread's own";
  ExpectSiteThenRecurse({all[0].stack.begin(), all[0].stack.begin() + 7});
  for (size_t i = 1; i < all.size(); ++i) EXPECT_EQ(all[i].stack, all[0].stack) << "stack " << i;
}

INSTANTIATE_TEST_SUITE_P(Methods, ProfilerStacksTest,
                         testing::Values(StackMethod::kUnwind, StackMethod::kFramePointer),
                         [](const testing::TestParamInfo<StackMethod>& info) {
                           return std::string(MethodName(info.param));
                         });

}  // namespace
