// The profiler's tracker callbacks (assay/profiler.hpp): one on_alloc per recorded allocation
// with its fields right, no re-entry from allocations made inside callbacks, exactly one on_free
// per token (frees on other threads included), comalloc batches, Stop and Stop+Start from
// inside a callback (and Stop from another thread meanwhile), throwing callbacks, callbacks of
// two threads blocking on each other, delivery at thread exit and Poll, promotion, a concurrent
// soak, and the session API.
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "assay/assay.h"
#include "assay/profiler.hpp"
#include "gtest/gtest.h"

namespace {

using assay::ProfilerOptions;
using assay::SampledAllocation;
using assay::Token;
using assay::Tracker;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

// > 0 while this thread makes the allocations a test follows. Callbacks run on
// the allocating thread, so on_alloc sees it and ignores every other block
// (gtest's own, the standard library's).
thread_local int t_mine = 0;

// Calls f() with t_mine raised and returns its result.
template <typename F>
auto Mine(F&& f) {
  ++t_mine;
  auto r = f();
  --t_mine;
  return r;
}

// Keeps the optimiser from reasoning about a pointer (so no malloc/free or
// new/delete pair can be elided).
template <typename T>
T Opaque(T v) {
  asm volatile("" : "+r"(v));
  return v;
}

uint64_t Tid() { return static_cast<uint64_t>(gettid()); }

// Stops the session when the test ends, however it ends.
class StopGuard {
 public:
  StopGuard() = default;
  StopGuard(const StopGuard&) = delete;
  StopGuard& operator=(const StopGuard&) = delete;
  ~StopGuard() { assay::Stop(); }
};

ProfilerOptions EveryAllocation() {
  ProfilerOptions o;
  o.rate = 1;
  o.seed = 42;
  return o;
}

struct Record {
  void* address;
  size_t requested;
  size_t usable;
  size_t alignment;
  uint64_t n_samples;
  uint32_t batch_index;
  uint32_t batch_size;
  uint64_t thread_id;
  size_t depth;
};

Record ToRecord(const SampledAllocation& a) {
  return Record{a.address,     a.requested_bytes, a.usable_bytes, a.alignment,   a.n_samples,
                a.batch_index, a.batch_size,      a.thread_id,    a.stack.size()};
}

// A tracker that follows the test's own blocks: the token of the k-th
// recorded block is k + 1.
class Recorder {
 public:
  Tracker MakeTracker() {
    Tracker t;
    t.on_alloc = [this](const SampledAllocation& a) -> std::optional<Token> {
      if (t_mine == 0) return std::nullopt;
      std::lock_guard<std::mutex> lock(mu_);
      allocs_.push_back(ToRecord(a));
      return Token{allocs_.size()};
    };
    t.on_free = [this](Token token) {
      std::lock_guard<std::mutex> lock(mu_);
      frees_.push_back(token);
    };
    return t;
  }

  std::vector<Record> allocs() {
    std::lock_guard<std::mutex> lock(mu_);
    return allocs_;
  }
  size_t alloc_count() {
    std::lock_guard<std::mutex> lock(mu_);
    return allocs_.size();
  }
  std::vector<Token> frees() {
    std::lock_guard<std::mutex> lock(mu_);
    return frees_;
  }
  // The token given to the block at p, or 0 if none was.
  Token TokenOf(const void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = allocs_.size(); i-- > 0;) {
      if (allocs_[i].address == p) return Token{i + 1};
    }
    return 0;
  }

 private:
  std::mutex mu_;
  std::vector<Record> allocs_;
  std::vector<Token> frees_;
};

// Two parties meet; each waits for the other at most `timeout`. Once a wait
// has timed out the rendezvous is broken and every later wait fails at once,
// so a deadlock fails the test instead of hanging it.
class Rendezvous {
 public:
  bool ArriveAndWait(milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (broken_) return false;
    const uint64_t generation = generation_;
    if (++arrived_ == 2) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return true;
    }
    if (cv_.wait_for(lock, timeout, [&] { return generation_ != generation || broken_; }) &&
        !broken_) {
      return true;
    }
    broken_ = true;
    cv_.notify_all();
    return false;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  bool broken_ = false;
};

