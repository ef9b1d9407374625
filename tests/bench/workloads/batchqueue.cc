// (i) Batched producer/consumer of small blocks: 2 producers each malloc
// batches of 4 096 blocks of 64 B, write them and queue the batches (one
// mutex + condition variables, at most 100 batches queued: ~26 MB live); 2
// consumers take whole batches, read every block and free it. Every free is
// a cross-thread free of a block of one class, in bulk (issue 17, point 1).
// The queue is a stack, as in Lever and Boreham's xmalloc-test, which this
// follows: the batch freed is the newest, still in cache, so the time is
// the allocator's, not the memory's.
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"

namespace {

constexpr size_t kBlocks = 4096;   // blocks per batch
constexpr size_t kBlockSize = 64;  // bytes per block
constexpr size_t kQueueMax = 100;  // batches queued at most

struct Batch {
  void* block[kBlocks];
};

std::mutex g_mu;
std::condition_variable g_not_empty, g_not_full;
std::vector<Batch*> g_queue;  // a stack
int g_producers_left;

void Produce(int id, uint64_t batches) {
  for (uint64_t b = 0; b < batches; ++b) {
    auto* batch = new Batch;
    for (size_t i = 0; i < kBlocks; ++i) {
      auto* p = static_cast<uint64_t*>(malloc(kBlockSize));
      p[0] = (static_cast<uint64_t>(id) << 40) ^ (b << 12) ^ i;
      p[kBlockSize / 8 - 1] = b + i;
      batch->block[i] = p;
    }
    std::unique_lock<std::mutex> l(g_mu);
    g_not_full.wait(l, [] { return g_queue.size() < kQueueMax; });
    g_queue.push_back(batch);
    g_not_empty.notify_one();
  }
  std::lock_guard<std::mutex> l(g_mu);
  if (--g_producers_left == 0) g_not_empty.notify_all();
}

uint64_t Consume() {
  uint64_t check = 0;
  for (;;) {
    Batch* batch;
    {
      std::unique_lock<std::mutex> l(g_mu);
      g_not_empty.wait(l, [] { return !g_queue.empty() || g_producers_left == 0; });
      if (g_queue.empty()) return check;
      batch = g_queue.back();
      g_queue.pop_back();
      g_not_full.notify_one();
    }
    for (size_t i = 0; i < kBlocks; ++i) {
      const auto* p = static_cast<const uint64_t*>(batch->block[i]);
      check += (p[0] * 0x9E3779B97F4A7C15ull) ^ p[kBlockSize / 8 - 1];
      free(batch->block[i]);
    }
    delete batch;
  }
}

}  // namespace

int main(int argc, char** argv) {
  wl::Args a = wl::Parse(argc, argv, 4);
  if (a.threads < 2) a.threads = 2;
  const int producers = a.threads / 2;
  const int consumers = a.threads - producers;
  const uint64_t batches = wl::Scaled(a.scale, 4000) / producers;
  g_producers_left = producers;
  wl::Timer t;
  std::vector<std::thread> ts;
  std::vector<uint64_t> checks(consumers);
  for (int i = 0; i < producers; ++i) ts.emplace_back([=] { Produce(i, batches); });
  for (int i = 0; i < consumers; ++i) ts.emplace_back([&, i] { checks[i] = Consume(); });
  for (auto& th : ts) th.join();
  uint64_t check = 0;
  for (uint64_t c : checks) check += c;
  wl::Report("batchqueue", a, t, check);
}
