// The profiler's sharded chained hash table (profiler/sharded_table.h) on its
// own, with nodes and hashes of the test's choosing: insert, lookup and erase
// across bucket growth, many keys in one shard, ForEach unlinking as it goes,
// and Valid/AssertValid catching a node its hash does not place there and a
// wrong count.
#include "profiler/sharded_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace assay::profiler {
namespace {

struct Node {
  uint64_t key;
  Node* link;
  bool visited;
};

// Spread keys: a multiplicative hash, the top 2 bits pick one of 4 shards.
struct SpreadTraits {
  using Node = profiler::Node;
  static constexpr Node* Node::*kNext = &Node::link;
  static constexpr size_t kShards = 4;
  static constexpr size_t kInitialBuckets = 8;
  static uint64_t HashOf(const Node* n) { return Hash(n->key); }
  static uint64_t Hash(uint64_t key) { return (key + 1) * 0x9E3779B97F4A7C15ull; }
  static size_t ShardOf(uint64_t h) { return h >> 62; }
  static size_t BucketOf(uint64_t h, size_t n) { return h & (n - 1); }
};

// The hash is the key itself: keys below 2^62 all land in shard 0.
struct SkewedTraits : SpreadTraits {
  static uint64_t HashOf(const Node* n) { return n->key; }
  static uint64_t Hash(uint64_t key) { return key; }
};

template <typename Traits>
struct Fixture {
  using Table = ShardedTable<Traits>;
  std::unique_ptr<Table> table = std::make_unique<Table>();
  std::vector<Node> nodes;

  explicit Fixture(size_t n) : nodes(n) {
    for (size_t i = 0; i < n; ++i) nodes[i] = Node{i * 7 + 3, nullptr, false};
  }
  Node* Lookup(uint64_t key) {
    return table->Lookup(Traits::Hash(key), [key](const Node* x) { return x->key == key; });
  }
  Node* Erase(uint64_t key) {
    return table->Erase(Traits::Hash(key), [key](const Node* x) { return x->key == key; });
  }
};

// Every shard's bucket array is a power of two, at least the initial size
// once used, and holds no more nodes than buckets (the growth rule).
template <typename Table>
void ExpectShardShapes(Table& t) {
  for (size_t i = 0; i < Table::kShards; ++i) {
    const auto& s = t.shards()[i];
    if (s.nbuckets == 0) {
      EXPECT_EQ(s.count, 0u) << "shard " << i;
      continue;
    }
    EXPECT_EQ(s.nbuckets & (s.nbuckets - 1), 0u) << "shard " << i;
    EXPECT_GE(s.nbuckets, Table::kInitialBuckets) << "shard " << i;
    EXPECT_LE(s.count, s.nbuckets) << "shard " << i;
  }
}

TEST(ShardedTable, InsertLookupEraseAcrossGrowth) {
  constexpr size_t kNodes = 20000;  // every shard doubles its 8 buckets ~10 times
  Fixture<SpreadTraits> f(kNodes);
  auto& t = *f.table;
  EXPECT_EQ(t.Count(), 0u);
  EXPECT_EQ(f.Lookup(3), nullptr);
  EXPECT_EQ(f.Erase(3), nullptr) << "erase from a shard with no buckets";
  for (size_t i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(t.Insert(&f.nodes[i]));
    // Everything inserted so far is still found after each growth.
    if ((i & (i + 1)) == 0) {
      for (size_t j = 0; j <= i; ++j) ASSERT_EQ(f.Lookup(f.nodes[j].key), &f.nodes[j]) << j;
      ASSERT_TRUE(t.Valid());
    }
  }
  EXPECT_EQ(t.Count(), kNodes);
  size_t shards_used = 0;
  for (size_t i = 0; i < SpreadTraits::kShards; ++i) {
    shards_used += t.shards()[i].count > 0;
    EXPECT_GE(t.shards()[i].nbuckets, 1024u) << "shard " << i << " did not grow";
  }
  EXPECT_EQ(shards_used, SpreadTraits::kShards);
  ExpectShardShapes(t);
  const char* why = nullptr;
  EXPECT_TRUE(t.Valid(&why)) << why;

  // A key that was never inserted (keys are 3 mod 7).
  EXPECT_EQ(f.Lookup(4), nullptr);
  EXPECT_EQ(f.Erase(4), nullptr);
  for (size_t i = 1; i < kNodes; i += 2) ASSERT_EQ(f.Erase(f.nodes[i].key), &f.nodes[i]) << i;
  EXPECT_EQ(t.Count(), kNodes / 2);
  for (size_t i = 0; i < kNodes; ++i) {
    ASSERT_EQ(f.Lookup(f.nodes[i].key), i % 2 == 0 ? &f.nodes[i] : nullptr) << i;
  }
  for (size_t i = 1; i < kNodes; i += 2) EXPECT_EQ(f.Erase(f.nodes[i].key), nullptr) << i;
  EXPECT_TRUE(t.Valid(&why)) << why;

  // Back in: the shards do not shrink, every node is found again.
  for (size_t i = 1; i < kNodes; i += 2) ASSERT_TRUE(t.Insert(&f.nodes[i]));
  EXPECT_EQ(t.Count(), kNodes);
  for (size_t i = 0; i < kNodes; ++i) ASSERT_EQ(f.Lookup(f.nodes[i].key), &f.nodes[i]) << i;
  EXPECT_TRUE(t.Valid(&why)) << why;
}

TEST(ShardedTable, ManyKeysInOneShard) {
  constexpr size_t kNodes = 5000;
  Fixture<SkewedTraits> f(kNodes);
  auto& t = *f.table;
  for (Node& n : f.nodes) ASSERT_TRUE(t.Insert(&n));
  EXPECT_EQ(t.shards()[0].count, kNodes);
  EXPECT_GE(t.shards()[0].nbuckets, kNodes);
  for (size_t i = 1; i < SkewedTraits::kShards; ++i) {
    EXPECT_EQ(t.shards()[i].count, 0u);
    EXPECT_EQ(t.shards()[i].nbuckets, 0u) << "an unused shard got buckets";
  }
  ExpectShardShapes(t);
  for (Node& n : f.nodes) ASSERT_EQ(f.Lookup(n.key), &n);
  for (size_t i = 0; i < kNodes; i += 3) ASSERT_EQ(f.Erase(f.nodes[i].key), &f.nodes[i]);
  for (size_t i = 0; i < kNodes; ++i) {
    ASSERT_EQ(f.Lookup(f.nodes[i].key), i % 3 == 0 ? nullptr : &f.nodes[i]) << i;
  }
  EXPECT_EQ(t.Count(), kNodes - (kNodes + 2) / 3);
  const char* why = nullptr;
  EXPECT_TRUE(t.Valid(&why)) << why;
}

TEST(ShardedTable, ForEachVisitsEveryNodeOnceAndMayUnlinkIt) {
  constexpr size_t kNodes = 3000;
  Fixture<SpreadTraits> f(kNodes);
  using Table = Fixture<SpreadTraits>::Table;
  auto& t = *f.table;
  for (Node& n : f.nodes) ASSERT_TRUE(t.Insert(&n));
  size_t visits = 0;
  t.ForEach([&](Table::Shard& s, Node* n) {
    EXPECT_FALSE(n->visited) << "key " << n->key << " visited twice";
    n->visited = true;
    ++visits;
    if (n->key % 2 == 0) Table::UnlinkLocked(s, n);
  });
  EXPECT_EQ(visits, kNodes);
  for (const Node& n : f.nodes) EXPECT_TRUE(n.visited) << n.key;
  size_t even = 0;
  for (const Node& n : f.nodes) even += n.key % 2 == 0;
  EXPECT_EQ(t.Count(), kNodes - even);
  for (const Node& n : f.nodes) {
    ASSERT_EQ(f.Lookup(n.key) != nullptr, n.key % 2 != 0) << n.key;
  }
  const char* why = nullptr;
  EXPECT_TRUE(t.Valid(&why)) << why;
}

TEST(ShardedTableDeathTest, ValidCatchesAMisplacedNodeAndAWrongCount) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  constexpr size_t kNodes = 200;
  Fixture<SpreadTraits> f(kNodes);
  auto& t = *f.table;
  for (Node& n : f.nodes) ASSERT_TRUE(t.Insert(&n));
  const char* why = nullptr;
  ASSERT_TRUE(t.Valid(&why)) << why;