// Aborts the process if the test is still running after `limit`: a deadlock
// in a callback must fail, not hang until ctest's timeout.
class Watchdog {
 public:
  Watchdog(const char* what, std::chrono::seconds limit)
      : thread_([this, what, limit] {
          std::unique_lock<std::mutex> lock(mu_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            fprintf(stderr, "watchdog: %s still running after %llds: deadlock\n", what,
                    static_cast<long long>(limit.count()));
            abort();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// ---- 1. One on_alloc per allocation, with its fields ----

TEST(ProfilerCallbacksTest, RateOneGivesOneOnAllocPerAllocationWithItsFields) {
  Recorder rec;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), rec.MakeTracker()));
  const uint64_t tid = Tid();
  std::vector<void*> to_free;
  std::vector<void*> to_delete;
  to_free.reserve(64);
  to_delete.reserve(64);

  // Checks the latest allocation produced exactly one new on_alloc, for p.
  size_t seen = rec.alloc_count();
  const auto expect_one = [&](const char* what, void* p, size_t requested, size_t alignment) {
    SCOPED_TRACE(what);
    const std::vector<Record> all = rec.allocs();
    ASSERT_EQ(all.size(), seen + 1) << "requested " << requested;
    seen = all.size();
    const Record& r = all.back();
    EXPECT_EQ(r.address, p);
    EXPECT_EQ(r.requested, requested);
    EXPECT_GE(r.usable, requested);
    EXPECT_EQ(r.usable, malloc_usable_size(p));
    EXPECT_EQ(r.n_samples, requested);
    EXPECT_EQ(r.alignment, alignment);
    EXPECT_EQ(r.batch_index, 0u);
    EXPECT_EQ(r.batch_size, 1u);
    EXPECT_EQ(r.thread_id, tid);
    EXPECT_GE(r.depth, 1u);
    if (alignment != 0) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignment, 0u);
    }
  };

  for (size_t n : {size_t{1}, size_t{24}, size_t{1000}, 40 * kKiB, 300 * kKiB, 3 * kMiB}) {
    void* p = Mine([&] { return Opaque(malloc(n)); });
    ASSERT_NE(p, nullptr);
    expect_one("malloc", p, n, 0);
    to_free.push_back(p);
  }
  for (size_t n : {size_t{8}, size_t{5000}, 3 * kMiB}) {
    void* p = Mine([&] { return Opaque(calloc(1, n)); });
    ASSERT_NE(p, nullptr);
    expect_one("calloc", p, n, 0);
    to_free.push_back(p);
  }
  {
    // A sampled block moves when realloc grows it past its size class.
    void* p = Mine([] { return Opaque(malloc(16)); });
    expect_one("malloc before realloc", p, 16, 0);
    const Token old_token = rec.TokenOf(p);
    void* q = Mine([&] { return Opaque(realloc(p, 4000)); });
    ASSERT_NE(q, nullptr);
    ASSERT_NE(q, p);
    expect_one("realloc (moves)", q, 4000, 0);
    const std::vector<Token> frees = rec.frees();
    EXPECT_EQ(std::count(frees.begin(), frees.end(), old_token), 1)
        << "realloc that moves frees the old block";
    to_free.push_back(q);
  }
  {
    // Within its size class a sampled small block stays put, as any small
    // block does, and keeps its one entry: no on_free and no new on_alloc.
    void* p = Mine([] { return Opaque(malloc(100)); });
    expect_one("malloc before realloc in place", p, 100, 0);
    const size_t usable = malloc_usable_size(p);
    const size_t frees = rec.frees().size();
    for (size_t n : {usable, size_t{100}, usable / 2 + 1}) {
      void* q = Mine([&] { return Opaque(realloc(p, n)); });
      EXPECT_EQ(q, p) << "realloc to " << n << " of a sampled " << usable << "-byte block";
    }
    EXPECT_EQ(rec.alloc_count(), seen);
    EXPECT_EQ(rec.frees().size(), frees);
    to_free.push_back(p);
  }
  for (size_t n : {size_t{1}, size_t{200}, 100 * kKiB}) {
    void* p = Mine([&] { return Opaque(::operator new(n)); });
    expect_one("operator new", p, n, 0);
    to_delete.push_back(p);
  }
  {
    char* p = Mine([] { return Opaque(new char[333]); });
    expect_one("new[]", p, 333, 0);
    delete[] p;
  }
  for (size_t align : {size_t{32}, size_t{64}, size_t{4096}}) {
    void* p = Mine([&] { return Opaque(::operator new (100, std::align_val_t{align})); });
    expect_one("aligned new", p, 100, align);
    ::operator delete (p, std::align_val_t{align});
  }
  for (size_t align : {size_t{64}, size_t{256}, size_t{8192}}) {
    void* p = nullptr;
    const int rc = Mine([&] { return posix_memalign(&p, align, 777); });
    ASSERT_EQ(rc, 0);
    expect_one("posix_memalign", Opaque(p), 777, align);
    to_free.push_back(p);
  }
  // Zero bytes hold no sample point: nothing recorded.
  void* zero = Mine([] { return Opaque(malloc(0)); });
  EXPECT_EQ(rec.alloc_count(), seen) << "a 0-byte allocation holds no sample point";
  free(zero);

  for (void* p : to_free) free(p);
  for (void* p : to_delete) ::operator delete(p);
  // Every recorded block was freed: one on_free each.
  std::vector<Token> frees = rec.frees();
  std::sort(frees.begin(), frees.end());
  std::vector<Token> want;
  for (Token t = 1; t <= rec.alloc_count(); ++t) want.push_back(t);
  EXPECT_EQ(frees, want);
}

// Requests no mapping can hold fail at once with the profiler on: they are
// not counted as allocation (counting 2^62 bytes at 4 KiB drew one gap per
// 4 KiB, 2^50 of them, and hung the comalloc stress test), and record nothing.
TEST(ProfilerCallbacksTest, ImpossibleRequestsFailAtOnceAndRecordNothing) {
  Recorder rec;
  StopGuard guard;
  ProfilerOptions o;
  o.rate = 4096;
  o.seed = 9;
  ASSERT_TRUE(assay::Start(o, rec.MakeTracker()));
  for (int i = 0; i < 100; ++i) {
    errno = 0;
    EXPECT_EQ(Mine([] { return Opaque(malloc(Opaque(size_t{1} << 62))); }), nullptr);
    EXPECT_EQ(errno, ENOMEM);
    const size_t sizes[2] = {64, size_t{1} << 61};
    void* out[2] = {nullptr, nullptr};
    EXPECT_NE(Mine([&] { return assay_comalloc(2, sizes, out); }), 0);
    EXPECT_EQ(out[0], nullptr);
  }
  EXPECT_EQ(rec.alloc_count(), 0u);
}

// A string grown by appends while every allocation is sampled: each move
// past 64 KiB goes to a slice run, recorded once (one on_alloc for the new
// block, one on_free for the old); appends that fit the run's slices leave
// the sampled block and its entry alone.
TEST(ProfilerCallbacksTest, SampledBlockGrownByAppendsMovesToSliceRunsThatRegrowInPlace) {
  Recorder rec;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), rec.MakeTracker()));
  size_t size = 100;
  char* p = Mine([&] { return Opaque(static_cast<char*>(malloc(size))); });
  ASSERT_NE(p, nullptr);
  size_t moves = 0;
  size_t slice_runs = 0;
  size_t regrown = 0;  // slice runs grown in place over the free slices after them
  while (size < 600 * kKiB) {
    const size_t usable = malloc_usable_size(p);
    char* q = Mine([&] { return Opaque(static_cast<char*>(realloc(p, size + 50))); });
    ASSERT_NE(q, nullptr);
    size += 50;
    if (size <= usable) {
      ASSERT_EQ(q, p) << "an append that fits moved the sampled block, at " << size;
    } else if (q != p) {
      ++moves;
      if (size > 64 * kKiB) {
        ASSERT_EQ(malloc_usable_size(q) % (64 * kKiB), 0u) << "no slice run at " << size;
        ++slice_runs;
      }
    } else {
      ASSERT_GT(size, 64 * kKiB) << "a small block grew past its class in place";
      ++regrown;
    }
    p = q;
  }
  EXPECT_GT(slice_runs, 0u);
  // A sampled slice run grows in place (no copy) and is, to the tracker,
  // freed and allocated again at its new size.
  EXPECT_GT(regrown, 0u) << "a sampled slice run never grew in place";
  EXPECT_EQ(rec.alloc_count(), moves + regrown + 1)
      << "one on_alloc per block the string lived in and per in-place resize";
  EXPECT_EQ(rec.frees().size(), moves + regrown) << "one on_free per block it left or resized";
  free(p);
}

