// (b) Producer/consumer: THREADS/2 producers (default 2 producers, 2
// consumers) allocate messages of 16-1024 B, fill them and pass them in
// batches of 64 through one bounded queue (mutex + condition variables) to
// the consumers, which read and free them. Every free is a cross-thread free.
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"

namespace {

constexpr size_t kBatch = 64;
constexpr size_t kQueueMax = 64;  // batches in flight

struct Batch {
  void* msg[kBatch];
  uint32_t len[kBatch];
};

std::mutex g_mu;
std::condition_variable g_not_empty, g_not_full;
std::deque<Batch*> g_queue;
int g_producers_left;

void Produce(int id, uint64_t batches) {
  wl::Rng r(2000 + id);
  for (uint64_t b = 0; b < batches; ++b) {
    auto* batch = static_cast<Batch*>(malloc(sizeof(Batch)));
    for (size_t i = 0; i < kBatch; ++i) {
      const size_t n = r.Chance(1, 10) ? r.Range(257, 1024) : r.Range(16, 256);
      batch->msg[i] = malloc(n);
      batch->len[i] = static_cast<uint32_t>(n);
      memset(batch->msg[i], static_cast<int>(b + i), n < 64 ? n : 64);
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
      batch = g_queue.front();
      g_queue.pop_front();
      g_not_full.notify_one();
    }
    for (size_t i = 0; i < kBatch; ++i) {
      const auto* c = static_cast<const unsigned char*>(batch->msg[i]);
      check += c[0] + c[batch->len[i] < 64 ? batch->len[i] - 1 : 63];
      free(batch->msg[i]);
    }
    free(batch);
  }
}

}  // namespace

int main(int argc, char** argv) {
  wl::Args a = wl::Parse(argc, argv, 4);
  if (a.threads < 2) a.threads = 2;
  const int producers = a.threads / 2;
  const int consumers = a.threads - producers;
  const uint64_t batches = wl::Scaled(a.scale, 120000) / producers;
  g_producers_left = producers;
  wl::Timer t;
  std::vector<std::thread> ts;
  std::vector<uint64_t> checks(consumers);
  for (int i = 0; i < producers; ++i) ts.emplace_back([=] { Produce(i, batches); });
  for (int i = 0; i < consumers; ++i) ts.emplace_back([&, i] { checks[i] = Consume(); });
  for (auto& th : ts) th.join();
  uint64_t check = 0;
  for (uint64_t c : checks) check += c;
  wl::Report("prodcons", a, t, check);
}
