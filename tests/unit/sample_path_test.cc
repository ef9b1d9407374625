// The sampled allocation's shared state: the session reader it holds for
// its decision and record (one count however deeply the profiler's calls
// nest), the sample counters of its reader shard (owned alone by up to 64
// threads, shared by the rest), and the allocation clock, which a thread
// advances in steps of kClockStep bytes (at once in a session that
// promotes) and settles when it exits.
#include <stdlib.h>

#include <atomic>
#include <barrier>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "alloc/sample_hooks.h"
#include "assay/profiler.hpp"
#include "base/os.h"
#include "gtest/gtest.h"
#include "profiler/profiler.h"
#include "profiler/profiler_state.h"

namespace {

namespace prof = assay::profiler;

// Keeps the optimiser from eliding a malloc/free pair.
void* Opaque(void* p) {
  asm volatile("" : "+r"(p));
  return p;
}

class StopGuard {
 public:
  ~StopGuard() { assay::Stop(); }
};

assay::ProfilerOptions EveryByte() {
  assay::ProfilerOptions o;
  o.rate = 1;
  o.seed = 7;
  return o;
}

TEST(SamplePathTest, ReadersNestAndCountOnce) {
  ASSERT_TRUE(prof::NoSessionReaders());
  {
    prof::ReadingScope outer;
    EXPECT_FALSE(prof::NoSessionReaders());
    {
      prof::SessionReader inner;  // RecordAlloc's, inside the slow path's scope
      EXPECT_FALSE(prof::NoSessionReaders());
    }
    EXPECT_FALSE(prof::NoSessionReaders()) << "the inner reader ended the outer one";
  }
  EXPECT_TRUE(prof::NoSessionReaders()) << "a reader count was left behind";
}

// Once a session has started where membarrier(2) works, a thread that owns
// its shard counts itself with plain stores; a reader held on that thread
// is still seen by NoSessionReaders (its barrier on every thread stands in
// for the reader's fence), and gone once the reader ends.
TEST(SamplePathTest, APlainReaderOnAnotherThreadIsSeen) {
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryByte()));
  ASSERT_TRUE(assay::internal::os::FenceAllThreads()) << "membarrier(2) refused on this kernel";
  ASSERT_TRUE(__atomic_load_n(&prof::g_readers_fenced, __ATOMIC_RELAXED));
  std::atomic<int> stage{0};
  bool plain = false;
  std::thread t([&] {
    {
      prof::SessionReader reader;
      plain = prof::tls_plain_count != nullptr;
      stage = 1;
      while (stage.load() != 2) std::this_thread::yield();
    }
    stage = 3;
    while (stage.load() != 4) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  EXPECT_TRUE(plain) << "an owned shard's reader still took an atomic add";
  EXPECT_FALSE(prof::NoSessionReaders()) << "a plain reader on another thread went unseen";
  stage = 2;
  while (stage.load() != 3) std::this_thread::yield();
  EXPECT_TRUE(prof::NoSessionReaders()) << "a plain reader's count stayed after it ended";
  stage = 4;
  t.join();
}

// Sessions started and stopped while other threads sample: each start frees
// the retired sessions when it finds no reader, with the samplers counting
// themselves without fences. A session freed under a reader is a
// use-after-free: a crash here, a report in tsan_stress (which starts and
// stops sessions under ThreadSanitizer).
TEST(SamplePathTest, SessionsRestartWhileThreadsSample) {
  StopGuard guard;
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&done, t] {
      size_t n = 16 + static_cast<size_t>(t);
      while (!done.load(std::memory_order_relaxed)) {
        free(Opaque(malloc(n)));
        n = n % 2000 + 17;
      }
    });
  }
  for (int round = 0; round < 200; ++round) {
    ASSERT_TRUE(assay::Start(EveryByte()));
    for (int i = 0; i < 50; ++i) free(Opaque(malloc(64)));
    assay::Stop();
  }
  done = true;
  for (std::thread& t : threads) t.join();
  EXPECT_TRUE(prof::NoSessionReaders());
}

// An entry keeps its session by the low 32 bits of the id, 0 meaning none:
// a session whose id would have low bits 0 (the 2^32nd) gets the next id,
// and its callbacks reach it.
TEST(SamplePathTest, ASessionIdOfLowBitsZeroIsSkippedAndCallbacksArrive) {
  StopGuard guard;
  prof::g_next_session_id = (uint64_t{1} << 32) - 1;  // no session runs
  static thread_local bool mine = false;
  std::atomic<int> allocs{0}, frees{0};
  assay::Tracker tracker;
  tracker.on_alloc = [&allocs](const assay::SampledAllocation&) -> std::optional<assay::Token> {
    if (!mine) return std::nullopt;
    allocs++;
    return assay::Token{1};
  };
  tracker.on_free = [&frees](assay::Token) { frees++; };
  ASSERT_TRUE(assay::Start(EveryByte(), tracker));
  const prof::Session* s = prof::CurrentSession();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->id, (uint64_t{1} << 32) + 1);
  mine = true;
  for (int i = 0; i < 100; ++i) free(Opaque(malloc(48)));
  mine = false;
  assay::Poll();
  assay::Stop();
  EXPECT_EQ(allocs.load(), 100);
  EXPECT_EQ(frees.load(), 100);
}

