// assay_comalloc under threads: random batches (1..64 blocks, mixed sizes) with mixed lifetimes:
// some bulk-freed at once, some freed one by one, some kept in a shared ring and freed later by
// another thread; contents are verified before every free. Usage: comalloc_stress [--smoke]
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "assay/assay.h"
#include "tests/stress/stress_util.h"

namespace {

using assay_test::kKiB;
using assay_test::kMiB;
constexpr int kWorkers = 3;
constexpr size_t kRingCapacity = 128;

[[noreturn]] void Fail(const char* what, const void* p, size_t a, size_t b) {
  assay_test::Fail("comalloc_stress", "%s (%p, %zu, %zu)", what, p, a, b);
}

// The whole block up to 4 KiB (512 whole words); above, the first and last
// 256 bytes and one word per 1 KiB. The tail bytes too.
constexpr assay_test::Pattern kPattern = {
    assay_test::WholeWords(512), 32, 128,
    [](uint64_t seed, size_t i) { return static_cast<uint8_t>(seed ^ i); }};

void Stamp(void* p, size_t n, uint64_t seed) { assay_test::StampPattern(kPattern, p, n, seed); }

void Check(const void* p, size_t n, uint64_t seed) {
  const size_t bad = assay_test::FindPatternMismatch(kPattern, p, n, n, seed);
  if (bad != assay_test::kPatternIntact) Fail("block corrupted (size, offset)", p, n, bad);
}

size_t RandomSize(std::mt19937_64& rng) {
  const uint64_t r = rng() % 1000;
  if (r < 780) return rng() % 1025;                        // 0 .. 1 KiB
  if (r < 940) return 1 * kKiB + rng() % (63 * kKiB);      // .. 64 KiB
  if (r < 990) return 64 * kKiB + rng() % (448 * kKiB);    // .. 512 KiB (small and large)
  if (r < 998) return 512 * kKiB + rng() % (1536 * kKiB);  // .. 2 MiB
  return 2 * kMiB + 1 + rng() % (2 * kMiB);                // huge
}

struct Batch {
  std::vector<void*> blocks;
  std::vector<size_t> sizes;
  uint64_t seed = 0;
};

void CheckBatch(const Batch& b) {
  for (size_t i = 0; i < b.blocks.size(); ++i) Check(b.blocks[i], b.sizes[i], b.seed + i);
}

// Verifies and frees a batch, by bulk free or one by one in random order.
void Release(Batch& b, std::mt19937_64& rng) {
  CheckBatch(b);
  if (rng() % 2 == 0) {
    assay_bulk_free(b.blocks.data(), b.blocks.size());
    for (void* p : b.blocks) {
      if (p != nullptr) Fail("assay_bulk_free left an entry set", p, 0, 0);
    }
  } else {
    std::shuffle(b.blocks.begin(), b.blocks.end(), rng);
    for (void* p : b.blocks) free(p);
  }
  b.blocks.clear();
}

class Ring {
 public:
  // Adds b; if the ring is full, returns the oldest batch in *evicted.
  bool Push(Batch&& b, Batch* evicted) {
    std::lock_guard<std::mutex> lock(mu_);
    batches_.push_back(std::move(b));
    if (batches_.size() <= kRingCapacity) return false;
    *evicted = std::move(batches_.front());
    batches_.pop_front();
    return true;
  }

  bool Pop(Batch* out) {
    std::lock_guard<std::mutex> lock(mu_);
    if (batches_.empty()) return false;
    *out = std::move(batches_.front());
    batches_.pop_front();
    return true;
  }

  size_t Size() {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_.size();
  }

 private:
  std::mutex mu_;
  std::deque<Batch> batches_;
};

struct Counters {
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> blocks{0};
  std::atomic<uint64_t> failures_checked{0};
};

void Worker(int index, int iterations, Ring* ring, Counters* counters) {
  std::mt19937_64 rng(0xc0a1000 + static_cast<uint64_t>(index));
  uint64_t next_seed = static_cast<uint64_t>(index) << 40;
  void* const sentinel = reinterpret_cast<void*>(uintptr_t{0xbadc0de0});
  for (int it = 0; it < iterations; ++it) {
    Batch b;
    const size_t n = 1 + rng() % 64;
    b.sizes.resize(n);
    for (size_t& s : b.sizes) s = RandomSize(rng);
    if (rng() % 50 == 0) {
      // An impossible size somewhere: all or nothing, `out` untouched.
      std::vector<size_t> bad = b.sizes;
      bad[rng() % n] = size_t{1} << 62;
      std::vector<void*> out(n, sentinel);
      if (assay_comalloc(n, bad.data(), out.data()) != ENOMEM) {
        Fail("comalloc with an impossible size did not fail with ENOMEM", nullptr, n, 0);
      }
      for (void* p : out) {
        if (p != sentinel) Fail("failed comalloc touched out[]", p, n, 0);
      }
      counters->failures_checked.fetch_add(1, std::memory_order_relaxed);
    }
    b.blocks.assign(n, nullptr);
    if (assay_comalloc(n, b.sizes.data(), b.blocks.data()) != 0) {
      Fail("comalloc failed", nullptr, n, 0);
    }
    b.seed = next_seed;
    next_seed += n;
    for (size_t i = 0; i < n; ++i) {
      if (b.blocks[i] == nullptr) Fail("comalloc returned a NULL block", nullptr, i, b.sizes[i]);
      if (malloc_usable_size(b.blocks[i]) < b.sizes[i]) {
        Fail("usable size below request", b.blocks[i], b.sizes[i], malloc_usable_size(b.blocks[i]));
      }
      Stamp(b.blocks[i], b.sizes[i], b.seed + i);
    }
    counters->batches.fetch_add(1, std::memory_order_relaxed);
    counters->blocks.fetch_add(n, std::memory_order_relaxed);
    if (it % 1000 == 999)
      assay_test::CheckHeap("comalloc_stress", assay_test::HeapScope::kOwnThread);
    if (rng() % 10 < 4) {
      Release(b, rng);  // short-lived
    } else {
      Batch evicted;
      if (ring->Push(std::move(b), &evicted)) Release(evicted, rng);  // often another thread's
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool smoke = argc > 1 && strcmp(argv[1], "--smoke") == 0;
  const int iterations = smoke ? 3000 : 30000;
  Ring ring;
  Counters counters;
  std::atomic<bool> stop{false};
  // The reaper frees kept batches it never allocated.
  std::thread reaper([&] {
    std::mt19937_64 rng(0x4ea9e4);
    Batch b;
    while (!stop.load()) {
      if (ring.Size() > kRingCapacity / 2 && ring.Pop(&b)) {
        Release(b, rng);
      } else {
        std::this_thread::yield();
      }
    }
  });
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back(Worker, w, iterations, &ring, &counters);
  }
  for (std::thread& t : workers) t.join();
  stop = true;
  reaper.join();
  std::mt19937_64 rng(0x5eed);
  Batch b;
  while (ring.Pop(&b)) Release(b, rng);
  assay_test::CheckHeap("comalloc_stress", assay_test::HeapScope::kAllThreads);

  printf("comalloc_stress: OK: %llu batches, %llu blocks, %llu failing batches checked\n",
         static_cast<unsigned long long>(counters.batches.load()),
         static_cast<unsigned long long>(counters.blocks.load()),
         static_cast<unsigned long long>(counters.failures_checked.load()));
  return 0;
}
