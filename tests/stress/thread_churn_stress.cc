// Thread cache life cycle under churn: 10 000 short-lived threads (2 000 with --smoke), in waves
// of 8, each mallocs and frees a few hundred blocks and frees blocks handed to it. Resident memory
// must stay flat and every exited thread's cache must be given back.
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <random>
#include <thread>
#include <vector>

#include "assay/assay.h"
#include "tests/stress/stress_util.h"
#include "tests/test_util.h"

namespace {

using assay_test::kKiB;
using assay_test::kMiB;
constexpr int kWave = 8;
constexpr int kHandedPerThread = 4;

[[noreturn]] void Fail(const char* what, unsigned long long a = 0, unsigned long long b = 0) {
  assay_test::Fail("thread_churn_stress", "%s (%llu, %llu)", what, a, b);
}

// VmRSS of this process in bytes.
size_t ResidentBytes() {
  const char* error = nullptr;
  const size_t rss = assay_test::ResidentBytes(&error);
  if (error != nullptr) Fail(error);
  return rss;
}

size_t LiveCaches() {
  assay_stats s;
  assay_get_stats(&s);
  return s.threads;
}

// Blocks carry a tag in their first and last words (only the first when
// the two would overlap).
void Tag(void* p, size_t n, uint64_t tag) {
  memcpy(p, &tag, 8);
  if (n >= 16) memcpy(static_cast<char*>(p) + n - 8, &tag, 8);
}

void CheckTag(const void* p, size_t n, uint64_t tag) {
  uint64_t head;
  uint64_t tail = tag;
  memcpy(&head, p, 8);
  if (n >= 16) memcpy(&tail, static_cast<const char*>(p) + n - 8, 8);
  if (head != tag || tail != tag) Fail("block contents corrupted (head, tag)", head, tag);
}

size_t RandomSize(std::mt19937_64& rng) {
  const uint64_t r = rng() % 1000;
  if (r < 800) return 8 + rng() % 1017;                  // 8 B .. 1 KiB
  if (r < 960) return 1 * kKiB + rng() % (63 * kKiB);    // .. 64 KiB
  if (r < 997) return 64 * kKiB + rng() % (960 * kKiB);  // .. 1 MiB
  return 3 * kMiB;                                       // huge
}

struct Handed {
  void* p;
  size_t n;
  uint64_t tag;
};

void ThreadBody(uint64_t index, const Handed* handed) {
  std::mt19937_64 rng(0x7c4e0000 + index);
  constexpr int kSlots = 48;
  void* slot[kSlots] = {};
  size_t size[kSlots] = {};
  const int ops = 200 + static_cast<int>(rng() % 200);
  for (int op = 0; op < ops; ++op) {
    const int s = static_cast<int>(rng() % kSlots);
    const uint64_t tag = (index << 16) ^ static_cast<uint64_t>(s);
    if (slot[s] != nullptr) {
      CheckTag(slot[s], size[s], tag);
      free(slot[s]);
      slot[s] = nullptr;
    } else {
      size[s] = RandomSize(rng);
      slot[s] = malloc(size[s]);
      if (slot[s] == nullptr) Fail("malloc returned NULL", size[s]);
      Tag(slot[s], size[s], tag);
    }
  }
  for (int s = 0; s < kSlots; ++s) {
    if (slot[s] != nullptr) {
      CheckTag(slot[s], size[s], (index << 16) ^ static_cast<uint64_t>(s));
      free(slot[s]);
    }
  }
  // Blocks the main thread allocated: freed here, into this thread's cache.
  for (int i = 0; i < kHandedPerThread; ++i) {
    CheckTag(handed[i].p, handed[i].n, handed[i].tag);
    free(handed[i].p);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool smoke = argc > 1 && strcmp(argv[1], "--smoke") == 0;
  const int total_threads = smoke ? 2000 : (argc > 1 ? atoi(argv[1]) : 10000);
  const int waves = total_threads / kWave;
  std::mt19937_64 rng(0x7c4e1111);

  size_t rss_after_first_wave = 0;
  size_t rss_max = 0;
  std::vector<Handed> handed(kWave * kHandedPerThread);
  for (int wave = 0; wave < waves; ++wave) {
    for (Handed& h : handed) {
      h.n = 16 + rng() % 4000;
      h.p = malloc(h.n);
      if (h.p == nullptr) Fail("malloc returned NULL", h.n);
      h.tag = rng();
      Tag(h.p, h.n, h.tag);
    }
    std::vector<std::thread> threads;
    for (int t = 0; t < kWave; ++t) {
      const uint64_t index = static_cast<uint64_t>(wave) * kWave + static_cast<uint64_t>(t);
      threads.emplace_back(ThreadBody, index, &handed[static_cast<size_t>(t) * kHandedPerThread]);
    }
    for (std::thread& t : threads) t.join();
    // Joined threads have run their TLS destructors: only main's cache is
    // live (the purge thread never has one).
    const size_t caches = LiveCaches();
    if (caches != 1) Fail("live thread caches after a joined wave (wave, caches)", wave, caches);
    assay_test::CheckHeap("thread_churn_stress", assay_test::HeapScope::kAllThreads);
    const size_t rss = ResidentBytes();
    if (wave == 0) rss_after_first_wave = rss;
    if (rss > rss_max) rss_max = rss;
    if (rss > rss_after_first_wave + 64 * kMiB) {
      Fail("VmRSS grew over 64 MiB above the first wave (first, now)", rss_after_first_wave, rss);
    }
  }
  printf(
      "thread_churn_stress: OK: %d threads; VmRSS after first wave %zu KiB, max %zu KiB, "
      "end %zu KiB\n",
      waves * kWave, rss_after_first_wave / kKiB, rss_max / kKiB, ResidentBytes() / kKiB);
  return 0;
}