// ---- 2. No re-entry ----

thread_local int t_depth = 0;

TEST(ProfilerCallbacksTest, AllocationsInsideCallbacksNeverReenterAndAreNotReported) {
  std::mutex mu;
  int max_depth = 0;
  std::vector<void*> reported;  // addresses on_alloc saw, in order
  std::vector<void*> victims;   // followed blocks that on_alloc frees
  size_t inner_allocations = 0;
  size_t frees = 0;
  const auto enter = [&] {
    ++t_depth;
    std::lock_guard<std::mutex> lock(mu);
    max_depth = std::max(max_depth, t_depth);
  };
  // Allocates and frees in every way a callback might (still inside t_mine).
  const auto churn = [&] {
    void* a = Opaque(malloc(64));
    void* b = Opaque(calloc(3, 100));
    void* c = Opaque(realloc(Opaque(malloc(10)), 5000));
    std::string s(300, 'x');
    std::vector<int> v(1000, 7);
    char* d = Opaque(new char[50]);
    void* e = Opaque(::operator new (128, std::align_val_t{64}));
    void* big = Opaque(malloc(3 * kMiB));
    free(a);
    free(b);
    free(c);
    delete[] d;
    ::operator delete (e, std::align_val_t{64});
    free(big);
    std::lock_guard<std::mutex> lock(mu);
    inner_allocations += 8;
  };

  Tracker t;
  t.on_alloc = [&](const SampledAllocation& a) -> std::optional<Token> {
    if (t_mine == 0) return std::nullopt;
    enter();
    void* victim = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu);
      reported.push_back(a.address);
      if (!victims.empty()) {
        victim = victims.back();
        victims.pop_back();
      }
    }
    churn();
    free(victim);  // a followed block: its on_free must wait until this callback returns
    --t_depth;
    return Token{1};
  };
  t.on_free = [&](Token) {
    enter();
    ++t_mine;  // so that on_alloc would see the inner allocations if they were reported
    churn();
    --t_mine;
    {
      std::lock_guard<std::mutex> lock(mu);
      ++frees;
    }
    --t_depth;
  };
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), std::move(t)));

  // Ten blocks first, each freed later by the on_alloc of one of the next twenty.
  std::vector<void*> blocks;
  blocks.reserve(30);
  for (int i = 0; i < 10; ++i) blocks.push_back(Mine([] { return Opaque(malloc(24)); }));
  {
    std::lock_guard<std::mutex> lock(mu);
    victims.assign(blocks.begin(), blocks.end());
  }
  for (int i = 0; i < 20; ++i) {
    blocks.push_back(Mine([&] { return Opaque(malloc(32 + 16 * i)); }));
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_TRUE(victims.empty());
    EXPECT_EQ(frees, 10u);
  }
  for (size_t i = 10; i < blocks.size(); ++i) free(blocks[i]);

  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(max_depth, 1) << "a callback ran nested inside another";
  EXPECT_EQ(reported, blocks) << "on_alloc saw exactly the test's own allocations";
  EXPECT_EQ(frees, blocks.size());
  EXPECT_GT(inner_allocations, 0u);
}

// ---- 3. One on_free per token ----

TEST(ProfilerCallbacksTest, EveryTokenGetsExactlyOneOnFreeAcrossThreads) {
  std::mutex mu;
  uint64_t next = 0;
  std::multiset<Token> issued;
  std::multiset<Token> freed;
  std::vector<void*> untracked;  // blocks whose on_alloc returned nullopt
  Tracker t;
  t.on_alloc = [&](const SampledAllocation& a) -> std::optional<Token> {
    if (t_mine == 0) return std::nullopt;
    std::lock_guard<std::mutex> lock(mu);
    const uint64_t i = next++;
    if (i % 3 == 2) {
      untracked.push_back(a.address);
      return std::nullopt;
    }
    const Token token = 1000 + i;
    issued.insert(token);
    return token;
  };
  t.on_free = [&](Token token) {
    std::lock_guard<std::mutex> lock(mu);
    freed.insert(token);
  };
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), std::move(t)));

  constexpr int kBlocks = 90;
  const auto allocate = [](std::vector<void*>* out) {
    out->reserve(kBlocks);
    for (int i = 0; i < kBlocks; ++i) {
      const size_t n = i % 10 == 9 ? 300 * kKiB : 16 + 40 * static_cast<size_t>(i);
      out->push_back(Mine([&] { return Opaque(malloc(n)); }));
    }
  };
  std::vector<void*> a;  // allocated here
  std::vector<void*> b;  // allocated on another thread
  allocate(&a);
  std::thread([&] { allocate(&b); }).join();
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(issued.size() + untracked.size(), 2u * kBlocks);
    EXPECT_TRUE(freed.empty());
  }
  // Half of each set is freed here, half on a third thread, at the same time.
  std::thread other([&] {
    for (int i = 0; i < kBlocks; i += 2) {
      free(a[i]);
      free(b[i + 1]);
    }
  });
  for (int i = 0; i < kBlocks; i += 2) {
    free(a[i + 1]);
    free(b[i]);
  }
  other.join();
  assay::Poll();

  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(freed, issued);
  for (Token token : freed) {
    EXPECT_EQ(freed.count(token), 1u) << "token " << token;
  }
}

// ---- 4. comalloc batches ----

