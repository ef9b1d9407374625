// Object caches (<assay/cache.h>): constructors run once per fresh object,
// objects come back constructed, a failing constructor gives NULL, reap runs
// destructors, magazines move objects across threads, destroy takes back
// what other threads hold, guard pages fault on an overrun, and caches show
// in assay_stats_print.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "assay/assay.h"
#include "assay/cache.h"

namespace {

struct Counts {
  std::atomic<int> ctor{0};
  std::atomic<int> dtor{0};
  std::atomic<int> fail_after{1 << 30};  // constructors fail once this many ran
};

struct Object {
  uint64_t magic;
  char payload[200];
};
constexpr uint64_t kConstructed = 0xC0175EC7EDull;

int Ctor(void* obj, void* arg) {
  auto* c = static_cast<Counts*>(arg);
  if (c->ctor.load() >= c->fail_after.load()) return -1;
  c->ctor++;
  static_cast<Object*>(obj)->magic = kConstructed;
  return 0;
}

void Dtor(void* obj, void* arg) {
  EXPECT_EQ(static_cast<Object*>(obj)->magic, kConstructed);
  static_cast<Object*>(obj)->magic = 0;
  static_cast<Counts*>(arg)->dtor++;
}

TEST(ObjectCache, ConstructsOnceAndReusesConstructedObjects) {
  Counts counts;
  assay_cache_t* c = assay_cache_create("reuse", sizeof(Object), 0, Ctor, Dtor, &counts, 0);
  ASSERT_NE(c, nullptr);
  std::vector<void*> objs;
  for (int i = 0; i < 100; ++i) objs.push_back(assay_cache_alloc(c, 0));
  EXPECT_EQ(counts.ctor, 100);
  std::set<void*> first(objs.begin(), objs.end());
  EXPECT_EQ(first.size(), 100u);
  for (void* o : objs) {
    EXPECT_EQ(static_cast<Object*>(o)->magic, kConstructed);
    static_cast<Object*>(o)->payload[0] = 'x';  // state a user leaves behind
    assay_cache_free(c, o);
  }
  for (int round = 0; round < 10; ++round) {
    objs.clear();
    for (int i = 0; i < 100; ++i) objs.push_back(assay_cache_alloc(c, 0));
    for (void* o : objs) {
      EXPECT_TRUE(first.count(o)) << "a fresh object instead of a cached one";
      EXPECT_EQ(static_cast<Object*>(o)->magic, kConstructed);
    }
    for (void* o : objs) assay_cache_free(c, o);
  }
  EXPECT_EQ(counts.ctor, 100) << "constructors ran again for reused objects";
  EXPECT_EQ(counts.dtor, 0);
  assay_cache_destroy(c);
  EXPECT_EQ(counts.dtor, 100);
}

TEST(ObjectCache, FailingConstructorGivesNull) {
  Counts counts;
  counts.fail_after = 3;
  assay_cache_t* c = assay_cache_create("failing", 64, 0, Ctor, Dtor, &counts, 0);
  ASSERT_NE(c, nullptr);
  void* a = assay_cache_alloc(c, 0);
  void* b = assay_cache_alloc(c, 0);
  void* d = assay_cache_alloc(c, 0);
  EXPECT_NE(a, nullptr);
  EXPECT_NE(b, nullptr);
  EXPECT_NE(d, nullptr);
  EXPECT_EQ(assay_cache_alloc(c, 0), nullptr);
  assay_cache_free(c, a);
  EXPECT_EQ(assay_cache_alloc(c, 0), a) << "a constructed free object still serves";
  assay_cache_free(c, a);
  assay_cache_free(c, b);
  assay_cache_free(c, d);
  assay_cache_destroy(c);
  EXPECT_EQ(counts.dtor, 3);
}

TEST(ObjectCache, ReapRunsDestructorsOfUnusedObjects) {
  Counts counts;
  assay_cache_t* c = assay_cache_create("reaped", sizeof(Object), 64, Ctor, Dtor, &counts, 0);
  ASSERT_NE(c, nullptr);
  std::vector<void*> objs;
  for (int i = 0; i < 500; ++i) {
    objs.push_back(assay_cache_alloc(c, 0));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(objs.back()) % 64, 0u);
  }
  void* kept = objs.back();
  objs.pop_back();
  for (void* o : objs) assay_cache_free(c, o);
  const size_t reaped = assay_cache_reap();
  EXPECT_GE(reaped, 499u);
  EXPECT_EQ(counts.dtor, 499) << "every free object destroyed, the live one kept";
  EXPECT_EQ(static_cast<Object*>(kept)->magic, kConstructed);
  void* fresh = assay_cache_alloc(c, 0);
  EXPECT_EQ(counts.ctor, 501) << "after a reap, objects are constructed afresh";
  assay_cache_free(c, fresh);
  assay_cache_free(c, kept);
  assay_cache_destroy(c);
  EXPECT_EQ(counts.dtor, 501);
}

