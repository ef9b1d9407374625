// Profiles served from memory: assay::ProfileTo and assay_profile_to_fd
// (bytes parsed back with the generated protobuf classes: the test's own
// allocation site carries what it allocated), their refusals, and the pure
// delta builder of ?seconds=N profiles (snapshot::BuildDelta) on hand-made
// snapshots.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "assay/assay.h"
#include "assay/profiler.hpp"
#include "profiler/snapshot.h"
#include "proto/profile.pb.h"
#include "tests/gunzip_util.h"

extern "C" __attribute__((noinline, used)) void* assay_profile_to_test_site(size_t n) {
  void* p = malloc(n);
  asm volatile("" : : "r"(p) : "memory");
  return p;
}

namespace {

namespace pb = perftools::profiles;

// Sum of sample type `type` over samples whose stack names `function`.
int64_t SumAt(const pb::Profile& p, const std::string& type, const std::string& function) {
  int index = -1;
  for (int i = 0; i < p.sample_type_size(); ++i)
    if (p.string_table(static_cast<int>(p.sample_type(i).type())) == type) index = i;
  EXPECT_GE(index, 0) << type;
  std::map<uint64_t, std::string> fn_name;
  for (const pb::Function& f : p.function())
    fn_name[f.id()] = p.string_table(static_cast<int>(f.name()));
  std::map<uint64_t, bool> loc_named;
  for (const pb::Location& l : p.location())
    for (const pb::Line& line : l.line())
      if (fn_name[line.function_id()] == function) loc_named[l.id()] = true;
  int64_t sum = 0;
  for (const pb::Sample& s : p.sample()) {
    bool named = false;
    for (uint64_t id : s.location_id()) named = named || loc_named[id];
    if (named && index >= 0) sum += s.value(index);
  }
  return sum;
}

std::string DefaultType(const pb::Profile& p) {
  return p.string_table(static_cast<int>(p.default_sample_type()));
}

void ParseGz(const std::string& gz, pb::Profile* p) {
  ASSERT_GE(gz.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
  std::string raw;
  ASSERT_TRUE(Gunzip(gz, &raw)) << "not one whole gzip stream";
  ASSERT_TRUE(p->ParseFromString(raw));
}

constexpr int kBlocks = 64;
constexpr size_t kBlockBytes = 4096;

TEST(ProfileToUnprofiled, NothingProfiledIsENOENT) {
  // First in the file: no session has run in this process yet (under ctest
  // each test runs in a process of its own anyway).
  std::string out;
  EXPECT_EQ(assay::ProfileTo("heap", &out), ENOENT);
  EXPECT_EQ(assay_profile_to_fd("alloc", 1), ENOENT);
}

class ProfileTo : public testing::Test {
 protected:
  void SetUp() override {
    assay::ProfilerOptions o;
    o.rate = 1;  // every allocation: the site's totals are exact
    ASSERT_TRUE(assay::Start(o));
    assay::ResetAllocationProfile();  // earlier tests of this process counted at the same site
    for (int i = 0; i < kBlocks; ++i) blocks_.push_back(assay_profile_to_test_site(kBlockBytes));
  }
  void TearDown() override {
    for (void* p : blocks_) free(p);
    assay::Stop();
  }
  std::vector<void*> blocks_;
};

TEST_F(ProfileTo, HeapBytesHoldTheLiveSite) {
  std::string gz = "old contents";
  ASSERT_EQ(assay::ProfileTo("heap", &gz), 0);
  pb::Profile p;
  ParseGz(gz, &p);
  EXPECT_EQ(DefaultType(p), "inuse_space");
  EXPECT_EQ(SumAt(p, "inuse_space", "assay_profile_to_test_site"), kBlocks * int64_t{kBlockBytes});
  EXPECT_EQ(SumAt(p, "inuse_objects", "assay_profile_to_test_site"), kBlocks);
}

TEST_F(ProfileTo, AllocBytesDefaultToAllocSpaceAndCountFreedBlocks) {
  for (int i = 0; i < 10; ++i) free(assay_profile_to_test_site(kBlockBytes));
  std::string gz;
  ASSERT_EQ(assay::ProfileTo("alloc", &gz), 0);
  pb::Profile p;
  ParseGz(gz, &p);
  EXPECT_EQ(DefaultType(p), "alloc_space");
  EXPECT_EQ(SumAt(p, "alloc_objects", "assay_profile_to_test_site"), kBlocks + 10);
  EXPECT_EQ(SumAt(p, "inuse_objects", "assay_profile_to_test_site"), kBlocks);
}

TEST_F(ProfileTo, FdGetsTheSameKindOfBytes) {
  const int fd = memfd_create("assay-profile-to", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(assay_profile_to_fd("heap", fd), 0);
  const off_t size = lseek(fd, 0, SEEK_END);
  ASSERT_GT(size, 0);
  std::string gz(static_cast<size_t>(size), '\0');
  ASSERT_EQ(pread(fd, gz.data(), gz.size(), 0), size);
  close(fd);
  pb::Profile p;
  ParseGz(gz, &p);
  EXPECT_EQ(SumAt(p, "inuse_space", "assay_profile_to_test_site"), kBlocks * int64_t{kBlockBytes});
}

TEST_F(ProfileTo, RefusalsAreErrnoValues) {
  std::string out;
  EXPECT_EQ(assay::ProfileTo("leak", &out), EINVAL);
  EXPECT_EQ(assay::ProfileTo("peak", &out), EINVAL);
  EXPECT_EQ(assay::ProfileTo(nullptr, &out), EINVAL);
  EXPECT_EQ(assay::ProfileTo("heap", nullptr), EINVAL);
  EXPECT_EQ(assay_profile_to_fd("nonsense", 1), EINVAL);
  EXPECT_EQ(assay_profile_to_fd("heap", -1), EBADF);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  EXPECT_EQ(assay_profile_to_fd("heap", fds[0]), EBADF);  // the read end
  close(fds[0]);
  signal(SIGPIPE, SIG_IGN);  // as a server does; else the write's SIGPIPE ends the test
  EXPECT_EQ(assay_profile_to_fd("heap", fds[1]), EPIPE);  // nobody reads
  close(fds[1]);
}

// ---- BuildDelta on hand-made snapshots ----

namespace snap = assay::profiler::snapshot;
using assay::profiler::Entry;
using assay::profiler::Stack;

// A Stack with `frames` (Stack ends in a one-element array: room for more).
Stack* MakeStack(std::vector<uintptr_t> frames, const char* cache, double objects, double bytes) {
  void* mem = ::operator new (sizeof(Stack) + frames.size() * sizeof(uintptr_t),
                              std::align_val_t{alignof(Stack)});
  auto* s = new (mem) Stack{};
  s->depth = static_cast<uint32_t>(frames.size());
  s->cache = cache;
  s->counts[0].samples = objects > 0 ? 1 : 0;
  s->counts[0].objects = objects;
  s->counts[0].bytes = bytes;
  std::memcpy(s->frames, frames.data(), frames.size() * sizeof(uintptr_t));
  return s;
}

void AddLive(snap::Snapshot* s, Stack* st, double objects, double bytes, uint64_t thread) {
  Entry e{};
  e.stack = st;
  e.requested = static_cast<uint64_t>(bytes / objects);
  e.thread_id = thread;
  e.batch_size = 1;
  e.weight_objects = objects;
  e.weight_bytes = bytes;
  snap::AddEntry(s, e);
}

struct Vals {
  int64_t v[4];
  bool operator==(const Vals& o) const { return std::memcmp(v, o.v, sizeof(v)) == 0; }
};
std::ostream& operator<<(std::ostream& os, const Vals& x) {
  return os << "{" << x.v[0] << "," << x.v[1] << "," << x.v[2] << "," << x.v[3] << "}";
}

// The delta's samples by innermost frame and whether they carry a cache.
std::map<std::pair<uintptr_t, bool>, Vals> ByLeaf(const snap::Built& b) {
  std::map<std::pair<uintptr_t, bool>, Vals> m;
  for (size_t i = 0; i < b.data.nsamples; ++i) {
    const AssayProfileSample& s = b.data.samples[i];
    EXPECT_GE(s.depth, 1u);
    EXPECT_EQ(s.requested_bytes, -1);  // labels other than cache are dropped
    EXPECT_EQ(s.thread_id, 0);
    const uintptr_t leaf = b.data.frames[s.frame_offset];
    Vals v;
    std::memcpy(v.v, s.values, sizeof(v.v));
    EXPECT_TRUE(m.emplace(std::make_pair(leaf, s.cache != nullptr), v).second)
        << "two samples for leaf " << leaf;
  }
  return m;
}

TEST(BuildDelta, SubtractsCumulativeAndLivePerStackAcrossSnapshots) {
  static const char kCache[] = "objects";
  // Before: A allocated 10 (1000 B), 2 live (200 B) from two threads; B 5/500, 1 live.
  Stack* a0 = MakeStack({0xA1, 0xA2}, nullptr, 10, 1000);
  Stack* b0 = MakeStack({0xB1}, nullptr, 5, 500);
  snap::Snapshot before;
  before.clock.alloc_gen = 3;
  snap::AddStack(&before, *a0);
  snap::AddStack(&before, *b0);
  AddLive(&before, a0, 1, 100, 7);
  AddLive(&before, a0, 1, 100, 8);
  AddLive(&before, b0, 1, 100, 7);
  // After (other Stack objects, same frames): A 15/1600, 3 live (300 B);
  // B unchanged and none live; C (same frames as B, another cache) is new.
  Stack* a1 = MakeStack({0xA1, 0xA2}, nullptr, 15, 1600);
  Stack* b1 = MakeStack({0xB1}, nullptr, 5, 500);
  Stack* c1 = MakeStack({0xC1}, kCache, 4, 4000);
  Stack* b1c = MakeStack({0xB1}, kCache, 2, 64);
  snap::Snapshot after;
  after.clock.alloc_gen = 3;
  after.clock.rate = 4096;
  for (Stack* s : {a1, b1, c1, b1c}) snap::AddStack(&after, *s);
  AddLive(&after, a1, 3, 300, 9);
  AddLive(&after, c1, 1, 1000, 9);

  snap::Built b;
  snap::BuildDelta(before, after, "alloc", 123, 2000000000, &b);
  // By hand from the numbers above; B's no-cache sample: nothing allocated,
  // one block (100 B) fewer live; B with the cache: new, none live.
  const std::map<std::pair<uintptr_t, bool>, Vals> want = {
      {{0xA1, false}, {{5, 600, 1, 100}}},
      {{0xB1, false}, {{0, 0, -1, -100}}},
      {{0xB1, true}, {{2, 64, 0, 0}}},
      {{0xC1, true}, {{4, 4000, 1, 1000}}},
  };
  EXPECT_EQ(ByLeaf(b), want);
  for (size_t i = 0; i < b.data.nsamples; ++i) {
    if (b.data.samples[i].cache != nullptr) {
      EXPECT_STREQ(b.data.samples[i].cache, kCache);
    }
  }
  // A's frames are whole, in order.
  for (size_t i = 0; i < b.data.nsamples; ++i) {
    const AssayProfileSample& s = b.data.samples[i];
    if (b.data.frames[s.frame_offset] == 0xA1) {
      ASSERT_EQ(s.depth, 2u);
      EXPECT_EQ(b.data.frames[s.frame_offset + 1], 0xA2u);
    }
  }
  EXPECT_EQ(b.data.default_sample_type, 1);  // alloc_space
  EXPECT_EQ(b.data.duration_nanos, 2000000000);
  EXPECT_EQ(b.data.period, 4096);
  EXPECT_EQ(b.data.time_nanos, 123);
  for (Stack* s : {a0, b0, a1, b1, c1, b1c})
    ::operator delete (s, std::align_val_t{alignof(Stack)});
}

TEST(BuildDelta, AResetBetweenTakesTheLaterCumulativeAlone) {
  Stack* a0 = MakeStack({0xA1}, nullptr, 10, 1000);
  Stack* a1 = MakeStack({0xA1}, nullptr, 3, 300);  // counted afresh since the reset
  snap::Snapshot before, after;
  before.clock.alloc_gen = 1;
  after.clock.alloc_gen = 2;
  snap::AddStack(&before, *a0);
  snap::AddStack(&after, *a1);
  AddLive(&before, a0, 2, 200, 1);
  AddLive(&after, a1, 2, 200, 1);
  snap::Built b;
  snap::BuildDelta(before, after, "heap", 0, 1, &b);
  ASSERT_EQ(b.data.nsamples, 1u);
  EXPECT_EQ((Vals{{b.data.samples[0].values[0], b.data.samples[0].values[1],
                   b.data.samples[0].values[2], b.data.samples[0].values[3]}}),
            (Vals{{3, 300, 0, 0}}));
  EXPECT_EQ(b.data.default_sample_type, 3);  // inuse_space for heap
  // Nothing changed at all: no sample.
  snap::Built same;
  snap::BuildDelta(after, after, "heap", 0, 1, &same);
  EXPECT_EQ(same.data.nsamples, 0u);
  ::operator delete (a0, std::align_val_t{alignof(Stack)});
  ::operator delete (a1, std::align_val_t{alignof(Stack)});
}

}  // namespace
