// The entry table (profiler/entry.h) on its own: entries are found by the
// address they were inserted under, removed exactly once, visited once each
// by ForEach, and the table stays consistent under inserts and removes from
// several threads at once. Addresses are above the 47-bit user address
// space, so they never meet a real sampled block's entry.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <thread>
#include <vector>

#include "profiler/entry.h"

namespace assay::profiler {
namespace {

constexpr uintptr_t kBase = uintptr_t{0x9} << 44;  // above every real block

std::vector<Entry> MakeEntries(size_t n, uintptr_t base) {
  std::vector<Entry> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = Entry{};
    v[i].address = base + i * 16;  // blocks are 16-aligned
    v[i].requested = i + 1;
  }
  return v;
}

// The test's entries ForEach sees, by address (other entries are ignored).
// The callback runs under a shard lock, where it must not allocate (a sampled
// allocation would insert an entry): it fills a vector reserved beforehand.
std::map<uintptr_t, const Entry*> Visible(uintptr_t lo, uintptr_t hi) {
  struct Arg {
    uintptr_t lo, hi;
    std::vector<const Entry*>* seen;
    size_t overflow;
  };
  std::vector<const Entry*> found;
  found.reserve((hi - lo) / 16);
  Arg arg{lo, hi, &found, 0};
  entry_table::ForEach(
      [](const Entry* e, void* a) {
        auto* x = static_cast<Arg*>(a);
        if (e->address < x->lo || e->address >= x->hi) return;
        if (x->seen->size() == x->seen->capacity()) {
          x->overflow++;
        } else {
          x->seen->push_back(e);
        }
      },
      &arg);
  EXPECT_EQ(arg.overflow, 0u) << "ForEach visited more entries than the range holds";
  std::map<uintptr_t, const Entry*> seen;
  for (const Entry* e : found) {
    EXPECT_TRUE(seen.emplace(e->address, e).second) << "ForEach visited " << e->address << " twice";
  }
  return seen;
}

TEST(EntryTable, InsertFindRemoveIterate) {
  constexpr size_t kEntries = 10000;  // grows the 64 shards' buckets a few times
  const uintptr_t base = kBase;
  std::vector<Entry> entries = MakeEntries(kEntries, base);
  const size_t before = entry_table::Count();
  EXPECT_FALSE(entry_table::Contains(base));
  EXPECT_EQ(entry_table::Remove(base), nullptr);
  for (Entry& e : entries) ASSERT_TRUE(entry_table::Insert(&e));
  EXPECT_EQ(entry_table::Count(), before + kEntries);
  entry_table::AssertValid();
  for (const Entry& e : entries) ASSERT_TRUE(entry_table::Contains(e.address)) << e.address;
  // Addresses between blocks and past the last one have no entry.
  EXPECT_FALSE(entry_table::Contains(base + 8));
  EXPECT_FALSE(entry_table::Contains(base + kEntries * 16));

  std::map<uintptr_t, const Entry*> seen = Visible(base, base + kEntries * 16);
  ASSERT_EQ(seen.size(), kEntries);
  for (const Entry& e : entries) {
    auto it = seen.find(e.address);
    ASSERT_NE(it, seen.end()) << e.address;
    EXPECT_EQ(it->second, &e);
  }

  // Remove every third entry: each comes back once, then never again.
  for (size_t i = 0; i < kEntries; i += 3) {
    ASSERT_EQ(entry_table::Remove(entries[i].address), &entries[i]) << i;
    ASSERT_EQ(entry_table::Remove(entries[i].address), nullptr) << i;
  }
  const size_t removed = (kEntries + 2) / 3;
  EXPECT_EQ(entry_table::Count(), before + kEntries - removed);
  for (size_t i = 0; i < kEntries; ++i) {
    ASSERT_EQ(entry_table::Contains(entries[i].address), i % 3 != 0) << i;
  }
  EXPECT_EQ(Visible(base, base + kEntries * 16).size(), kEntries - removed);
  entry_table::AssertValid();

  for (size_t i = 0; i < kEntries; ++i) {
    if (i % 3 == 0) continue;
    ASSERT_EQ(entry_table::Remove(entries[i].address), &entries[i]) << i;
  }
  EXPECT_EQ(entry_table::Count(), before);
  EXPECT_TRUE(Visible(base, base + kEntries * 16).empty());
  entry_table::AssertValid();
}

TEST(EntryTable, ConcurrentInsertsAndRemoves) {
  constexpr int kThreads = 4;
  constexpr size_t kPerThread = 20000;
  constexpr int kRounds = 3;
  const uintptr_t base = kBase + (uintptr_t{1} << 40);
  const uintptr_t end = base + kThreads * kPerThread * 16;
  // Interleaved address ranges: every thread's entries fall in every shard.
  std::vector<std::vector<Entry>> entries(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    entries[t].resize(kPerThread);
    for (size_t i = 0; i < kPerThread; ++i) {
      entries[t][i] = Entry{};
      entries[t][i].address = base + (i * kThreads + t) * 16;
    }
  }
  const size_t before = entry_table::Count();
  std::atomic<int> failures{0};
  std::atomic<bool> done{false};
  // Readers of the whole table run meanwhile (they take every shard's lock).
  std::thread reader([&] {
    while (!done.load(std::memory_order_relaxed)) {
      entry_table::Count();
      Visible(base, end);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<Entry>& mine = entries[t];
      for (int round = 0; round < kRounds; ++round) {
        for (Entry& e : mine) {
          if (!entry_table::Insert(&e)) failures++;
        }
        for (Entry& e : mine) {
          if (!entry_table::Contains(e.address)) failures++;
        }
        // Every round but the last removes all; the last keeps the odd ones.
        for (size_t i = 0; i < mine.size(); ++i) {
          if (round + 1 == kRounds && i % 2 == 1) continue;
          if (entry_table::Remove(mine[i].address) != &mine[i]) failures++;
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  done = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0);

  entry_table::AssertValid();
  EXPECT_EQ(entry_table::Count(), before + kThreads * kPerThread / 2);
  const std::map<uintptr_t, const Entry*> seen = Visible(base, end);
  EXPECT_EQ(seen.size(), kThreads * kPerThread / 2);
  for (int t = 0; t < kThreads; ++t) {
    for (size_t i = 0; i < kPerThread; ++i) {
      const Entry& e = entries[t][i];
      const auto it = seen.find(e.address);
      if (i % 2 == 1) {
        ASSERT_TRUE(it != seen.end() && it->second == &e) << "thread " << t << " entry " << i;
      } else {
        ASSERT_TRUE(it == seen.end()) << "thread " << t << " entry " << i;
      }
    }
  }
  for (int t = 0; t < kThreads; ++t) {
    for (size_t i = 1; i < kPerThread; i += 2) {
      ASSERT_EQ(entry_table::Remove(entries[t][i].address), &entries[t][i]);
    }
  }
  EXPECT_EQ(entry_table::Count(), before);
  entry_table::AssertValid();
}

}  // namespace
}  // namespace assay::profiler