TEST(ObjectCache, ThreadsShareObjectsThroughTheDepot) {
  Counts counts;
  assay_cache_t* c = assay_cache_create("threads", sizeof(Object), 0, Ctor, Dtor, &counts, 0);
  ASSERT_NE(c, nullptr);
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<void*> mine;
      for (int r = 0; r < kRounds; ++r) {
        for (int i = 0; i < 50; ++i) {
          void* o = assay_cache_alloc(c, 0);
          if (o == nullptr || static_cast<Object*>(o)->magic != kConstructed) bad++;
          mine.push_back(o);
        }
        for (void* o : mine) assay_cache_free(c, o);
        mine.clear();
      }
    });
  }
  for (auto& th : threads) th.join();  // exiting threads give their magazines back
  EXPECT_EQ(bad, 0);
  EXPECT_LE(counts.ctor, kThreads * (50 + 64)) << "objects were not reused across rounds";
  // Objects freed by one thread serve another.
  std::vector<void*> handed(300);
  std::thread producer([&] {
    for (auto& o : handed) o = assay_cache_alloc(c, 0);
  });
  producer.join();
  for (void* o : handed) assay_cache_free(c, o);
  assay_cache_destroy(c);
  EXPECT_EQ(counts.dtor.load(), counts.ctor.load()) << "destroy missed objects";
}

TEST(ObjectCache, DestroyTakesBackObjectsInOtherThreadsMagazines) {
  Counts counts;
  assay_cache_t* c = assay_cache_create("parked", 48, 0, Ctor, Dtor, &counts, 0);
  ASSERT_NE(c, nullptr);
  std::atomic<bool> freed{false};
  std::atomic<bool> done{false};
  std::thread parked([&] {
    std::vector<void*> v;
    for (int i = 0; i < 10; ++i) v.push_back(assay_cache_alloc(c, 0));
    for (void* o : v) assay_cache_free(c, o);  // stay in this thread's magazine
    freed = true;
    while (!done) std::this_thread::yield();
  });
  while (!freed) std::this_thread::yield();
  assay_cache_destroy(c);
  EXPECT_EQ(counts.dtor, 10);
  done = true;
  parked.join();
}

TEST(ObjectCache, GuardPagesFaultOnOverrun) {
  Counts counts;
  assay_cache_t* c =
      assay_cache_create("stacks", 32 * 1024, 0, Ctor, Dtor, &counts, ASSAY_CACHE_GUARD);
  ASSERT_NE(c, nullptr);
  char* o = static_cast<char*>(assay_cache_alloc(c, 0));
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(o) % 4096, 0u);
  memset(o + sizeof(uint64_t), 7, 32 * 1024 - sizeof(uint64_t));  // the whole buffer is usable
  for (int direction : {+1, -1}) {
    fflush(nullptr);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      volatile char* p = direction > 0 ? o + 32 * 1024 : o - 1;  // one byte past either end
      *p = 1;
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV)
        << "the " << (direction > 0 ? "overrun" : "underrun") << " did not fault";
  }
  assay_cache_free(c, o);
  assay_cache_destroy(c);
  EXPECT_EQ(counts.dtor, 1);
}

TEST(ObjectCache, AppearsInStats) {
  Counts counts;
  assay_cache_t* c = assay_cache_create("stats-visible", 96, 0, Ctor, Dtor, &counts, 0);
  ASSERT_NE(c, nullptr);
  void* o = assay_cache_alloc(c, 0);
  char* buf = nullptr;
  size_t len = 0;
  FILE* f = open_memstream(&buf, &len);
  assay_stats_print(f);
  fclose(f);
  const std::string text(buf, len);
  free(buf);
  EXPECT_NE(text.find("cache stats-visible"), std::string::npos) << text;
  assay_cache_free(c, o);
  assay_cache_destroy(c);
}

TEST(ObjectCache, RejectsBadArguments) {
  EXPECT_EQ(assay_cache_create("zero", 0, 0, nullptr, nullptr, nullptr, 0), nullptr);
  EXPECT_EQ(assay_cache_create("align", 64, 24, nullptr, nullptr, nullptr, 0), nullptr);
  EXPECT_EQ(assay_cache_create("flags", 64, 0, nullptr, nullptr, nullptr, 0x80), nullptr);
}

}  // namespace
