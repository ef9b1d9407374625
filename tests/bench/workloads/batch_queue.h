// The batched producer/consumer workloads' queue (prodcons, batchqueue):
// producers push batches into a bounded queue (one mutex, two condition
// variables), consumers pop them until every producer is done; and the
// threads that run both sides, and the main of such a workload.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "common.h"

namespace wl {

// Container: std::deque (kLifo false: the oldest batch first) or a vector
// used as a stack (kLifo true: the newest first).
template <class T, class Container, bool kLifo>
class BatchQueue {
 public:
  BatchQueue(size_t max_queued, int producers) : max_(max_queued), producers_left_(producers) {}

  // Waits while max_queued batches are queued.
  void Push(T* batch) {
    std::unique_lock<std::mutex> l(mu_);
    not_full_.wait(l, [this] { return queue_.size() < max_; });
    queue_.push_back(batch);
    not_empty_.notify_one();
  }

  // Each producer calls it once, after its last Push.
  void ProducerDone() {
    std::lock_guard<std::mutex> l(mu_);
    if (--producers_left_ == 0) not_empty_.notify_all();
  }

  // The next batch, or nullptr once the queue is empty and every producer done.
  T* Pop() {
    std::unique_lock<std::mutex> l(mu_);
    not_empty_.wait(l, [this] { return !queue_.empty() || producers_left_ == 0; });
    if (queue_.empty()) return nullptr;
    T* batch;
    if constexpr (kLifo) {
      batch = queue_.back();
      queue_.pop_back();
    } else {
      batch = queue_.front();
      queue_.pop_front();
    }
    not_full_.notify_one();
    return batch;
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  Container queue_;
  const size_t max_;
  int producers_left_;
};

// Runs produce(i) on `producers` threads and consume() on `consumers`
// threads, joins them all and returns the sum of what consume returned.
template <class Produce, class Consume>
uint64_t RunProducersConsumers(int producers, int consumers, Produce produce, Consume consume) {
  std::vector<std::thread> ts;
  std::vector<uint64_t> checks(consumers);
  for (int i = 0; i < producers; ++i) ts.emplace_back([=] { produce(i); });
  for (int i = 0; i < consumers; ++i) ts.emplace_back([&, i] { checks[i] = consume(); });
  for (auto& th : ts) th.join();
  uint64_t check = 0;
  for (uint64_t c : checks) check += c;
  return check;
}

// A producer/consumer workload's main: THREADS (default 4, at least 2),
// half of them producers, which share `batches` batches at scale 1 through a
// Queue of at most max_queued; produce(queue, i, n) makes producer i's n
// batches, consume(queue) returns its check value.
template <class Queue, class Produce, class Consume>
int RunBatchWorkload(const char* name, int argc, char** argv, uint64_t batches, size_t max_queued,
                     Produce produce, Consume consume) {
  Args a = Parse(argc, argv, 4);
  if (a.threads < 2) a.threads = 2;
  const int producers = a.threads / 2;
  const int consumers = a.threads - producers;
  const uint64_t per_producer = Scaled(a.scale, batches) / producers;
  Queue queue(max_queued, producers);
  Timer t;
  const uint64_t check = RunProducersConsumers(
      producers, consumers, [&](int i) { produce(queue, i, per_producer); },
      [&] { return consume(queue); });
  Report(name, a, t, check);
  return 0;
}

}  // namespace wl