TEST(ProfilerCallbacksTest, ComallocBatchGivesEachBlockAnEntryAfterTheWholeBatchExists) {
  constexpr size_t kN = 6;
  const size_t sizes[kN] = {8, 100, 5000, 24, 300 * kKiB, 3 * kMiB};
  struct Seen {
    Record record;
    bool inside_call;
    uint64_t samples_since_call;  // samples recorded since the call began
  };
  std::vector<Seen> seen;
  seen.reserve(16);
  std::atomic<bool> inside_call{false};
  std::atomic<uint64_t> samples_before{0};
  Tracker t;
  t.on_alloc = [&](const SampledAllocation& a) -> std::optional<Token> {
    if (t_mine == 0) return std::nullopt;
    seen.push_back(Seen{ToRecord(a), inside_call.load(),
                        assay::GetProfilerStats().samples - samples_before.load()});
    return Token{seen.size()};
  };
  std::vector<Token> frees;
  frees.reserve(16);
  t.on_free = [&](Token token) { frees.push_back(token); };
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), std::move(t)));

  void* out[kN] = {};
  samples_before = assay::GetProfilerStats().samples;
  inside_call = true;
  const int rc = Mine([&] { return assay_comalloc(kN, sizes, out); });
  inside_call = false;
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(seen.size(), kN) << "one on_alloc per block of the batch";
  for (size_t i = 0; i < kN; ++i) {
    SCOPED_TRACE(i);
    const Record& r = seen[i].record;
    EXPECT_TRUE(seen[i].inside_call) << "callbacks arrive before assay_comalloc returns";
    EXPECT_GE(seen[i].samples_since_call, kN)
        << "on_alloc ran before every block of the batch was recorded";
    EXPECT_EQ(r.address, out[i]);
    EXPECT_EQ(r.batch_index, i);
    EXPECT_EQ(r.batch_size, kN);
    EXPECT_EQ(r.requested, sizes[i]);
    EXPECT_EQ(r.n_samples, sizes[i]);
    EXPECT_GE(r.usable, sizes[i]);
    EXPECT_EQ(r.alignment, 0u);
    EXPECT_EQ(r.thread_id, Tid());
  }
  assay_bulk_free(out, kN);
  std::sort(frees.begin(), frees.end());
  EXPECT_EQ(frees, (std::vector<Token>{1, 2, 3, 4, 5, 6}));
}

TEST(ProfilerCallbacksTest, ComallocZeroByteBlockKeepsTheOthersPositions) {
  Recorder rec;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), rec.MakeTracker()));
  const size_t sizes[4] = {16, 0, 32, 48};
  void* out[4] = {};
  ASSERT_EQ(Mine([&] { return assay_comalloc(4, sizes, out); }), 0);
  const std::vector<Record> all = rec.allocs();
  ASSERT_EQ(all.size(), 3u) << "a 0-byte block holds no sample point";
  const uint32_t positions[3] = {0, 2, 3};
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(all[k].batch_index, positions[k]);
    EXPECT_EQ(all[k].batch_size, 4u);
    EXPECT_EQ(all[k].address, out[positions[k]]);
    EXPECT_EQ(all[k].requested, sizes[positions[k]]);
  }
  assay_bulk_free(out, 4);
  EXPECT_EQ(rec.frees().size(), 3u);
}

// ---- 5. Stop inside a batch's on_alloc ----

TEST(ProfilerCallbacksTest, StopInsideKthOnAllocOfBatchEndsEveryCallbackOfTheSession) {
  constexpr size_t kN = 6;
  constexpr uint32_t kStopAt = 2;
  const size_t sizes[kN] = {16, 32, 48, 64, 80, 96};
  std::vector<uint32_t> alloc_indices;
  alloc_indices.reserve(16);
  size_t frees = 0;
  bool running_after_stop = true;
  Tracker t;
  t.on_alloc = [&](const SampledAllocation& a) -> std::optional<Token> {
    if (t_mine == 0) return std::nullopt;
    alloc_indices.push_back(a.batch_index);
    if (a.batch_index == kStopAt) {
      assay::Stop();
      running_after_stop = assay::IsRunning();
    }
    return Token{100 + a.batch_index};
  };
  t.on_free = [&](Token) { ++frees; };
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), std::move(t)));

  void* out[kN] = {};
  ASSERT_EQ(Mine([&] { return assay_comalloc(kN, sizes, out); }), 0);
  EXPECT_FALSE(running_after_stop);
  EXPECT_FALSE(assay::IsRunning());
  EXPECT_EQ(alloc_indices, (std::vector<uint32_t>{0, 1, 2}))
      << "on_alloc of the batch's later blocks ran after Stop";
  void* later = Mine([] { return Opaque(malloc(40)); });
  assay_bulk_free(out, kN);
  free(later);
  assay::Poll();
  EXPECT_EQ(alloc_indices.size(), 3u);
  EXPECT_EQ(frees, 0u) << "on_free ran for a block of a stopped session";
}

// A callback stops its own session and goes on running; Stop() called from
// another thread meanwhile must still wait for that callback ("After Stop
// returns, no callback of the session runs again (Stop waits for callbacks
// running on other threads)").
TEST(ProfilerCallbacksTest, StopFromAnotherThreadWaitsForACallbackThatStoppedTheSession) {
  std::atomic<bool> stopped_inside{false};
  std::atomic<bool> callback_returned{false};
  Tracker t;
  t.on_alloc = [&](const SampledAllocation&) -> std::optional<Token> {
    if (t_mine == 0) return std::nullopt;
    assay::Stop();
    stopped_inside = true;
    std::this_thread::sleep_for(milliseconds(300));  // still running, using the tracker's state
    callback_returned = true;
    return Token{1};
  };
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), std::move(t)));
  std::thread worker([] { free(Mine([] { return Opaque(malloc(10)); })); });
  const auto deadline = steady_clock::now() + std::chrono::seconds(10);
  while (!stopped_inside.load() && steady_clock::now() < deadline) std::this_thread::yield();
  ASSERT_TRUE(stopped_inside.load()) << "on_alloc never ran";
  assay::Stop();
  const bool returned_before = callback_returned.load();
  worker.join();
  EXPECT_TRUE(returned_before) << "Stop() returned while a callback of the session was running";
}

// ---- 6. Stop + Start inside a callback ----

