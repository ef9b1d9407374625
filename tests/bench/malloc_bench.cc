// Microbenchmarks of the malloc family, for whichever allocator is loaded
// (LD_PRELOAD). assay-only entry points are looked up with dlsym.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <stdlib.h>

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
BENCHMARK(MallocFreePair)->RangeMultiplier(2)->Range(16, 1 << 20);

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

}  // namespace

BENCHMARK_MAIN();
