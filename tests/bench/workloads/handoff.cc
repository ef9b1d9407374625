// (j) Block-at-a-time handover: THREADS/2 producer/consumer pairs (default
// 2 pairs), each joined by a lock-free single-producer single-consumer ring
// of 1 024 slots. The producer mallocs a 64 B block, writes it and pushes it;
// the consumer pops it, reads it and frees it. Every free is a cross-thread
// free, one block at a time (the "no slower" half of issue 17, point 1).
#include <sched.h>

#include <atomic>
#include <thread>
#include <vector>

#include "common.h"

namespace {

constexpr size_t kSlots = 1024;  // power of two
constexpr size_t kBlockSize = 64;

struct alignas(64) Ring {
  alignas(64) std::atomic<uint64_t> head{0};  // next slot to read (consumer)
  alignas(64) std::atomic<uint64_t> tail{0};  // next slot to write (producer)
  alignas(64) void* slot[kSlots];
};

void Produce(Ring* r, int id, uint64_t blocks) {
  uint64_t tail = 0;
  for (uint64_t i = 0; i < blocks; ++i) {
    auto* p = static_cast<uint64_t*>(malloc(kBlockSize));
    p[0] = (static_cast<uint64_t>(id) << 40) ^ i;
    p[kBlockSize / 8 - 1] = i * 3;
    while (tail - r->head.load(std::memory_order_acquire) == kSlots) sched_yield();
    r->slot[tail % kSlots] = p;
    r->tail.store(++tail, std::memory_order_release);
  }
}

uint64_t Consume(Ring* r, uint64_t blocks) {
  uint64_t check = 0;
  uint64_t head = 0;
  while (head < blocks) {
    uint64_t tail;
    while ((tail = r->tail.load(std::memory_order_acquire)) == head) sched_yield();
    for (; head < tail; ++head) {
      const auto* p = static_cast<const uint64_t*>(r->slot[head % kSlots]);
      check += (p[0] * 0x9E3779B97F4A7C15ull) ^ p[kBlockSize / 8 - 1];
      free(const_cast<uint64_t*>(p));
      r->head.store(head + 1, std::memory_order_release);
    }
  }
  return check;
}

}  // namespace

int main(int argc, char** argv) {
  wl::Args a = wl::Parse(argc, argv, 4);
  const int pairs = a.threads / 2 > 0 ? a.threads / 2 : 1;
  const uint64_t blocks = wl::Scaled(a.scale, 16000000) / pairs;
  std::vector<Ring> rings(pairs);
  std::vector<uint64_t> checks(pairs);
  wl::Timer t;
  std::vector<std::thread> ts;
  for (int i = 0; i < pairs; ++i) {
    ts.emplace_back([&, i] { Produce(&rings[i], i, blocks); });
    ts.emplace_back([&, i] { checks[i] = Consume(&rings[i], blocks); });
  }
  for (auto& th : ts) th.join();
  uint64_t check = 0;
  for (uint64_t c : checks) check += c;
  wl::Report("handoff", a, t, check);
}