TEST(ProfilerCallbacksTest, RestartInsideCallbackNewSessionGetsNothingOfTheOld) {
  Recorder old_rec;
  Recorder new_rec;
  Tracker old_tracker = old_rec.MakeTracker();
  bool restarted = false;
  Tracker t;
  t.on_alloc = [&](const SampledAllocation& a) -> std::optional<Token> {
    std::optional<Token> token = old_tracker.on_alloc(a);
    if (t_mine != 0 && a.batch_size == 5 && a.batch_index == 1) {
      assay::Stop();
      restarted = assay::Start(EveryAllocation(), new_rec.MakeTracker());
    }
    return token;
  };
  t.on_free = old_tracker.on_free;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), std::move(t)));

  // Blocks of the old session that stay live across the restart.
  std::vector<void*> old_blocks;
  old_blocks.reserve(8);
  for (size_t n : {size_t{24}, size_t{2000}, 400 * kKiB}) {
    old_blocks.push_back(Mine([&] { return Opaque(malloc(n)); }));
  }
  ASSERT_EQ(old_rec.alloc_count(), 3u);
  const size_t sizes[5] = {16, 32, 48, 64, 80};
  void* out[5] = {};
  ASSERT_EQ(Mine([&] { return assay_comalloc(5, sizes, out); }), 0);
  ASSERT_TRUE(restarted);
  EXPECT_TRUE(assay::IsRunning());
  EXPECT_EQ(old_rec.alloc_count(), 5u) << "old session: its 3 blocks and batch blocks 0 and 1";
  EXPECT_EQ(new_rec.alloc_count(), 0u) << "the new session got the old one's pending on_alloc";

  for (void* p : old_blocks) free(p);
  assay_bulk_free(out, 5);
  assay::Poll();
  EXPECT_TRUE(old_rec.frees().empty()) << "the stopped session got an on_free";
  EXPECT_TRUE(new_rec.frees().empty()) << "the new session got an on_free of an old block";
  EXPECT_EQ(new_rec.alloc_count(), 0u);

  // The new session works.
  void* p = Mine([] { return Opaque(malloc(72)); });
  const std::vector<Record> fresh = new_rec.allocs();
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].address, p);
  free(p);
  EXPECT_EQ(new_rec.frees(), std::vector<Token>{1});
  EXPECT_EQ(old_rec.alloc_count(), 5u);
}

// ---- 7. A throwing callback ----

TEST(ProfilerCallbacksTest, ThrowingOnAllocIsCaughtCountedAndItsEntryDropped) {
  constexpr uint64_t kThrowAt = 2;
  uint64_t next = 0;
  std::vector<Token> frees;
  frees.reserve(16);
  Tracker t;
  t.on_alloc = [&](const SampledAllocation&) -> std::optional<Token> {
    if (t_mine == 0) return std::nullopt;
    const uint64_t i = next++;
    if (i == kThrowAt) throw std::runtime_error("on_alloc throws");
    return Token{100 + i};
  };
  t.on_free = [&](Token token) { frees.push_back(token); };
  StopGuard guard;
  const uint64_t exceptions_before = assay::GetProfilerStats().callback_exceptions;
  ASSERT_TRUE(assay::Start(EveryAllocation(), std::move(t)));

  std::vector<void*> blocks;
  blocks.reserve(8);
  testing::internal::CaptureStderr();
  for (int i = 0; i < 6; ++i) {
    blocks.push_back(Mine([&] { return Opaque(malloc(64 + 64 * static_cast<size_t>(i))); }));
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(next, 6u);
  EXPECT_EQ(assay::GetProfilerStats().callback_exceptions, exceptions_before + 1);
  if (exceptions_before == 0) {  // the line is printed once per process
    const std::string line = "assay: a profiler alloc callback threw";
    EXPECT_NE(err.find(line), std::string::npos) << err;
    EXPECT_EQ(err.find(line), err.rfind(line)) << "printed more than once: " << err;
  }
  for (void* p : blocks) free(p);
  std::sort(frees.begin(), frees.end());
  EXPECT_EQ(frees, (std::vector<Token>{100, 101, 103, 104, 105}));
}

TEST(ProfilerCallbacksTest, ThrowingOnFreeIsCaughtAndCounted) {
  std::vector<Token> frees;
  frees.reserve(16);
  uint64_t next = 0;
  Tracker t;
  t.on_alloc = [&](const SampledAllocation&) -> std::optional<Token> {
    if (t_mine == 0) return std::nullopt;
    return Token{next++};
  };
  t.on_free = [&](Token token) {
    frees.push_back(token);
    if (token % 2 == 1) throw std::logic_error("on_free throws");
  };
  StopGuard guard;
  const uint64_t exceptions_before = assay::GetProfilerStats().callback_exceptions;
  ASSERT_TRUE(assay::Start(EveryAllocation(), std::move(t)));
  std::vector<void*> blocks;
  blocks.reserve(8);
  for (int i = 0; i < 6; ++i) blocks.push_back(Mine([] { return Opaque(malloc(100)); }));
  testing::internal::CaptureStderr();
  for (void* p : blocks) free(p);
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(frees, (std::vector<Token>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(assay::GetProfilerStats().callback_exceptions, exceptions_before + 3);
}

TEST(ProfilerCallbacksTest, ThrowingOnPromoteIsCaughtAndTheBlockKeepsItsToken) {
  int promotes = 0;
  std::vector<Token> frees;
  frees.reserve(4);
  Tracker t;
  t.on_alloc = [&](const SampledAllocation&) -> std::optional<Token> {
    if (t_mine == 0) return std::nullopt;
    return Token{5};
  };
  t.on_promote = [&](Token) -> std::optional<Token> {
    ++promotes;
    throw std::runtime_error("on_promote throws");
  };
  t.on_free = [&](Token token) { frees.push_back(token); };
  ProfilerOptions o = EveryAllocation();
  o.young_bytes = 4 * kKiB;
  StopGuard guard;
  const uint64_t exceptions_before = assay::GetProfilerStats().callback_exceptions;
  ASSERT_TRUE(assay::Start(o, std::move(t)));
  void* p = Mine([] { return Opaque(malloc(100)); });
  testing::internal::CaptureStderr();
  for (int i = 0; i < 100; ++i) free(Opaque(malloc(100)));  // 10 KB later: promoted
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(promotes, 1);
  EXPECT_EQ(assay::GetProfilerStats().callback_exceptions, exceptions_before + 1);
  free(p);
  EXPECT_EQ(frees, std::vector<Token>{5}) << "the block keeps its token and gets its on_free";
}

// ---- 8. Callbacks of two threads blocking on each other ----

TEST(ProfilerCallbacksTest, CallbacksOfTwoThreadsBlockingOnEachOtherBothProgress) {
  constexpr int kRounds = 100;
  Rendezvous rendezvous;
  std::atomic<int> timeouts{0};
  std::atomic<int> allocs{0};
  std::atomic<int> frees{0};
  Tracker t;
  t.on_alloc = [&](const SampledAllocation&) -> std::optional<Token> {
    if (t_mine == 0) return std::nullopt;
    if (!rendezvous.ArriveAndWait(milliseconds(10000))) timeouts++;
    allocs++;
    return Token{1};
  };
  t.on_free = [&](Token) {
    if (!rendezvous.ArriveAndWait(milliseconds(10000))) timeouts++;
    frees++;
  };
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), std::move(t)));

  const auto body = [] {
    for (int i = 0; i < kRounds; ++i) {
      void* p = Mine([&] { return Opaque(malloc(48 + static_cast<size_t>(i))); });
      free(p);  // on_free waits for the other thread's on_free
    }
  };
  std::thread a(body);
  std::thread b(body);
  a.join();
  b.join();
  EXPECT_EQ(timeouts.load(), 0) << "callbacks of two threads could not wait for each other";
  EXPECT_EQ(allocs.load(), 2 * kRounds);
  EXPECT_EQ(frees.load(), 2 * kRounds);
}

