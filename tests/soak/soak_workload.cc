// The soak's server-like workload (tools/soak runs it on assay for minutes):
// a steady live set churned by worker threads, producer/consumer queues
// (cross-thread frees), realloc growth, thread churn and fork+exec, with
// every block's contents checked before it is freed.
// Usage: soak_workload --seconds S [--workers N] [--exec PATH] [--grow-kib-per-s K]
// (--grow-kib-per-s: also hold K KiB more every second, written and never
// freed until the end: the growth the soak's flatness check must catch.)
// Prints one line of operation counts on stdout; exits 1 on a failed check.
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/stress/stress_util.h"

namespace {

constexpr const char* kProgram = "soak_workload";

// The live set: fixed tables of slots, each a block or null. A worker swaps
// a new block into a random slot and frees what it took out, so most frees
// are of blocks another thread allocated and the live set stays near
// (slots x mean size) once every slot is full.
constexpr size_t kSmallSlots = 1 << 16;  // 8 B .. 1 KiB, log-uniform: ~13 MiB live
constexpr size_t kMediumSlots = 256;     // 1 KiB .. 256 KiB, log-uniform: ~12 MiB live
constexpr size_t kLargeSlots = 4;        // 256 KiB .. 4 MiB, log-uniform: ~6 MiB live

struct Block {
  size_t size;
  uint32_t tag;  // the pattern seed written into the block
};

// Blocks start with a Block header (when they are large enough) followed by
// a byte pattern; the first and last 64 bytes are written and checked.
std::atomic<void*> g_small[kSmallSlots];
std::atomic<void*> g_medium[kMediumSlots];
std::atomic<void*> g_large[kLargeSlots];

std::atomic<bool> g_stop{false};

struct Counts {
  std::atomic<uint64_t> mallocs{0}, frees{0}, reallocs{0}, queue_items{0}, threads{0}, forks{0};
};
Counts g_counts;

uint64_t NextRandom(uint64_t* state) {  // xorshift64*
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

// Log-uniform in [lo, hi).
size_t LogUniform(uint64_t* rng, size_t lo, size_t hi) {
  double u = static_cast<double>(NextRandom(rng) >> 11) / 9007199254740992.0;
  double v = static_cast<double>(lo) * pow(static_cast<double>(hi) / lo, u);
  size_t s = static_cast<size_t>(v);
  return s < lo ? lo : (s >= hi ? hi - 1 : s);
}

uint8_t PatternByte(uint32_t tag, size_t i) { return static_cast<uint8_t>(tag * 131 + i * 7); }

// Writes the pattern over the first and last 64 bytes (all of a small block).
void Fill(void* p, size_t size, uint32_t tag) {
  uint8_t* b = static_cast<uint8_t*>(p);
  size_t head = size < 128 ? size : 64;
  for (size_t i = 0; i < head; ++i) b[i] = PatternByte(tag, i);
  for (size_t i = size < 128 ? size : size - 64; i < size; ++i) b[i] = PatternByte(tag, i);
}

void Check(const void* p, size_t size, uint32_t tag, const char* what) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  size_t head = size < 128 ? size : 64;
  for (size_t i = 0; i < head; ++i) {
    if (b[i] != PatternByte(tag, i)) {
      assay_test::Fail(kProgram, "%s: block %p size %zu byte %zu corrupted", what, p, size, i);
    }
  }
  for (size_t i = size < 128 ? size : size - 64; i < size; ++i) {
    if (b[i] != PatternByte(tag, i)) {
      assay_test::Fail(kProgram, "%s: block %p size %zu byte %zu corrupted", what, p, size, i);
    }
  }
}

// A slot block: a 16-byte header {size, tag} then the pattern from byte 16
// (blocks are at least 16 bytes so the header fits).
void* NewBlock(uint64_t* rng, size_t size) {
  if (size < 16) size = 16;
  void* p = malloc(size);
  if (p == nullptr) assay_test::Fail(kProgram, "malloc(%zu) returned null", size);
  g_counts.mallocs.fetch_add(1, std::memory_order_relaxed);
  Block h{size, static_cast<uint32_t>(NextRandom(rng))};
  memcpy(p, &h, sizeof(h));
  Fill(static_cast<char*>(p) + 16, size - 16, h.tag);
  return p;
}

void FreeBlock(void* p, const char* what) {
  if (p == nullptr) return;
  Block h;
  memcpy(&h, p, sizeof(h));
  Check(static_cast<char*>(p) + 16, h.size - 16, h.tag, what);
  free(p);
  g_counts.frees.fetch_add(1, std::memory_order_relaxed);
}

void SwapInto(std::atomic<void*>* slot, void* p, const char* what) {
  FreeBlock(slot->exchange(p, std::memory_order_acq_rel), what);
}

// One step of a worker: mostly small blocks, some medium, rarely large.
void WorkerStep(uint64_t* rng) {
  uint64_t r = NextRandom(rng);
  uint64_t pick = r % 1000;
  if (pick < 900) {
    SwapInto(&g_small[(r >> 10) % kSmallSlots], NewBlock(rng, LogUniform(rng, 8, 1024)), "small");
  } else if (pick < 995) {
    SwapInto(&g_medium[(r >> 10) % kMediumSlots], NewBlock(rng, LogUniform(rng, 1024, 256 << 10)),
             "medium");
  } else if (pick < 996) {
    SwapInto(&g_large[(r >> 10) % kLargeSlots], NewBlock(rng, LogUniform(rng, 256 << 10, 4 << 20)),
             "large");
  } else {
    // Realloc growth: a buffer grown from 8 B by x1.5 to up to 1 MiB (the
    // old contents checked after every move), then freed.
    size_t limit = LogUniform(rng, 1024, 1 << 20);
    size_t size = 8;
    uint32_t tag = static_cast<uint32_t>(r);
    uint8_t* b = static_cast<uint8_t*>(malloc(size));
    if (b == nullptr) assay_test::Fail(kProgram, "malloc(8) returned null");
    g_counts.mallocs.fetch_add(1, std::memory_order_relaxed);
    Fill(b, size, tag);
    while (size < limit) {
      size_t next = size + size / 2 + 1;
      uint8_t* nb = static_cast<uint8_t*>(realloc(b, next));
      if (nb == nullptr) assay_test::Fail(kProgram, "realloc(%zu) returned null", next);
      g_counts.reallocs.fetch_add(1, std::memory_order_relaxed);
      // The first min(64, size) bytes survive the move; rewrite the whole pattern.
      for (size_t i = 0; i < (size < 64 ? size : 64); ++i) {
        if (nb[i] != PatternByte(tag, i)) {
          assay_test::Fail(kProgram, "realloc %zu -> %zu lost byte %zu", size, next, i);
        }
      }
      size = next;
      b = nb;
      Fill(b, size, tag);
    }
    Check(b, size, tag, "realloc");
    free(b);
    g_counts.frees.fetch_add(1, std::memory_order_relaxed);
  }
}

void Worker(uint64_t seed) {
  uint64_t rng = seed | 1;
  while (!g_stop.load(std::memory_order_relaxed)) {
    for (int i = 0; i < 256; ++i) WorkerStep(&rng);
  }
}

// A bounded queue: producers allocate, consumers check and free, so every
// item is freed by a thread other than the one that allocated it.
class Queue {
 public:
  static constexpr size_t kCapacity = 4096;
  void Push(void* p) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return items_.size() < kCapacity || closed_; });
    items_.push_back(p);
    not_empty_.notify_one();
  }
  // Returns null once closed and empty.
  void* Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return !items_.empty() || closed_; });
    if (items_.empty()) return nullptr;
    void* p = items_.back();
    items_.pop_back();
    not_full_.notify_one();
    return p;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }
  std::vector<void*> Drain() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::move(items_);
  }

 private:
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::vector<void*> items_;
  bool closed_ = false;
};

