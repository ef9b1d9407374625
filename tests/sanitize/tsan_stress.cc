// The allocator and the profiler under ThreadSanitizer: built with
// ASSAY_PREFIX (tests/sanitize/CMakeLists.txt) so that assay's malloc family
// is assay_malloc, assay_free, ... beside TSan's own malloc, and driven
// through those names by threads that free each other's blocks (through
// shared slots), grow blocks by realloc, allocate batches with
// assay_comalloc, come and go (thread churn), while a profiling session with
// callbacks samples every ~1 KiB and another thread writes heap profiles and
// reads the statistics. TSan reports any data race; the program itself
// checks every block's contents and the callback counts.
// Usage: tsan_stress [--rounds N] [--out DIR]
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "assay/assay.h"
#include "assay/profiler.hpp"

extern "C" {
void* assay_malloc(size_t n);
void assay_free(void* p);
void* assay_calloc(size_t count, size_t size);
void* assay_realloc(void* p, size_t n);
int assay_posix_memalign(void** out, size_t align, size_t n);
size_t assay_malloc_usable_size(void* p);
}

namespace {

[[noreturn]] void Fail(const char* what, const void* p, size_t n) {
  fprintf(stderr, "tsan_stress: FAIL: %s (block %p, size %zu)\n", what, p, n);
  _exit(1);
}

uint64_t Next(uint64_t* s) {  // xorshift64*
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545F4914F6CDD1DULL;
}

// Blocks carry their size and a tag in the first 16 bytes and a pattern in
// the rest (up to 256 bytes checked), so a block handed to the wrong owner
// or overwritten by the allocator is caught at its free.
struct Header {
  size_t size;
  uint64_t tag;
};

void Fill(void* p, size_t size, uint64_t tag) {
  Header h{size, tag};
  memcpy(p, &h, sizeof(h));
  uint8_t* b = static_cast<uint8_t*>(p);
  for (size_t i = sizeof(h); i < size && i < 256; ++i) b[i] = static_cast<uint8_t>(tag + i);
}

void CheckAndFree(void* p) {
  if (p == nullptr) return;
  Header h;
  memcpy(&h, p, sizeof(h));
  const uint8_t* b = static_cast<const uint8_t*>(p);
  for (size_t i = sizeof(h); i < h.size && i < 256; ++i) {
    if (b[i] != static_cast<uint8_t>(h.tag + i)) Fail("pattern overwritten", p, h.size);
  }
  if (assay_malloc_usable_size(p) < h.size) Fail("usable size below the request", p, h.size);
  assay_free(p);
}

// Shared slots: a thread swaps its new block in and frees the one it took
// out, which another thread allocated.
constexpr size_t kSlots = 1024;
std::atomic<void*> g_slots[kSlots];

std::atomic<uint64_t> g_alloc_cb{0}, g_promote_cb{0}, g_free_cb{0};
std::atomic<bool> g_stop{false};

size_t PickSize(uint64_t* rng) {
  const uint64_t r = Next(rng);
  switch (r % 16) {
    case 0:
      return 4096 + (r >> 8) % (256 << 10);  // medium
    case 1:
      return (r >> 8) % 64 == 0 ? (1 << 20) + (r >> 16) % (3 << 20) : 300 + (r >> 8) % 4000;
    default:
      return 16 + (r >> 8) % 512;  // small
  }
}

void Worker(uint64_t seed, int rounds) {
  uint64_t rng = seed | 1;
  for (int i = 0; i < rounds; ++i) {
    const uint64_t op = Next(&rng) % 10;
    if (op < 6) {  // malloc, swapped into a slot: cross-thread free
      const size_t n = PickSize(&rng);
      void* p = assay_malloc(n);
      if (p == nullptr) Fail("malloc returned null", p, n);
      Fill(p, n, Next(&rng));
      CheckAndFree(g_slots[Next(&rng) % kSlots].exchange(p, std::memory_order_acq_rel));
    } else if (op == 6) {  // realloc growth
      size_t n = 16;
      void* p = assay_malloc(n);
      const uint64_t tag = Next(&rng);
      Fill(p, n, tag);
      const size_t limit = 64 + Next(&rng) % (128 << 10);
      while (n < limit) {
        n = n * 2;
        p = assay_realloc(p, n);
        if (p == nullptr) Fail("realloc returned null", p, n);
        Fill(p, n, tag);
      }
      CheckAndFree(g_slots[Next(&rng) % kSlots].exchange(p, std::memory_order_acq_rel));
    } else if (op == 7) {  // calloc: zeroed
      const size_t n = 16 + Next(&rng) % 2048;
      uint8_t* p = static_cast<uint8_t*>(assay_calloc(1, n));
      if (p == nullptr) Fail("calloc returned null", p, n);
      for (size_t j = 0; j < n; ++j) {
        if (p[j] != 0) Fail("calloc block not zero", p, n);
      }
      Fill(p, n, Next(&rng));
      CheckAndFree(p);
    } else if (op == 8) {  // comalloc: a batch, its members freed by others
      size_t sizes[4];
      void* out[4];
      for (size_t& s : sizes) s = 16 + Next(&rng) % 300;
      if (assay_comalloc(4, sizes, out) != 0) Fail("comalloc failed", nullptr, 4);
      for (int j = 0; j < 4; ++j) {
        Fill(out[j], sizes[j], Next(&rng));
        CheckAndFree(g_slots[Next(&rng) % kSlots].exchange(out[j], std::memory_order_acq_rel));
      }
    } else {  // aligned
      void* p = nullptr;
      const size_t align = size_t{64} << (Next(&rng) % 6);
      const size_t n = 16 + Next(&rng) % 5000;
      if (assay_posix_memalign(&p, align, n) != 0) Fail("posix_memalign failed", p, n);
      if (reinterpret_cast<uintptr_t>(p) % align != 0) Fail("misaligned", p, n);
      Fill(p, n, Next(&rng));
      CheckAndFree(g_slots[Next(&rng) % kSlots].exchange(p, std::memory_order_acq_rel));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 20000;
  std::string out = "/tmp";
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
      out = argv[++i];
    } else {
      fprintf(stderr, "usage: tsan_stress [--rounds N] [--out DIR]\n");
      return 2;
    }
  }

  assay::ProfilerOptions opts;
  opts.rate = 1024;             // a sample every ~1 KiB: most blocks recorded
  opts.young_bytes = 64 << 10;  // promotions too
  opts.seed = 12345;
  // Frame-pointer stacks: libunwind's per-thread cache has a TSD destructor
  // that takes a pthread mutex after TSan has torn the exiting thread's
  // state down (a crash inside TSan at every thread exit, not in assay).
  opts.stack_method = assay::StackMethod::kFramePointer;
  assay::Tracker tracker;
  tracker.on_alloc = [](const assay::SampledAllocation& a) -> std::optional<assay::Token> {
    g_alloc_cb.fetch_add(1, std::memory_order_relaxed);
    return reinterpret_cast<assay::Token>(a.address);
  };
  tracker.on_promote = [](assay::Token t) -> std::optional<assay::Token> {
    g_promote_cb.fetch_add(1, std::memory_order_relaxed);
    return t;
  };
  tracker.on_free = [](assay::Token) { g_free_cb.fetch_add(1, std::memory_order_relaxed); };
  if (!assay::Start(opts, tracker)) Fail("assay::Start failed", nullptr, 0);

  // Profiles and statistics read while the workers run.
  int profiles = 0;
  std::thread reader([&] {
    const std::string path = out + "/tsan_stress." + std::to_string(getpid()) + ".heap.pb.gz";
    while (!g_stop.load(std::memory_order_acquire)) {
      const int rc = assay::WriteProfile("heap", path.c_str());
      if (rc != 0) {
        fprintf(stderr, "tsan_stress: FAIL: WriteProfile: %s\n", strerror(rc));
        _exit(1);
      }
      ++profiles;
      assay_stats s;
      assay_get_stats(&s);
      (void)assay::GetProfilerStats();
      assay_trim();
      usleep(20 * 1000);
    }
    unlink(path.c_str());
  });

  // Four long-lived workers, and thread churn: batches of short-lived ones.
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) workers.emplace_back(Worker, 1000 + i, rounds);
  int churned = 0;
  for (int batch = 0; batch < 8; ++batch) {
    std::thread t[3];
    for (int j = 0; j < 3; ++j) t[j] = std::thread(Worker, 5000 + batch * 3 + j, rounds / 20);
    for (auto& th : t) th.join();
    churned += 3;
  }
  for (auto& t : workers) t.join();
  for (auto& s : g_slots) CheckAndFree(s.exchange(nullptr, std::memory_order_acq_rel));
  g_stop.store(true, std::memory_order_release);
  reader.join();
  assay::Stop();

  const uint64_t allocs = g_alloc_cb.load(), promotes = g_promote_cb.load(),
                 frees = g_free_cb.load();
  printf(
      "tsan_stress: rounds=%d threads=%d profiles=%d on_alloc=%llu on_promote=%llu "
      "on_free=%llu\n",
      rounds, 4 + churned, profiles, static_cast<unsigned long long>(allocs),
      static_cast<unsigned long long>(promotes), static_cast<unsigned long long>(frees));
  // Sampling at ~1 KiB over tens of MiB must record thousands of blocks; each
  // block's free and promotion follow its alloc.
  if (allocs < 1000) Fail("too few sampled allocations", nullptr, allocs);
  if (frees > allocs || promotes > allocs) Fail("callback counts out of order", nullptr, frees);
  if (profiles == 0) Fail("no profile written", nullptr, 0);
  return 0;
}