// A block freed on another thread while its on_alloc still runs: the free
// returns at once and the thread running on_alloc delivers on_free after it.
TEST(ProfilerCallbacksTest, FreeOnAnotherThreadDuringOnAllocIsDeliveredAfterIt) {
  std::mutex mu;
  std::condition_variable cv;
  void* handed = nullptr;
  bool freed_by_other = false;
  std::vector<std::string> events;
  uint64_t free_tid = 0;
  Tracker t;
  t.on_alloc = [&](const SampledAllocation& a) -> std::optional<Token> {
    if (t_mine == 0) return std::nullopt;
    std::unique_lock<std::mutex> lock(mu);
    events.push_back("alloc begin");
    handed = a.address;
    cv.notify_all();
    if (!cv.wait_for(lock, milliseconds(10000), [&] { return freed_by_other; })) {
      events.push_back("timeout: free() on the other thread did not return");
    }
    events.push_back("alloc end");
    return Token{7};
  };
  t.on_free = [&](Token token) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back("free " + std::to_string(token));
    free_tid = Tid();
  };
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), std::move(t)));

  std::thread other([&] {
    void* p;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return handed != nullptr; });
      p = handed;
    }
    free(p);
    std::lock_guard<std::mutex> lock(mu);
    freed_by_other = true;
    cv.notify_all();
  });
  void* p = Mine([] { return Opaque(malloc(128)); });
  other.join();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(p, handed);
  EXPECT_EQ(events, (std::vector<std::string>{"alloc begin", "alloc end", "free 7"}));
  EXPECT_EQ(free_tid, Tid()) << "the thread that ran on_alloc delivers the late on_free";
}

// ---- 9. Thread exit and Poll ----

TEST(ProfilerCallbacksTest, EventQueuedInsideCallbackRunsBeforeTheThreadIsJoined) {
  std::mutex mu;
  void* victim = nullptr;
  Token victim_token = 0;
  std::vector<Token> frees;
  uint64_t free_tid = 0;
  int on_free_during_callback = -1;
  int max_depth = 0;
  Tracker t;
  t.on_alloc = [&](const SampledAllocation& a) -> std::optional<Token> {
    if (t_mine == 0) return std::nullopt;
    ++t_depth;
    std::unique_lock<std::mutex> lock(mu);
    max_depth = std::max(max_depth, t_depth);
    if (victim == nullptr) {  // the first block
      victim = a.address;
      victim_token = 11;
      --t_depth;
      return victim_token;
    }
    // The second block's on_alloc frees the first: its on_free is queued.
    void* p = victim;
    lock.unlock();
    free(p);
    assay::Poll();  // inside a callback: runs nothing
    lock.lock();
    on_free_during_callback = static_cast<int>(frees.size());
    --t_depth;
    return Token{12};
  };
  t.on_free = [&](Token token) {
    ++t_depth;
    std::lock_guard<std::mutex> lock(mu);
    max_depth = std::max(max_depth, t_depth);
    frees.push_back(token);
    free_tid = Tid();
    --t_depth;
  };
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), std::move(t)));

  uint64_t worker_tid = 0;
  void* second = nullptr;
  std::thread worker([&] {
    worker_tid = Tid();
    Mine([] { return Opaque(malloc(32)); });
    second = Mine([] { return Opaque(malloc(48)); });
    // The thread exits now.
  });
  worker.join();
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(on_free_during_callback, 0) << "on_free ran nested inside on_alloc";
    EXPECT_EQ(max_depth, 1);
    EXPECT_EQ(frees, std::vector<Token>{victim_token}) << "the queued on_free did not run";
    EXPECT_EQ(free_tid, worker_tid);
  }
  free(second);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(frees, (std::vector<Token>{11, 12}));
}

// Frees a block when the thread exits.
struct FreeAtExit {
  void* block = nullptr;
  ~FreeAtExit() { free(block); }
};
thread_local FreeAtExit t_free_at_exit;

TEST(ProfilerCallbacksTest, ThreadLocalDestructorFreeRunsOnFreeBeforeJoinReturns) {
  Recorder rec;
  Tracker base = rec.MakeTracker();
  std::atomic<uint64_t> free_tid{0};
  Tracker t;
  t.on_alloc = base.on_alloc;
  t.on_free = [&](Token token) {
    std::vector<char> scratch(256);  // allocates at thread exit
    base.on_free(token);
    free_tid = Tid();
  };
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), std::move(t)));
  uint64_t worker_tid = 0;
  std::thread worker([&] {
    worker_tid = Tid();
    t_free_at_exit.block = Mine([] { return Opaque(malloc(200)); });
  });
  worker.join();
  ASSERT_EQ(rec.alloc_count(), 1u);
  EXPECT_EQ(rec.frees(), std::vector<Token>{1});
  EXPECT_EQ(free_tid.load(), worker_tid);
}

// A pthread key created after assay's: its destructor runs after assay has
// given the thread's cache back.
pthread_key_t g_late_key;
void FreeBlockAtExit(void* p) { free(p); }