void Producer(Queue* q, uint64_t seed) {
  uint64_t rng = seed | 1;
  while (!g_stop.load(std::memory_order_relaxed)) {
    size_t size =
        (NextRandom(&rng) % 16 == 0) ? LogUniform(&rng, 1024, 64 << 10) : LogUniform(&rng, 16, 512);
    q->Push(NewBlock(&rng, size));
    g_counts.queue_items.fetch_add(1, std::memory_order_relaxed);
  }
}

void Consumer(Queue* q) {
  while (void* p = q->Pop()) FreeBlock(p, "queue");
}

// Thread churn: short-lived threads, created and joined continually, each
// allocating into the shared slots and exiting with a warm thread cache.
void Churner(uint64_t seed) {
  uint64_t rng = seed | 1;
  while (!g_stop.load(std::memory_order_relaxed)) {
    std::thread threads[4];
    for (auto& t : threads) {
      uint64_t s = NextRandom(&rng);
      t = std::thread([s] {
        uint64_t r = s | 1;
        for (int i = 0; i < 2000; ++i) WorkerStep(&r);
      });
    }
    for (auto& t : threads) t.join();
    g_counts.threads.fetch_add(4, std::memory_order_relaxed);
  }
}

// fork+exec of a small program now and then (the child starts on a copy of
// a heap with every other thread stopped mid-operation; it execs at once).
void Forker(const char* path) {
  char* const argv[] = {const_cast<char*>(path), nullptr};
  char* const envp[] = {nullptr};  // no MALLOC_PROF in the child
  while (!g_stop.load(std::memory_order_relaxed)) {
    pid_t pid = fork();
    if (pid < 0) assay_test::Fail(kProgram, "fork failed");
    if (pid == 0) {
      // Allocate in the child before exec: the forked heap must work.
      void* p = malloc(100);
      if (p == nullptr) _exit(3);
      free(p);
      execve(path, argv, envp);
      _exit(4);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      assay_test::Fail(kProgram, "child %s: status 0x%x", path, status);
    }
    g_counts.forks.fetch_add(1, std::memory_order_relaxed);
    for (int i = 0; i < 5 && !g_stop.load(std::memory_order_relaxed); ++i) usleep(100 * 1000);
  }
}

