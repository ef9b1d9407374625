// (b) Producer/consumer: THREADS/2 producers (default 2 producers, 2
// consumers) allocate messages of 16-1024 B, fill them and pass them in
// batches of 64 through one bounded queue (mutex + condition variables) to
// the consumers, which read and free them. Every free is a cross-thread free.
#include <deque>

#include "batch_queue.h"
#include "common.h"

namespace {

constexpr size_t kBatch = 64;
constexpr size_t kQueueMax = 64;  // batches in flight

struct Batch {
  void* msg[kBatch];
  uint32_t len[kBatch];
};

using Queue = wl::BatchQueue<Batch, std::deque<Batch*>, /*kLifo=*/false>;

void Produce(Queue& queue, int id, uint64_t batches) {
  wl::Rng r(2000 + id);
  for (uint64_t b = 0; b < batches; ++b) {
    auto* batch = static_cast<Batch*>(malloc(sizeof(Batch)));
    for (size_t i = 0; i < kBatch; ++i) {
      const size_t n = r.Chance(1, 10) ? r.Range(257, 1024) : r.Range(16, 256);
      batch->msg[i] = malloc(n);
      batch->len[i] = static_cast<uint32_t>(n);
      memset(batch->msg[i], static_cast<int>(b + i), n < 64 ? n : 64);
    }
    queue.Push(batch);
  }
  queue.ProducerDone();
}

uint64_t Consume(Queue& queue) {
  uint64_t check = 0;
  while (Batch* batch = queue.Pop()) {
    for (size_t i = 0; i < kBatch; ++i) {
      const auto* c = static_cast<const unsigned char*>(batch->msg[i]);
      check += c[0] + c[batch->len[i] < 64 ? batch->len[i] - 1 : 63];
      free(batch->msg[i]);
    }
    free(batch);
  }
  return check;
}

}  // namespace

int main(int argc, char** argv) {
  return wl::RunBatchWorkload<Queue>("prodcons", argc, argv, 120000, kQueueMax, Produce, Consume);
}