TEST(ProfilerCallbacksTest, FreeAfterThreadCacheTeardownStillRunsOnFree) {
  ASSERT_EQ(pthread_key_create(&g_late_key, FreeBlockAtExit), 0);
  Recorder rec;
  Tracker base = rec.MakeTracker();
  std::atomic<uint64_t> free_tid{0};
  Tracker t;
  t.on_alloc = base.on_alloc;
  t.on_free = [&](Token token) {
    std::string scratch(500, 'y');  // allocates after the cache is gone
    base.on_free(token);
    free_tid = Tid();
  };
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), std::move(t)));
  uint64_t worker_tid = 0;
  std::thread worker([&] {
    worker_tid = Tid();
    pthread_setspecific(g_late_key, Mine([] { return Opaque(malloc(90)); }));
  });
  worker.join();
  pthread_key_delete(g_late_key);
  ASSERT_EQ(rec.alloc_count(), 1u);
  EXPECT_EQ(rec.frees(), std::vector<Token>{1});
  EXPECT_EQ(free_tid.load(), worker_tid);
}

TEST(ProfilerCallbacksTest, PollOutsideCallbacksRunsNothingSpurious) {
  Recorder rec;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(EveryAllocation(), rec.MakeTracker()));
  void* p = Mine([] { return Opaque(malloc(64)); });
  assay::Poll();
  assay::Poll();
  EXPECT_EQ(rec.alloc_count(), 1u);
  EXPECT_TRUE(rec.frees().empty());
  free(p);
  assay::Poll();
  EXPECT_EQ(rec.frees(), std::vector<Token>{1});
  assay::Stop();
  assay::Poll();  // no session
  EXPECT_EQ(rec.frees(), std::vector<Token>{1});
}

// ---- 10. Promotion ----

TEST(ProfilerCallbacksTest, PromotionFiresOncePerTrackedBlockAfterYoungBytes) {
  constexpr uint64_t kYoung = 64 * kKiB;
  constexpr size_t kBlock = 2 * kKiB;
  constexpr int kOld = 8;
  enum Kind { kAlloc, kPromote, kFree };
  struct Event {
    Kind kind;
    Token token;
    uint64_t bytes;  // the test's bytes allocated so far when it ran
  };
  std::vector<Event> events;
  events.reserve(1024);
  uint64_t bytes = 0;
  Token next = 1;
  std::map<void*, Token> tokens;
  Tracker t;
  t.on_alloc = [&](const SampledAllocation& a) -> std::optional<Token> {
    if (t_mine == 0) return std::nullopt;
    const Token token = next++;
    tokens[a.address] = token;
    events.push_back({kAlloc, token, bytes});
    return token;
  };
  t.on_promote = [&](Token token) -> std::optional<Token> {
    events.push_back({kPromote, token, bytes});
    return token + 1000000;  // the token to keep: on_free must get this one
  };
  t.on_free = [&](Token token) { events.push_back({kFree, token, bytes}); };
  ProfilerOptions o;
  o.rate = 1024;
  o.seed = 7;
  o.young_bytes = kYoung;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(o, std::move(t)));

  const auto count = [&](Kind kind) {
    return std::count_if(events.begin(), events.end(),
                         [&](const Event& e) { return e.kind == kind; });
  };
  // Old blocks: 16 KiB in all, well under young_bytes.
  std::vector<void*> old_blocks;
  old_blocks.reserve(kOld);
  for (int i = 0; i < kOld; ++i) {
    old_blocks.push_back(Mine([&] { return Opaque(malloc(kBlock)); }));
    bytes += kBlock;
  }
  const int64_t tracked_old = count(kAlloc);
  ASSERT_GE(tracked_old, 3) << "too few of the old blocks were sampled to test anything";
  EXPECT_EQ(count(kPromote), 0) << "promoted before young_bytes of later allocation";
  std::vector<uint64_t> old_birth;  // bytes at each tracked old block's on_alloc
  for (const Event& e : events) old_birth.push_back(e.bytes);

  // 1 MiB of later allocation (not followed) ages them; a block freed at once
  // and one allocated near the end are never promoted.
  void* early_freed = Mine([&] { return Opaque(malloc(4 * kKiB)); });
  bytes += 4 * kKiB;
  free(early_freed);
  void* young_block = nullptr;
  for (int i = 0; i < 256; ++i) {
    free(Opaque(malloc(4 * kKiB)));
    bytes += 4 * kKiB;
    if (i == 250) {
      young_block = Mine([&] { return Opaque(malloc(4 * kKiB)); });
      bytes += 4 * kKiB;
    }
  }
  EXPECT_EQ(count(kPromote), tracked_old) << "every tracked old block is promoted once";
  free(young_block);
  for (void* p : old_blocks) free(p);
  assay::Poll();

  // Per token: alloc, then promote (old ones only), then free with the kept token.
  for (const auto& [address, token] : tokens) {
    SCOPED_TRACE(testing::Message() << "token " << token);
    std::vector<Kind> kinds;
    uint64_t alloc_bytes = 0;
    uint64_t promote_bytes = 0;
    for (const Event& e : events) {
      if (e.token == token || e.token == token + 1000000) {
        kinds.push_back(e.kind);
        if (e.kind == kAlloc) alloc_bytes = e.bytes;
        if (e.kind == kPromote) promote_bytes = e.bytes;
        if (e.kind == kFree) {
          EXPECT_EQ(e.token, promote_bytes != 0 ? token + 1000000 : token)
              << "on_free gets the token on_promote returned";
        }
      }
    }
    const bool old = std::find(old_blocks.begin(), old_blocks.end(), address) != old_blocks.end();
    if (old) {
      EXPECT_EQ(kinds, (std::vector<Kind>{kAlloc, kPromote, kFree}));
      // The allocation clock is an estimate from the samples: allow 2x either way.
      const uint64_t age = promote_bytes - alloc_bytes;
      EXPECT_GE(age, kYoung / 2);
      EXPECT_LE(age, 2 * kYoung + 8 * kKiB);
    } else {
      EXPECT_EQ(kinds, (std::vector<Kind>{kAlloc, kFree})) << "a young block was promoted";
    }
  }
}