// Growth on purpose (--grow-kib-per-s): every 100 ms a tenth of the rate
// in 4 KiB blocks, every byte written so that it is resident, held to the end.
void Grower(size_t kib_per_s, std::vector<void*>* held) {
  while (!g_stop.load(std::memory_order_relaxed)) {
    for (size_t kib = 0; kib < kib_per_s / 10; kib += 4) {
      void* p = malloc(4096);
      if (p == nullptr) assay_test::Fail(kProgram, "grower: malloc(4096) failed");
      memset(p, 0x5a, 4096);
      held->push_back(p);
    }
    usleep(100 * 1000);
  }
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 10;
  int workers = 3;
  const char* exec_path = "/bin/true";
  size_t grow_kib_per_s = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      seconds = atof(argv[++i]);
    } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
      workers = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--exec") == 0 && i + 1 < argc) {
      exec_path = argv[++i];
    } else if (strcmp(argv[i], "--grow-kib-per-s") == 0 && i + 1 < argc) {
      grow_kib_per_s = strtoul(argv[++i], nullptr, 10);
    } else {
      fprintf(stderr, "usage: %s [--seconds S] [--workers N] [--exec PATH] [--grow-kib-per-s K]\n",
              kProgram);
      return 2;
    }
  }

  // Fill every slot first, so the live set is at its steady size from the
  // start and the RSS curve's warm-up is short.
  uint64_t rng = 0x9E3779B97F4A7C15ULL;
  for (auto& s : g_small) s.store(NewBlock(&rng, LogUniform(&rng, 8, 1024)));
  for (auto& s : g_medium) s.store(NewBlock(&rng, LogUniform(&rng, 1024, 256 << 10)));
  for (auto& s : g_large) s.store(NewBlock(&rng, LogUniform(&rng, 256 << 10, 4 << 20)));

  std::vector<std::thread> threads;
  for (int i = 0; i < workers; ++i) threads.emplace_back(Worker, NextRandom(&rng));
  Queue queue;
  threads.emplace_back(Producer, &queue, NextRandom(&rng));
  threads.emplace_back(Producer, &queue, NextRandom(&rng));
  std::thread consumer(Consumer, &queue);
  threads.emplace_back(Churner, NextRandom(&rng));
  threads.emplace_back(Forker, exec_path);
  std::vector<void*> grown;
  if (grow_kib_per_s != 0) threads.emplace_back(Grower, grow_kib_per_s, &grown);

  timespec ts;
  ts.tv_sec = static_cast<time_t>(seconds);
  ts.tv_nsec = static_cast<long>((seconds - static_cast<double>(ts.tv_sec)) * 1e9);
  while (nanosleep(&ts, &ts) != 0) {
  }  // EINTR: the profiler's dump signal lands here too
  g_stop.store(true);
  queue.Close();
  for (auto& t : threads) t.join();
  consumer.join();
  for (void* p : queue.Drain()) FreeBlock(p, "queue");
  for (auto& s : g_small) FreeBlock(s.exchange(nullptr), "small");
  for (auto& s : g_medium) FreeBlock(s.exchange(nullptr), "medium");
  for (auto& s : g_large) FreeBlock(s.exchange(nullptr), "large");
  for (void* p : grown) free(p);

  printf(
      "soak_workload: seconds=%.1f mallocs=%llu frees=%llu reallocs=%llu queue_items=%llu "
      "threads=%llu forks=%llu\n",
      seconds, static_cast<unsigned long long>(g_counts.mallocs.load()),
      static_cast<unsigned long long>(g_counts.frees.load()),
      static_cast<unsigned long long>(g_counts.reallocs.load()),
      static_cast<unsigned long long>(g_counts.queue_items.load()),
      static_cast<unsigned long long>(g_counts.threads.load()),
      static_cast<unsigned long long>(g_counts.forks.load()));
  if (g_counts.mallocs.load() != g_counts.frees.load()) {
    assay_test::Fail(kProgram, "%llu mallocs but %llu frees",
                     static_cast<unsigned long long>(g_counts.mallocs.load()),
                     static_cast<unsigned long long>(g_counts.frees.load()));
  }
  return 0;
}
