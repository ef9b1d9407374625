// Object caches in heap profiles: every sampled block an assay_cache
// allocates for itself carries the pprof label cache=NAME, in the heap
// (live) profile and in the cumulative alloc profile (also after the cache
// is destroyed); two caches served by one call path do not merge; ordinary
// mallocs carry no cache label. The profiles are read back with
// `go tool pprof -raw`. Also: cache names are interned once, stably.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "assay/assay.h"
#include "assay/cache.h"
#include "assay/profiler.hpp"
#include "profiler/profiler.h"

namespace {

constexpr size_t kObjectSize = 200;  // cache objects (requested bytes)
constexpr size_t kMallocSize = 333;  // ordinary mallocs
constexpr size_t kCount = 32768;     // objects per cache, and ordinary mallocs
constexpr size_t kRate = 4096;       // ~1560 sampled blocks per group: ~2.6% relative error

// One sample of `go tool pprof -raw`: its four values and its labels.
struct Sample {
  int64_t values[4] = {};  // alloc_objects, alloc_space, inuse_objects, inuse_space
  std::map<std::string, std::string> labels;
  std::string stack;  // location ids
};

std::string Shell(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  *status = pclose(p);
  return out;
}

class CacheLabels : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/assay-cache-labels-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // go tool pprof keeps state under $HOME: give it one of its own.
    env_ = "HOME=" + dir_ + " PPROF_TMPDIR=" + dir_ + " GOTOOLCHAIN=local GOFLAGS= ";
    // Without go the labels cannot be read back: that is a failure of the
    // test environment, not a pass (tools/setup installs golang-go).
    int status = 0;
    const std::string help = Shell(env_ + "go tool pprof -h 2>&1", &status);
    ASSERT_EQ(status, 0) << "`go tool pprof` does not run (tools/setup installs golang-go): "
                         << help.substr(0, 400);
  }
  void TearDown() override {
    int status;
    if (!dir_.empty()) Shell("rm -rf " + dir_, &status);
  }

  // Writes a profile of `kind` and returns its samples.
  std::vector<Sample> Profile(const char* kind) {
    const std::string path = dir_ + "/" + kind + ".pb.gz";
    EXPECT_EQ(assay::WriteProfile(kind, path.c_str()), 0);
    int status = 0;
    const std::string raw =
        Shell(env_ + "go tool pprof -symbolize=none -raw " + path + " 2>&1", &status);
    EXPECT_EQ(status, 0) << raw;
    return Parse(raw);
  }

  // The Samples: section of -raw: a line "v v v v: locations" per sample,
  // followed by indented label lines "key:[value]".
  static std::vector<Sample> Parse(const std::string& raw) {
    std::vector<Sample> out;
    bool in_samples = false;
    size_t pos = 0;
    while (pos < raw.size()) {
      size_t end = raw.find('\n', pos);
      if (end == std::string::npos) end = raw.size();
      const std::string line = raw.substr(pos, end - pos);
      pos = end + 1;
      if (line.rfind("Samples:", 0) == 0) {
        in_samples = true;
        continue;
      }
      if (!in_samples) continue;
      if (line.rfind("Locations", 0) == 0 || line.rfind("Mappings", 0) == 0) break;
      Sample s;
      if (std::sscanf(line.c_str(), " %ld %ld %ld %ld:", &s.values[0], &s.values[1], &s.values[2],
                      &s.values[3]) == 4 &&
          line.find(':') != std::string::npos) {
        s.stack = line.substr(line.find(':') + 1);
        out.push_back(s);
        continue;
      }
      // Label lines: one or more "key:[value]" items.
      if (out.empty()) continue;
      for (size_t i = 0; (i = line.find(":[", i)) != std::string::npos;) {
        size_t k = line.rfind(' ', i);
        k = k == std::string::npos ? 0 : k + 1;
        const size_t close = line.find(']', i);
        if (close == std::string::npos) break;
        const std::string key = line.substr(k, i - k);
        std::string value = line.substr(i + 2, close - i - 2);
        out.back().labels[key] = value;
        i = close;
      }
    }
    return out;
  }

  // Sum of value `col` over the samples whose label `key` is `value` ("" =
  // no such label).
  static int64_t Sum(const std::vector<Sample>& samples, int col, const std::string& key,
                     const std::string& value) {
    int64_t sum = 0;
    for (const Sample& s : samples) {
      auto it = s.labels.find(key);
      const std::string have = it == s.labels.end() ? "" : it->second;
      if (have == value) sum += s.values[col];
    }
    return sum;
  }

  std::string dir_;
  std::string env_;
};