TEST(ProfilerCallbacksTest, PromotionRunsOnlyWhenTheTrackerHasOnPromote) {
  // No on_promote: the other callbacks still come, and nothing breaks with
  // a lot of allocation between on_alloc and on_free.
  Recorder rec;
  ProfilerOptions o;
  o.rate = 256;
  o.seed = 3;
  o.young_bytes = 16 * kKiB;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(o, rec.MakeTracker()));
  void* p = Mine([] { return Opaque(malloc(64 * kKiB)); });
  for (int i = 0; i < 200; ++i) free(Opaque(malloc(4 * kKiB)));
  free(p);
  EXPECT_EQ(rec.alloc_count(), 1u);
  EXPECT_EQ(rec.frees(), std::vector<Token>{1});
}

// ---- 11. Callbacks that allocate, free and block, under load ----

TEST(ProfilerCallbacksTest, CallbacksThatAllocateFreeAndBlockWhileOthersAllocate) {
  Watchdog watchdog("callback soak", std::chrono::seconds(60));
  std::mutex mu;
  std::set<Token> live_tokens;
  std::vector<void*> hand_over;  // tracked blocks a callback frees
  std::atomic<uint64_t> next{1};
  std::atomic<uint64_t> allocs{0};
  std::atomic<uint64_t> promotes{0};
  std::atomic<uint64_t> frees{0};
  std::atomic<uint64_t> errors{0};
  Tracker t;
  t.on_alloc = [&](const SampledAllocation& a) -> std::optional<Token> {
    if (t_mine == 0) return std::nullopt;
    const Token token = next++;
    std::vector<char> scratch(16 + token % 512, 'a');
    void* to_free = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu);
      live_tokens.insert(token);
      if (!hand_over.empty() && token % 3 == 0) {
        to_free = hand_over.back();
        hand_over.pop_back();
      }
    }
    free(to_free);  // a tracked block: its on_free is queued after this callback
    if (token % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    allocs++;
    if (a.n_samples == 0) errors++;
    return token;
  };
  t.on_promote = [&](Token token) -> std::optional<Token> {
    promotes++;
    std::string s(100, 'p');
    return token;
  };
  t.on_free = [&](Token token) {
    void* scratch = malloc(1 + token % 4000);
    {
      std::lock_guard<std::mutex> lock(mu);
      if (live_tokens.erase(token) != 1) errors++;
    }
    if (token % 97 == 0) std::this_thread::yield();
    free(scratch);
    frees++;
  };
  ProfilerOptions o;
  o.rate = 64;
  o.seed = 99;
  o.young_bytes = 256 * kKiB;
  StopGuard guard;
  ASSERT_TRUE(assay::Start(o, std::move(t)));

  std::atomic<bool> stop{false};
  const auto worker = [&](unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<void*> mine;
    mine.reserve(128);
    while (!stop.load(std::memory_order_relaxed)) {
      const size_t n = 16 + rng() % 8192;
      void* p = Mine([&] { return Opaque(malloc(n)); });
      const unsigned r = rng() % 8;
      if (r == 0) {
        std::lock_guard<std::mutex> lock(mu);
        hand_over.push_back(p);
      } else {
        mine.push_back(p);
      }
      if (mine.size() > 100) {
        const size_t i = rng() % mine.size();
        free(mine[i]);
        mine[i] = mine.back();
        mine.pop_back();
      }
    }
    for (void* p : mine) free(p);
  };
  std::thread a(worker, 1);
  std::thread b(worker, 2);
  std::thread c([&] {  // an allocating thread whose blocks nobody follows
    while (!stop.load(std::memory_order_relaxed)) {
      std::vector<std::string> v(64, std::string(100, 'z'));
    }
  });
  std::this_thread::sleep_for(milliseconds(1000));
  stop = true;
  a.join();
  b.join();
  c.join();
  for (void* p : hand_over) free(p);
  hand_over.clear();
  assay::Poll();

  EXPECT_GT(allocs.load(), 100u);
  EXPECT_EQ(errors.load(), 0u);
  EXPECT_EQ(frees.load(), allocs.load());
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_TRUE(live_tokens.empty()) << live_tokens.size() << " tokens never got on_free";
  printf("[soak] %llu on_alloc, %llu on_promote, %llu on_free in 1 s\n",
         static_cast<unsigned long long>(allocs.load()),
         static_cast<unsigned long long>(promotes.load()),
         static_cast<unsigned long long>(frees.load()));
}

// ---- 12. The session API ----

TEST(ProfilerCallbacksTest, StartWhileRunningFailsAndIsRunningAndSamplesFollow) {
  StopGuard guard;
  EXPECT_FALSE(assay::IsRunning());
  ASSERT_TRUE(assay::Start(EveryAllocation()));
  EXPECT_TRUE(assay::IsRunning());
  bool second_called = false;
  Tracker second;
  second.on_alloc = [&](const SampledAllocation&) -> std::optional<Token> {
    second_called = true;
    return Token{1};
  };
  EXPECT_FALSE(assay::Start(EveryAllocation(), std::move(second)));
  EXPECT_TRUE(assay::IsRunning());

  const uint64_t before = assay::GetProfilerStats().samples;
  std::vector<void*> blocks;
  blocks.reserve(10);
  for (int i = 0; i < 10; ++i) blocks.push_back(Opaque(malloc(100)));
  EXPECT_GE(assay::GetProfilerStats().samples, before + 10);
  EXPECT_GE(assay::GetProfilerStats().live_entries, 10u);
  EXPECT_GE(assay::GetProfilerStats().stacks, 1u);
  for (void* p : blocks) free(p);
  EXPECT_FALSE(second_called) << "the tracker of a refused Start was used";

  assay::Stop();
  EXPECT_FALSE(assay::IsRunning());
  assay::Stop();  // stopping twice is harmless
  const uint64_t stopped = assay::GetProfilerStats().samples;
  for (int i = 0; i < 10; ++i) free(Opaque(malloc(100)));
  EXPECT_EQ(assay::GetProfilerStats().samples, stopped) << "sampled with no session";

  ASSERT_TRUE(assay::Start(EveryAllocation()));
  EXPECT_TRUE(assay::IsRunning());
  free(Opaque(malloc(100)));
  EXPECT_GT(assay::GetProfilerStats().samples, stopped);
}

}  // namespace
