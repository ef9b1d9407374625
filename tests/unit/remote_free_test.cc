// The cross-thread free path: a thread that only frees a class hands its
// whole list to the central transfer cache as one chain (thread_cache.cc
// HandOver, central.cc GiveChain), and an allocating thread's refill takes a
// chain whole (central::Take); chains past the cache's cap go back to spans.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <thread>
#include <vector>

#include "alloc/central.h"
#include "alloc/check.h"
#include "alloc/size_classes.h"
#include "alloc/thread_cache.h"
#include "assay/assay.h"

namespace assay::internal {
namespace {

constexpr size_t kSize = 64;

size_t Cls() { return kSmallLookup[(kSize + 7) >> 3]; }

uint32_t OwnCount(size_t cls) {
  const ThreadCache* tc = thread_cache::Existing();
  return tc != nullptr ? tc->lists[cls].count : 0;
}

// Blocks a thread that only frees hands over after `frees` frees, by the
// slow-start rule written out here independently of the code: its bound
// starts at a batch and grows by a batch at each overflow, and an overflow
// (the free that finds count == bound) hands over the bound's worth of
// blocks and keeps the one just freed. Returns the chains' lengths.
std::vector<size_t> ExpectedChains(size_t frees, size_t batch, size_t max_cached) {
  std::vector<size_t> chains;
  size_t bound = batch, count = 0;
  for (size_t i = 0; i < frees; ++i) {
    if (count < bound) {
      ++count;
      continue;
    }
    chains.push_back(count);
    count = 1;
    bound = bound + batch < max_cached ? bound + batch : max_cached;
  }
  return chains;
}

// A producer allocates, a consumer frees everything; the producer, kept
// alive with an empty list, then allocates one block (a refill).
TEST(RemoteFree, ConsumerListReachesProducerAsOneChain) {
  const size_t cls = Cls();
  const SizeClassInfo& c = kClasses[cls];
  constexpr size_t kBlocks = 4096;
  central::Drain(false);  // the transfer cache starts empty: all its slots free
  ASSERT_EQ(central::GetClassStats(cls).transfer_blocks, 0u);

  std::vector<void*> blocks(kBlocks);
  std::promise<void> go;
  std::promise<uint32_t> produced;
  uint32_t refill_count = 0, refill_max = 0;
  std::thread producer([&] {
    for (size_t i = 0; i < kBlocks; ++i) {
      blocks[i] = malloc(kSize);
      static_cast<uint64_t*>(blocks[i])[0] = i;
    }
    // Empty this thread's list, so the next malloc refills.
    std::vector<void*> spare;
    spare.reserve(c.max_cached);
    while (OwnCount(cls) > 0) spare.push_back(malloc(kSize));
    produced.set_value(static_cast<uint32_t>(spare.size()));
    go.get_future().wait();
    void* p = malloc(kSize);  // Refill: the newest chain, whole
    refill_count = OwnCount(cls);
    refill_max = thread_cache::Existing()->lists[cls].max;
    free(p);
    for (void* s : spare) free(s);
  });
  produced.get_future().wait();

  // The consumer stays alive until the producer's refill: at its exit its
  // leftover list goes back to the central list too.
  uint32_t consumer_left = 0;
  std::promise<void> freed, done;
  std::thread consumer([&] {
    for (size_t i = 0; i < kBlocks; ++i) {
      EXPECT_EQ(static_cast<uint64_t*>(blocks[i])[0], i);
      free(blocks[i]);
    }
    consumer_left = OwnCount(cls);
    AssertHeapValid(CacheScope::kOwn);  // aborts on a broken invariant (checked build)
    freed.set_value();
    done.get_future().wait();
  });
  freed.get_future().wait();

  const std::vector<size_t> chains = ExpectedChains(kBlocks, c.batch, c.max_cached);
  size_t handed = 0;
  for (size_t n : chains) handed += n;
  ASSERT_LE(chains.size(), 16u);  // every chain found a free slot
  EXPECT_EQ(consumer_left, kBlocks - handed);
  // Every chain is in the transfer cache, whole: far more than the 16
  // batches it held before chains (16 * 32 = 512 blocks of 64 B).
  EXPECT_EQ(central::GetClassStats(cls).transfer_blocks, handed);
  EXPECT_GT(handed, 16u * c.batch);

  // The heap walk (alloc/heap_walk.cc, the gdb walker's twin) sees the
  // blocks in the chains as free: none of the freed blocks is live.
  std::vector<void*> freed_sorted = blocks;
  std::sort(freed_sorted.begin(), freed_sorted.end());
  struct Seen {
    const std::vector<void*>* freed;
    size_t hits;
  } seen{&freed_sorted, 0};
  ASSERT_GT(assay_heap_iterate(
                [](void* address, size_t, void* arg) {
                  auto* s = static_cast<Seen*>(arg);
                  s->hits += std::binary_search(s->freed->begin(), s->freed->end(), address);
                },
                &seen),
            0);
  EXPECT_EQ(seen.hits, 0u);

  go.set_value();
  producer.join();
  done.set_value();
  consumer.join();
  // The refill took the newest (longest) chain whole: one block returned,
  // the rest on the list, and the bound grew to hold it.
  EXPECT_EQ(refill_count + 1, chains.back());
  EXPECT_GT(refill_count, c.batch);
  EXPECT_GE(refill_max, refill_count);
  EXPECT_LE(refill_max, c.max_cached);
}

// More chains than the transfer cache has slots: the rest goes back to the
// spans (a batch per lock hold), and the counts still add up.
TEST(RemoteFree, ChainsPastTheSlotsGoToSpans) {
  const size_t cls = Cls();
  const SizeClassInfo& c = kClasses[cls];
  constexpr size_t kBlocks = 1 << 16;  // 4 MiB of 64 B blocks

  std::vector<void*> blocks(kBlocks);
  std::thread producer([&] {
    for (void*& b : blocks) b = malloc(kSize);
  });
  producer.join();
  central::Drain(false);  // the producer's leftover batch, if any
  const size_t out_mid = central::GetClassStats(cls).blocks_out;
  std::thread consumer([&] {
    for (void* b : blocks) free(b);
    AssertHeapValid(CacheScope::kOwn);
  });
  consumer.join();
  AssertHeapValid(CacheScope::kAllQuiescent);

  const std::vector<size_t> chains = ExpectedChains(kBlocks, c.batch, c.max_cached);
  ASSERT_GT(chains.size(), 16u);
  size_t first16 = 0;
  for (size_t i = 0; i < 16; ++i) first16 += chains[i];
  ASSERT_LE(first16, (size_t{1} << 20) / c.size);  // under the cap: slots bind first
  const central::ClassStats s = central::GetClassStats(cls);
  EXPECT_EQ(s.transfer_blocks, first16);
  // Every block freed is on its span again but those in the chains (the
  // consumer's leftover went back at its exit, the slots being full).
  EXPECT_EQ(s.blocks_out, out_mid - kBlocks + first16);
}

// A thread freeing several classes in turn (prodcons: messages of many
// sizes) keeps each bound at a batch: longer lists would park blocks of
// every class while the producers, short of them, carve new spans.
TEST(RemoteFree, ConsumerOfManyClassesKeepsBatchBounds) {
  constexpr size_t kSizes[] = {48, 96, 160};
  constexpr size_t kEach = 2048;
  std::vector<void*> blocks;
  std::thread producer([&] {
    for (size_t i = 0; i < kEach; ++i) {
      for (size_t n : kSizes) blocks.push_back(malloc(n));
    }
  });
  producer.join();
  std::vector<uint32_t> max_after;
  std::thread consumer([&] {
    for (void* b : blocks) free(b);  // round robin over the three classes
    for (size_t n : kSizes) {
      max_after.push_back(thread_cache::Existing()->lists[kSmallLookup[(n + 7) >> 3]].max);
    }
  });
  consumer.join();
  ASSERT_EQ(max_after.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(max_after[i], kClasses[kSmallLookup[(kSizes[i] + 7) >> 3]].batch) << kSizes[i];
  }
}

}  // namespace
}  // namespace assay::internal