TEST(SamplePathTest, SampledAllocationsLeaveNoReaderBehind) {
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryByte()));
  for (int i = 0; i < 1000; ++i) free(Opaque(malloc(static_cast<size_t>(16 + i % 4000))));
  EXPECT_TRUE(prof::NoSessionReaders());
}

// More threads alive at once than there are shards to own: the first ones
// own theirs (plain stores), the rest share (atomic adds), and the totals
// stay exact either way; shards come back at thread exit for the next.
TEST(SamplePathTest, SampleCountersStayExactOverOwnedAndSharedShards) {
  constexpr int kThreads = 80;
  constexpr int kPerThread = 200;
  static_assert(kThreads > static_cast<int>(prof::kOwnedShards));
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryByte()));
  // Round 0 warms up (the runtime's first 80 threads leave ~1.5 KiB of
  // their own live); round 2 owns the shards round 1 gave back.
  for (int round = 0; round < 3; ++round) {
    std::atomic<int> owned{0}, shared{0};
    const uint64_t samples_before = prof::TotalSamples();
    const int64_t live_before = prof::TotalLiveBytes();
    {
      // (The barrier and the vector are sampled blocks too: gone before the check.)
      std::barrier all_alive(kThreads);
      std::vector<std::thread> threads;
      threads.reserve(kThreads);
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
          void* blocks[kPerThread];
          for (void*& b : blocks) b = Opaque(malloc(100));
          (prof::tls_shard_owned ? owned : shared)++;
          all_alive.arrive_and_wait();  // all of them hold their shards now
          for (void* b : blocks) free(b);
        });
      }
      for (std::thread& t : threads) t.join();
    }
    EXPECT_GE(owned.load(), 1) << "round " << round;
    EXPECT_LE(owned.load(), static_cast<int>(prof::kOwnedShards)) << "round " << round;
    EXPECT_GE(shared.load(), kThreads - static_cast<int>(prof::kOwnedShards)) << "round " << round;
    EXPECT_GE(prof::TotalSamples() - samples_before, uint64_t{kThreads} * kPerThread);
    if (round > 0) {
      EXPECT_EQ(prof::TotalLiveBytes(), live_before) << "a sampled block's bytes were lost";
    }
  }
}

constexpr int kBlocks = 1000;
constexpr size_t kBlockBytes = 16;  // 16 000 bytes in all: under one step

// Allocates kBlocks blocks of kBlockBytes on a new thread; returns the clock
// as that thread saw it after its allocations, before it exited.
uint64_t ClockSeenByAThread() {
  uint64_t seen = 0;
  std::thread t([&seen] {
    void* blocks[kBlocks];
    for (void*& b : blocks) b = Opaque(malloc(kBlockBytes));
    seen = prof::GetClockState().clock;
    for (void* b : blocks) free(b);
  });
  t.join();
  return seen;
}

TEST(SamplePathTest, AThreadsSamplesReachTheClockInStepsAndAtItsExit) {
  static_assert(kBlocks * kBlockBytes < prof::kClockStep);
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryByte()));  // no tracker: nothing to promote
  const uint64_t before = prof::GetClockState().clock;
  const uint64_t seen = ClockSeenByAThread();
  const uint64_t after = prof::GetClockState().clock;
  // The thread owed its 16 000 bytes (at rate 1 a block of n bytes is n
  // sample points of one byte each) until it exited; this thread allocates
  // nothing meanwhile.
  EXPECT_EQ(seen, before);
  EXPECT_GE(after - before, kBlocks * kBlockBytes);
  EXPECT_LT(after - before, kBlocks * kBlockBytes + prof::kClockStep);
}

TEST(SamplePathTest, APromotingSessionMovesTheClockAtEverySample) {
  StopGuard guard;
  assay::Tracker tracker;
  tracker.on_alloc = [](const assay::SampledAllocation&) { return std::optional<assay::Token>(); };
  tracker.on_promote = [](assay::Token t) { return std::optional<assay::Token>(t); };
  ASSERT_TRUE(assay::Start(EveryByte(), tracker));
  const uint64_t before = prof::GetClockState().clock;
  const uint64_t seen = ClockSeenByAThread();
  EXPECT_GE(seen - before, kBlocks * kBlockBytes) << "the clock lagged the thread's samples";
}

}  // namespace
