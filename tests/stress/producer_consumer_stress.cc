// Cross-thread frees: producer threads allocate blocks of random sizes (8 B to 1 MiB, mostly
// small), write a pattern and pass them through a locked queue to consumer threads, which verify
// the pattern (some after a realloc) and free them. Usage: producer_consumer_stress [--smoke]
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
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

[[noreturn]] void Fail(const char* what, const void* p, size_t n, size_t offset) {
  assay_test::Fail("producer_consumer_stress", "%s (block %p, %zu bytes, offset %zu)", what, p, n,
                   offset);
}

// The pattern covers the whole block up to 16 KiB; above, the first and
// last 256 bytes and one word every 256 bytes (every page is touched). The
// tail bytes too.
constexpr assay_test::Pattern kPattern = {
    16 * kKiB, 32, 32, [](uint64_t seed, size_t i) { return static_cast<uint8_t>(seed + i); }};

void Stamp(void* p, size_t n, uint64_t seed) { assay_test::StampPattern(kPattern, p, n, seed); }

// Checks the stamp over the first `keep` bytes of a block stamped with n bytes.
void Check(const void* p, size_t n, size_t keep, uint64_t seed, const char* what) {
  const size_t bad = assay_test::FindPatternMismatch(kPattern, p, n, keep, seed);
  if (bad != assay_test::kPatternIntact) Fail(what, p, n, bad);
}

size_t RandomSize(std::mt19937_64& rng) {
  const uint64_t r = rng() % 1000;
  if (r < 850) return 8 + rng() % 505;                   // 8 B .. 512 B
  if (r < 950) return 512 + rng() % (32 * kKiB);         // .. 32 KiB
  if (r < 990) return 32 * kKiB + rng() % (224 * kKiB);  // .. 256 KiB
  return 256 * kKiB + rng() % (768 * kKiB + 1);          // .. 1 MiB
}

struct Item {
  void* p;
  size_t n;
  uint64_t seed;
};

class Queue {
 public:
  explicit Queue(size_t capacity) : capacity_(capacity) {}

  void Push(const Item& item) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return items_.size() < capacity_; });
    items_.push_back(item);
    not_empty_.notify_one();
  }

  // False once the queue is closed and empty.
  bool Pop(Item* item) {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return false;
    *item = items_.front();
    items_.pop_front();
    not_full_.notify_one();
    return true;
  }

  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<Item> items_;
  const size_t capacity_;
  bool closed_ = false;
};

}  // namespace

int main(int argc, char** argv) {
  const bool smoke = argc > 1 && strcmp(argv[1], "--smoke") == 0;
  if (assay_version() == nullptr) Fail("not linked against assay", nullptr, 0, 0);
  constexpr int kProducers = 3;
  constexpr int kConsumers = 3;
  const uint64_t per_producer = smoke ? 100000 : 1000000;

  Queue queue(2048);
  std::atomic<uint64_t> consumed{0};
  std::atomic<uint64_t> bytes{0};

  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&, c] {
      std::mt19937_64 rng(0xc0115e00 + static_cast<uint64_t>(c));
      Item item;
      while (queue.Pop(&item)) {
        if (malloc_usable_size(item.p) < item.n)
          Fail("usable size below request", item.p, item.n, 0);
        Check(item.p, item.n, item.n, item.seed, "pattern corrupted in transit");
        if (rng() % 20 == 0) {
          // Reallocate in the consumer: the block moves between threads and regimes.
          const size_t m = RandomSize(rng);
          void* q = realloc(item.p, m);
          if (q == nullptr) Fail("realloc returned NULL", item.p, item.n, m);
          Check(q, item.n, m < item.n ? m : item.n, item.seed, "realloc lost contents");
          item.p = q;
        }
        free(item.p);
        if (consumed.fetch_add(1, std::memory_order_relaxed) % 50000 == 49999) {
          assay_test::CheckHeap("producer_consumer_stress", assay_test::HeapScope::kOwnThread);
        }
      }
    });
  }

  std::vector<std::thread> producers;
  for (int t = 0; t < kProducers; ++t) {
    producers.emplace_back([&, t] {
      std::mt19937_64 rng(0x9d0d0c00 + static_cast<uint64_t>(t));
      for (uint64_t i = 0; i < per_producer; ++i) {
        const size_t n = RandomSize(rng);
        void* p = malloc(n);
        if (p == nullptr) Fail("malloc returned NULL", nullptr, n, 0);
        const uint64_t seed = (static_cast<uint64_t>(t) << 40) | i;
        Stamp(p, n, seed);
        bytes.fetch_add(n, std::memory_order_relaxed);
        queue.Push(Item{p, n, seed});
      }
    });
  }
  for (std::thread& t : producers) t.join();
  // The consumers still run: only this thread's cache is read.
  assay_test::CheckHeap("producer_consumer_stress", assay_test::HeapScope::kOwnThread);
  queue.Close();
  for (std::thread& t : consumers) t.join();
  assay_test::CheckHeap("producer_consumer_stress", assay_test::HeapScope::kAllThreads);

  const uint64_t expected = per_producer * kProducers;
  if (consumed.load() != expected) {
    assay_test::ReportFailure("producer_consumer_stress", "consumed %llu of %llu blocks",
                              static_cast<unsigned long long>(consumed.load()),
                              static_cast<unsigned long long>(expected));
    return 1;
  }
  printf(
      "producer_consumer_stress: OK: %llu blocks, %llu MiB through %d producers and %d "
      "consumers\n",
      static_cast<unsigned long long>(expected),
      static_cast<unsigned long long>(bytes.load() / kMiB), kProducers, kConsumers);
  return 0;
}