// kCount objects from each cache, alternately, through one call site: the
// two caches' sampled blocks have identical stacks.
__attribute__((noinline)) void AllocFromBoth(assay_cache_t* const caches[2],
                                             std::vector<void*>* const out[2]) {
  for (size_t i = 0; i < 2 * kCount; ++i) {
    void* p = assay_cache_alloc(caches[i & 1], 0);
    ASSERT_NE(p, nullptr);
    out[i & 1]->push_back(p);
  }
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void MallocMany(std::vector<void*>* out) {
  for (size_t i = 0; i < kCount; ++i) {
    void* p = malloc(kMallocSize);
    ASSERT_NE(p, nullptr);
    out->push_back(p);
  }
  asm volatile("" ::: "memory");
}

void ExpectNear(int64_t got, double want, const char* what) {
  std::printf("  %s: %lld (expected about %.0f)\n", what, static_cast<long long>(got), want);
  EXPECT_GT(static_cast<double>(got), 0.8 * want) << what;
  EXPECT_LT(static_cast<double>(got), 1.25 * want) << what;
}

TEST_F(CacheLabels, SampledCacheBlocksCarryTheirCacheName) {
  assay::ProfilerOptions o;
  o.rate = kRate;
  o.seed = 12345;
  ASSERT_TRUE(assay::Start(o));
  assay_cache_t* a = assay_cache_create("labels-a", kObjectSize, 0, nullptr, nullptr, nullptr, 0);
  assay_cache_t* b = assay_cache_create("labels-b", kObjectSize, 0, nullptr, nullptr, nullptr, 0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::vector<void*> objs_a, objs_b, plain;
  objs_a.reserve(kCount);
  objs_b.reserve(kCount);
  plain.reserve(kCount);
  assay_cache_t* const caches[2] = {a, b};
  std::vector<void*>* const objs[2] = {&objs_a, &objs_b};
  AllocFromBoth(caches, objs);
  MallocMany(&plain);

  const double cache_bytes = static_cast<double>(kCount * kObjectSize);
  const double malloc_bytes = static_cast<double>(kCount * kMallocSize);
  {
    SCOPED_TRACE("heap profile");
    const std::vector<Sample> heap = Profile("heap");
    ASSERT_FALSE(heap.empty());
    ExpectNear(Sum(heap, 3, "cache", "labels-a"), cache_bytes, "inuse_space of cache=labels-a");
    ExpectNear(Sum(heap, 3, "cache", "labels-b"), cache_bytes, "inuse_space of cache=labels-b");
    ExpectNear(Sum(heap, 2, "cache", "labels-a"), kCount, "inuse_objects of cache=labels-a");
    // The ordinary mallocs: all of them without a cache label.
    int64_t labelled_plain = 0;
    for (const Sample& s : heap) {
      auto bytes = s.labels.find("bytes");
      if (bytes == s.labels.end() || bytes->second.rfind(std::to_string(kMallocSize), 0) != 0) {
        continue;
      }
      if (s.labels.count("cache") != 0) labelled_plain += s.values[3];
    }
    EXPECT_EQ(labelled_plain, 0);
    int64_t plain_bytes = 0;
    for (const Sample& s : heap) {
      auto bytes = s.labels.find("bytes");
      if (bytes != s.labels.end() && bytes->second.rfind(std::to_string(kMallocSize), 0) == 0) {
        plain_bytes += s.values[3];
      }
    }
    ExpectNear(plain_bytes, malloc_bytes, "inuse_space of the plain mallocs");
    // Every cache-labelled sample is one of the two caches' objects, and
    // the two caches' samples have the same stack (kept apart by the label).
    std::map<std::string, std::string> stack_of;
    for (const Sample& s : heap) {
      auto it = s.labels.find("cache");
      if (it == s.labels.end()) continue;
      EXPECT_TRUE(it->second == "labels-a" || it->second == "labels-b") << it->second;
      stack_of[it->second] = s.stack;
    }
    ASSERT_EQ(stack_of.size(), 2u);
    EXPECT_EQ(stack_of["labels-a"], stack_of["labels-b"]);
  }

  // Free everything and destroy the caches: the cumulative profile still
  // names them (their names outlive them).
  for (void* p : objs_a) assay_cache_free(a, p);
  for (void* p : objs_b) assay_cache_free(b, p);
  for (void* p : plain) free(p);
  assay_cache_destroy(a);
  assay_cache_destroy(b);
  {
    SCOPED_TRACE("alloc profile after destroy");
    const std::vector<Sample> alloc = Profile("alloc");
    // Objects, plus the magazines the frees needed (272 bytes per 32 objects).
    const double with_magazines = cache_bytes * (1.0 + 272.0 / (32.0 * kObjectSize));
    ExpectNear(Sum(alloc, 1, "cache", "labels-a"), with_magazines, "alloc_space of labels-a");
    ExpectNear(Sum(alloc, 1, "cache", "labels-b"), with_magazines, "alloc_space of labels-b");
    EXPECT_LT(Sum(alloc, 3, "cache", "labels-a"), static_cast<int64_t>(cache_bytes / 20))
        << "inuse_space of labels-a after destroy";
  }
  assay::Stop();
}

TEST(CacheNames, InternedOnceAndStable) {
  const char* a = assay::profiler::InternCacheName("intern-test");
  ASSERT_NE(a, nullptr);
  std::string same = "intern-test";
  EXPECT_EQ(assay::profiler::InternCacheName(same.c_str()), a);
  EXPECT_NE(assay::profiler::InternCacheName("intern-test2"), a);
  EXPECT_STREQ(a, "intern-test");
  // Names are kept to 63 bytes, as assay_cache_create keeps them.
  const std::string long_name(100, 'x');
  const char* l = assay::profiler::InternCacheName(long_name.c_str());
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(std::strlen(l), 63u);
  EXPECT_EQ(assay::profiler::InternCacheName(std::string(63, 'x').c_str()), l);
  // A cache's name outlives it.
  assay_cache_t* c = assay_cache_create("intern-test", 64, 0, nullptr, nullptr, nullptr, 0);
  ASSERT_NE(c, nullptr);
  assay_cache_destroy(c);
  EXPECT_STREQ(a, "intern-test");
}

TEST(CacheNames, StatsListCachesByName) {
  assay_cache_t* c = assay_cache_create("stats-by-name", 48, 0, nullptr, nullptr, nullptr, 0);
  ASSERT_NE(c, nullptr);
  void* p = assay_cache_alloc(c, 0);
  ASSERT_NE(p, nullptr);
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  ASSERT_NE(f, nullptr);
  assay_stats_print(f);
  fclose(f);
  EXPECT_NE(std::strstr(buf, "cache stats-by-name"), nullptr) << buf;
  free(buf);
  assay_cache_free(c, p);
  assay_cache_destroy(c);
}

}  // namespace
