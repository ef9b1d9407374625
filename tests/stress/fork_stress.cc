// fork() while other threads allocate: 4 threads malloc/free continuously while the main thread
// forks 50 times (20 with --smoke); each child allocates, verifies and frees blocks of every
// regime (and from a new thread) and must exit 0. A child that deadlocks dies by SIGALRM.
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "assay/assay.h"
#include "tests/stress/stress_util.h"

namespace {

using assay_test::kKiB;
using assay_test::kMiB;
constexpr int kWorkers = 4;

// Async-signal-safe failure report (usable in a child of a threaded parent).
[[noreturn]] void Die(const char* what, int code) {
  assay_test::FailSignalSafe("fork_stress", what, code);
}

size_t RandomSize(std::mt19937_64& rng) {
  const uint64_t r = rng() % 1000;
  if (r < 800) return 8 + rng() % 1017;                    // small
  if (r < 950) return 1 * kKiB + rng() % (255 * kKiB);     // small, bigger classes
  if (r < 990) return 256 * kKiB + rng() % (1792 * kKiB);  // large
  return 2 * kMiB + 1 + rng() % (6 * kMiB);                // huge
}

// Pattern in the first and last 512 bytes and one word per 4 KiB (blocks of
// up to 128 whole words: all of them). No tail bytes.
constexpr assay_test::Pattern kPattern = {assay_test::WholeWords(128), 64, 512, nullptr};

void Stamp(void* p, size_t n, uint64_t seed) { assay_test::StampPattern(kPattern, p, n, seed); }

bool Intact(const void* p, size_t n, uint64_t seed) {
  return assay_test::FindPatternMismatch(kPattern, p, n, n, seed) == assay_test::kPatternIntact;
}

struct Block {
  void* p = nullptr;
  size_t n = 0;
  uint64_t seed = 0;
};

// One step of a random malloc/free workload over `slots`.
void Step(std::vector<Block>& slots, std::mt19937_64& rng, uint64_t* next_seed) {
  Block& b = slots[rng() % slots.size()];
  if (b.p != nullptr) {
    if (!Intact(b.p, b.n, b.seed)) Die("block corrupted", 3);
    free(b.p);
    b.p = nullptr;
  } else {
    b.n = RandomSize(rng);
    b.p = malloc(b.n);
    if (b.p == nullptr) Die("malloc returned NULL", 4);
    b.seed = (*next_seed)++;
    Stamp(b.p, b.n, b.seed);
  }
}

void FreeAll(std::vector<Block>& slots) {
  for (Block& b : slots) {
    if (b.p == nullptr) continue;
    if (!Intact(b.p, b.n, b.seed)) Die("block corrupted", 3);
    free(b.p);
    b.p = nullptr;
  }
}

// The child's work: blocks of every regime, the parent's main-thread blocks,
// and a thread of its own. Exits 0 on success.
[[noreturn]] void ChildMain(uint64_t fork_index, std::vector<Block>& inherited, int ops) {
  alarm(60);  // a deadlock in the allocator fails the test instead of hanging it
  // The only thread: the state fork left (other threads' caches orphaned).
  assay_test::CheckHeap("fork_stress", assay_test::HeapScope::kAllThreads);
  for (const Block& b : inherited) {
    if (!Intact(b.p, b.n, b.seed)) Die("child: inherited block corrupted", 5);
  }
  std::mt19937_64 rng(0xf0c0000 + fork_index);
  uint64_t next_seed = 1000000;
  std::vector<Block> slots(64);
  for (int i = 0; i < ops; ++i) Step(slots, rng, &next_seed);
  // Huge blocks explicitly, and realloc across regimes.
  for (size_t n : {3 * kMiB, 9 * kMiB}) {
    void* p = malloc(n);
    if (p == nullptr) Die("child: huge malloc returned NULL", 6);
    Stamp(p, n, 42);
    void* q = realloc(p, n * 2);
    if (q == nullptr || !Intact(q, n, 42)) Die("child: huge realloc lost contents", 7);
    free(q);
  }
  // A thread of the child allocates too (the thread-cache registry after fork).
  std::atomic<bool> thread_ok{false};
  std::thread t([&] {
    std::mt19937_64 trng(0xf0c1000 + fork_index);
    std::vector<Block> tslots(32);
    uint64_t tseed = 2000000;
    for (int i = 0; i < 1000; ++i) Step(tslots, trng, &tseed);
    FreeAll(tslots);
    thread_ok = true;
  });
  t.join();
  if (!thread_ok) Die("child: thread failed", 8);
  FreeAll(slots);
  for (Block& b : inherited) free(b.p);
  assay_test::CheckHeap("fork_stress", assay_test::HeapScope::kAllThreads);
  _exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  const bool smoke = argc > 1 && strcmp(argv[1], "--smoke") == 0;
  const int forks = smoke ? 20 : 50;
  const int child_ops = smoke ? 3000 : 6000;
  if (assay_version() == nullptr) Die("not linked against assay", 1);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> worker_ops{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937_64 rng(0xf0f0f000 + static_cast<uint64_t>(w));
      std::vector<Block> slots(128);
      uint64_t seed = static_cast<uint64_t>(w) << 32;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 64; ++i) Step(slots, rng, &seed);
        if (worker_ops.fetch_add(64, std::memory_order_relaxed) % (64 * 1024) == 0) {
          assay_test::CheckHeap("fork_stress", assay_test::HeapScope::kOwnThread);
        }
      }
      FreeAll(slots);
    });
  }

  std::mt19937_64 rng(0xf0f01234);
  std::vector<Block> inherited(48);
  uint64_t seed = 1;
  for (Block& b : inherited) {
    b.n = RandomSize(rng);
    b.p = malloc(b.n);
    if (b.p == nullptr) Die("malloc returned NULL", 4);
    b.seed = seed++;
    Stamp(b.p, b.n, b.seed);
  }

  int failures = 0;
  for (int i = 0; i < forks; ++i) {
    // Let the workers get going between forks.
    const timespec pause = {0, 2000000 + static_cast<long>(rng() % 8000000)};
    nanosleep(&pause, nullptr);
    const pid_t pid = fork();
    if (pid < 0) Die("fork failed", 1);
    if (pid == 0) ChildMain(static_cast<uint64_t>(i), inherited, child_ops);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) Die("waitpid failed", 1);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    ++failures;
    if (WIFSIGNALED(status)) {
      assay_test::ReportFailure("fork_stress", "child %d killed by signal %d (%s)%s", i,
                                WTERMSIG(status), strsignal(WTERMSIG(status)),
                                WTERMSIG(status) == SIGALRM ? ": deadlocked for 60 s" : "");
    } else {
      assay_test::ReportFailure("fork_stress", "child %d exited with status %d", i,
                                WEXITSTATUS(status));
    }
  }
  stop = true;
  for (std::thread& t : workers) t.join();
  for (Block& b : inherited) {
    if (!Intact(b.p, b.n, b.seed)) Die("parent: block corrupted by a child", 3);
    free(b.p);
  }
  assay_test::CheckHeap("fork_stress", assay_test::HeapScope::kAllThreads);
  if (failures != 0) {
    assay_test::ReportFailure("fork_stress", "%d of %d children failed", failures, forks);
    return 1;
  }
  printf("fork_stress: OK: %d children exited 0; workers did %llu operations meanwhile\n", forks,
         static_cast<unsigned long long>(worker_ops.load()));
  return 0;
}
