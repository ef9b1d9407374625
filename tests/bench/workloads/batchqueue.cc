// (i) Batched producer/consumer of small blocks: 2 producers each malloc
// batches of 4 096 blocks of 64 B, write them and queue the batches (one
// mutex + condition variables, at most 100 batches queued: ~26 MB live); 2
// consumers take whole batches, read every block and free it. Every free is
// a cross-thread free of a block of one class, in bulk (issue 17, point 1).
// The queue is a stack, as in Lever and Boreham's xmalloc-test, which this
// follows: the batch freed is the newest, still in cache, so the time is
// the allocator's, not the memory's.
#include <vector>

#include "batch_queue.h"
#include "common.h"

namespace {

constexpr size_t kBlocks = 4096;   // blocks per batch
constexpr size_t kBlockSize = 64;  // bytes per block
constexpr size_t kQueueMax = 100;  // batches queued at most

struct Batch {
  void* block[kBlocks];
};

using Queue = wl::BatchQueue<Batch, std::vector<Batch*>, /*kLifo=*/true>;

void Produce(Queue& queue, int id, uint64_t batches) {
  for (uint64_t b = 0; b < batches; ++b) {
    auto* batch = new Batch;
    for (size_t i = 0; i < kBlocks; ++i) {
      auto* p = static_cast<uint64_t*>(malloc(kBlockSize));
      p[0] = (static_cast<uint64_t>(id) << 40) ^ (b << 12) ^ i;
      p[kBlockSize / 8 - 1] = b + i;
      batch->block[i] = p;
    }
    queue.Push(batch);
  }
  queue.ProducerDone();
}

uint64_t Consume(Queue& queue) {
  uint64_t check = 0;
  while (Batch* batch = queue.Pop()) {
    for (size_t i = 0; i < kBlocks; ++i) {
      const auto* p = static_cast<const uint64_t*>(batch->block[i]);
      check += (p[0] * 0x9E3779B97F4A7C15ull) ^ p[kBlockSize / 8 - 1];
      free(batch->block[i]);
    }
    delete batch;
  }
  return check;
}

}  // namespace

int main(int argc, char** argv) {
  return wl::RunBatchWorkload<Queue>("batchqueue", argc, argv, 4000, kQueueMax, Produce, Consume);
}
