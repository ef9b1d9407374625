// The stack table on its own: interning deduplicates (also after its hash
// shards grow), references count, and resetting the cumulative counts frees
// exactly the stacks no entry refers to. The per-thread stack cache in front
// of it hands references out of bundles and takes them back, on its own
// thread or another, and returns every one at thread exit.
#include "profiler/stack_table.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "profiler/profiler_state.h"
#include "profiler/stack_cache.h"

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
    EXPECT_EQ(stack_table::ReadCounts(first[i]).samples, 2u);
    EXPECT_DOUBLE_EQ(stack_table::ReadCounts(first[i]).bytes, 200.0);
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
    EXPECT_EQ(stack_table::ReadCounts(first[i]).samples, 0u);
    const auto f = FramesOf(i);
    ASSERT_EQ(stack_table::Intern(f.data(), f.size(), 1.0, 1.0), first[i]);
    stack_table::Unref(first[i]);
    stack_table::Unref(first[i]);
  }
  stack_table::ResetCumulative();
  EXPECT_EQ(stack_table::Count(), before);
  stack_table::AssertValid();
}

uint32_t Refs(const Stack* st) { return __atomic_load_n(&st->refs, __ATOMIC_RELAXED); }

TEST(StackCache, BundledReferencesAllComeBack) {
  const auto f = FramesOf(900001);
  constexpr int kSamples = 1000;  // many bundles taken, some given back
  std::vector<Stack*> refs;       // one reference per sample, as entries hold them
  uint8_t slot = 0;
  std::thread owner([&] {
    for (int i = 0; i < kSamples; ++i) {
      refs.push_back(stack_cache::Intern(f.data(), f.size(), 1.0, 8.0, nullptr, &slot));
      ASSERT_EQ(refs.back(), refs.front());
    }
    Stack* st = refs.front();
    EXPECT_GE(Refs(st), uint32_t{kSamples} + 1) << "the samples' and the slot's";
    // Half freed here: back to this thread's slot (a bundle given back
    // whenever it holds more than two).
    for (int i = 0; i < kSamples / 2; ++i) stack_cache::Release(refs[i], slot);
    EXPECT_GE(Refs(st), uint32_t{kSamples} / 2 + 1);
    EXPECT_LE(Refs(st), uint32_t{kSamples} / 2 + 1 + 2 * 64);
    // The other half by a thread that does not cache the stack.
    std::thread other([&] {
      for (int i = kSamples / 2; i < kSamples; ++i) stack_cache::Release(refs[i], slot);
    });
    other.join();
    stack_cache::FlushThread();  // as at this thread's exit
  });
  owner.join();
  Stack* st = refs.front();
  EXPECT_EQ(Refs(st), 0u) << "references leaked or dropped twice";
  EXPECT_EQ(stack_table::ReadCounts(st).samples, uint64_t{kSamples});
  // Unreferenced, it goes at the reset.
  const size_t count = stack_table::Count();
  stack_table::ResetCumulative();
  EXPECT_LE(stack_table::Count(), count - 1);
  stack_table::AssertValid();
}

// A thread of the parent held a stack's counts lock when another forked: the
// child (where that thread does not exist) must take the lock anyway, not
// spin forever (its exit dump reads every stack's counts).
TEST(StackTable, AForkChildTakesACountsLockItsParentHeld) {
  const auto f = FramesOf(900002);
  Stack* st = stack_table::Intern(f.data(), f.size(), 1.0, 8.0);
  ASSERT_NE(st, nullptr);
  // As a parent's thread holding it leaves it (this thread's generation).
  const uint32_t held = (__atomic_load_n(&g_fork_gen, __ATOMIC_RELAXED) << 1) | 1;
  uint32_t* busy = &st->counts[stack_table::ThreadStripe()].busy;
  __atomic_store_n(busy, held, __ATOMIC_RELEASE);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const stack_table::CumulativeCounts c = stack_table::ReadCounts(st);  // hangs if not taken
    stack_table::AddSampleHeld(st, 1.0, 8.0);
    _exit(c.samples == 1 && stack_table::ReadCounts(st).samples == 2 ? 0 : 1);
  }
  int status = 0;
  pid_t done = 0;
  for (int i = 0; i < 500 && done == 0; ++i) {  // 5 s
    done = waitpid(child, &status, WNOHANG);
    if (done == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (done == 0) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    ADD_FAILURE() << "the child hung on a counts lock its parent's thread held";
  } else {
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  }
  __atomic_store_n(busy, 0, __ATOMIC_RELEASE);  // the "holder" lets go
  stack_table::Unref(st);
}

// Two threads sampling one site at once add to different sets of its counts
// (each on its own cache line, under its own lock), and the stack's counts
// are their sum. Their reader shards, handed out in turn, pick the sets.
TEST(StackTable, ThreadsSamplingOneSiteCountInSetsOfTheirOwn) {
  const auto f = FramesOf(900003);
  Stack* st = stack_table::Intern(f.data(), f.size(), 1.0, 8.0);
  ASSERT_NE(st, nullptr);
  constexpr int kSamples = 20000;
  size_t stripe[2];
  std::atomic<int> ready{0};
  auto sample = [&](int k) {
    AssignShard();
    stripe[k] = stack_table::ThreadStripe();
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    for (int i = 0; i < kSamples; ++i) stack_table::AddSampleHeld(st, 2.0, 16.0);
    ReleaseShard();
  };
  std::thread a(sample, 0), b(sample, 1);
  a.join();
  b.join();
  ASSERT_NE(stripe[0], stripe[1]) << "both threads counted in one set";
  const size_t mine = stack_table::ThreadStripe();
  for (int k = 0; k < 2; ++k) {
    const StackCounts& c = st->counts[stripe[k]];
    EXPECT_EQ(c.samples, uint64_t{kSamples} + (stripe[k] == mine ? 1 : 0)) << "set " << stripe[k];
  }
  const stack_table::CumulativeCounts sum = stack_table::ReadCounts(st);
  EXPECT_EQ(sum.samples, 2 * uint64_t{kSamples} + 1);
  EXPECT_DOUBLE_EQ(sum.objects, 4.0 * kSamples + 1.0);
  EXPECT_DOUBLE_EQ(sum.bytes, 32.0 * kSamples + 8.0);
  stack_table::Unref(st);
}

}  // namespace
}  // namespace assay::profiler