  // A node whose key changed after insertion sits where its new hash does
  // not lead: in another bucket of its shard, or in another shard.
  Node& moved = f.nodes[17];
  const uint64_t key = moved.key;
  const uint64_t old_hash = SpreadTraits::Hash(key);
  const size_t nbuckets = t.ShardFor(old_hash).nbuckets;
  uint64_t other = key + 1;
  while (SpreadTraits::BucketOf(SpreadTraits::Hash(other), nbuckets) ==
             SpreadTraits::BucketOf(old_hash, nbuckets) &&
         SpreadTraits::ShardOf(SpreadTraits::Hash(other)) == SpreadTraits::ShardOf(old_hash)) {
    ++other;
  }
  moved.key = other;
  EXPECT_FALSE(t.Valid(&why));
  ASSERT_NE(why, nullptr);
  EXPECT_NE(std::string(why).find("does not name"), std::string::npos) << why;
  EXPECT_DEATH(t.AssertValid(), "sharded table invalid: a node is in a (shard|bucket) its hash");
  moved.key = key;
  EXPECT_TRUE(t.Valid(&why)) << why;
  t.AssertValid();

  // A count that disagrees with the chains, either way.
  auto& s = t.ShardFor(old_hash);
  s.count--;
  EXPECT_FALSE(t.Valid(&why));
  EXPECT_STREQ(why, "a shard holds more nodes than its count");
  EXPECT_DEATH(t.AssertValid(), "sharded table invalid: a shard holds more nodes");
  s.count += 2;
  EXPECT_FALSE(t.Valid(&why));
  EXPECT_STREQ(why, "a shard holds fewer nodes than its count");
  s.count--;
  EXPECT_TRUE(t.Valid(&why)) << why;
}

}  // namespace
}  // namespace assay::profiler
