// Microbenchmarks of the malloc family, for whichever allocator is loaded
// (LD_PRELOAD). assay-only entry points are looked up with dlsym.
// tools/bench/compare runs this binary once per allocator and tabulates
// ns per operation (an operation is one iteration, or one item where a
// benchmark sets items processed).
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <new>
#include <vector>

namespace {

void MallocFreePair(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = malloc(n);
    benchmark::DoNotOptimize(p);
    free(p);
  }
}
BENCHMARK(MallocFreePair)->Arg(8)->RangeMultiplier(2)->Range(16, 1 << 20);
// The range covers the slice runs of 512 KiB and 1 MiB; this is the last
// size below the huge threshold (2 MiB).
BENCHMARK(MallocFreePair)->Arg((2 << 20) - 1);

// operator new(size_t) with the sized operator delete(void*, size_t), as a
// C++14 compiler emits for `delete p` on a complete type.
void SizedNewDelete(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = ::operator new(n);
    benchmark::DoNotOptimize(p);
    ::operator delete(p, n);
  }
}
BENCHMARK(SizedNewDelete)->RangeMultiplier(2)->Range(16, 4096);

void BatchAllocThenFree(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<void*> ptrs(1000);
  for (auto _ : state) {
    for (auto& p : ptrs) p = malloc(n);
    benchmark::DoNotOptimize(ptrs.data());
    for (void* p : ptrs) free(p);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BatchAllocThenFree)->Arg(16)->Arg(64)->Arg(256)->Arg(1024);

// One block grown by 16-byte steps from 16 B to 64 KiB (4095 reallocs), the
// way a naive buffer grows; the first byte of each new step is written.
void ReallocGrowth(benchmark::State& state) {
  constexpr size_t kMax = 64 << 10;
  for (auto _ : state) {
    char* p = static_cast<char*>(malloc(16));
    p[0] = 1;
    for (size_t n = 32; n <= kMax; n += 16) {
      p = static_cast<char*>(realloc(p, n));
      p[n - 16] = 1;
    }
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations() * (kMax / 16 - 1));
}
BENCHMARK(ReallocGrowth);

void CallocFree(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = calloc(1, n);
    benchmark::DoNotOptimize(p);
    free(p);
  }
}
BENCHMARK(CallocFree)->Arg(16)->Arg(64)->Arg(256)->Arg(1024)->Arg(4096)->Arg(64 << 10);

// posix_memalign(alignment, size) then free: args are {alignment, size}.
void PosixMemalign(benchmark::State& state) {
  const size_t align = static_cast<size_t>(state.range(0));
  const size_t n = static_cast<size_t>(state.range(1));
  for (auto _ : state) {
    void* p = nullptr;
    if (posix_memalign(&p, align, n) != 0) state.SkipWithError("posix_memalign failed");
    benchmark::DoNotOptimize(p);
    free(p);
  }
}
BENCHMARK(PosixMemalign)
    ->Args({64, 64})
    ->Args({64, 1000})
    ->Args({4096, 100})
    ->Args({4096, 4096})
    ->Args({4096, 20000});

using Comalloc = int (*)(size_t, const size_t*, void**);
using BulkFree = void (*)(void**, size_t);

void Comalloc16(benchmark::State& state) {
  auto comalloc = reinterpret_cast<Comalloc>(dlsym(RTLD_DEFAULT, "assay_comalloc"));
  auto bulk_free = reinterpret_cast<BulkFree>(dlsym(RTLD_DEFAULT, "assay_bulk_free"));
  size_t sizes[16];
  for (size_t i = 0; i < 16; ++i) sizes[i] = 16 + 16 * (i % 8);
  void* out[16];
  for (auto _ : state) {
    if (comalloc != nullptr) {
      comalloc(16, sizes, out);
      benchmark::DoNotOptimize(out);
      bulk_free(out, 16);
    } else {
      for (size_t i = 0; i < 16; ++i) out[i] = malloc(sizes[i]);
      benchmark::DoNotOptimize(out);
      for (size_t i = 0; i < 16; ++i) free(out[i]);
    }
  }
  state.SetLabel(comalloc != nullptr ? "assay_comalloc" : "16 x malloc");
}
BENCHMARK(Comalloc16);

void Malloc16Separately(benchmark::State& state) {
  size_t sizes[16];
  for (size_t i = 0; i < 16; ++i) sizes[i] = 16 + 16 * (i % 8);
  void* out[16];
  for (auto _ : state) {
    for (size_t i = 0; i < 16; ++i) out[i] = malloc(sizes[i]);
    benchmark::DoNotOptimize(out);
    for (size_t i = 0; i < 16; ++i) free(out[i]);
  }
}
BENCHMARK(Malloc16Separately);

// Cross-thread free: thread 0 allocates into a single-producer ring, thread 1
// takes the blocks out and frees them. Both threads run the same number of
// iterations (Google Benchmark gives every thread the same count), so the
// ring is empty again when a run ends. One iteration = one malloc on the
// producer plus one free on the consumer; real time.
constexpr size_t kRing = 4096;
struct alignas(64) Slot {
  std::atomic<void*> p{nullptr};
};
Slot g_ring[kRing];

void CrossThreadFree(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  size_t i = 0;
  if (state.thread_index() == 0) {
    for (auto _ : state) {
      void* p = malloc(n);
      memset(p, 0, 8);
      Slot& s = g_ring[i++ % kRing];
      while (s.p.load(std::memory_order_acquire) != nullptr) _mm_pause();
      s.p.store(p, std::memory_order_release);
    }
  } else {
    for (auto _ : state) {
      Slot& s = g_ring[i++ % kRing];
      void* p;
      while ((p = s.p.load(std::memory_order_acquire)) == nullptr) _mm_pause();
      s.p.store(nullptr, std::memory_order_relaxed);
      free(p);
    }
  }
}
BENCHMARK(CrossThreadFree)->Arg(16)->Arg(64)->Arg(256)->Arg(1024)->Threads(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
