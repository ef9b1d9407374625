// The bundled demo: a small multi-threaded program with a mixed allocation
// workload (strings, maps, vectors, large buffers, cross-thread frees). Run
// under assay it reports which allocator served it and what it did.
#include <dlfcn.h>
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace demo {

struct Totals {
  size_t allocations = 0;
  size_t bytes = 0;
};

using Index = std::map<std::string, std::vector<int>>;

// Indexes kept for the whole run and never freed (a cache that outlives
// everything): what the demo's heap profile at exit shows live.
std::vector<std::unique_ptr<Index>>* g_kept = new std::vector<std::unique_ptr<Index>>;
std::mutex g_kept_mu;

// Builds and tears down a little in-memory index: maps of strings to
// vectors. The last round's index of each thread is kept.
__attribute__((noinline)) Totals IndexWorkload(int seed, int rounds) {
  Totals t;
  unsigned x = static_cast<unsigned>(seed) * 2654435761u + 1;
  for (int r = 0; r < rounds; ++r) {
    auto owned = std::make_unique<Index>();
    Index& index = *owned;
    for (int i = 0; i < 2000; ++i) {
      x = x * 1664525u + 1013904223u;
      std::string key = "key-" + std::to_string(x % 5000);
      auto& v = index[key];
      v.push_back(static_cast<int>(x));
      t.allocations += 2;
      t.bytes += key.size() + sizeof(int);
    }
    // A few large buffers (page-heap and huge paths).
    std::vector<std::unique_ptr<char[]>> big;
    for (size_t sz : {size_t{300} << 10, size_t{1} << 20, size_t{3} << 20}) {
      big.emplace_back(new char[sz]);
      std::memset(big.back().get(), r, sz);
      t.allocations++;
      t.bytes += sz;
    }
    if (r == rounds - 1) {
      std::lock_guard<std::mutex> lock(g_kept_mu);
      g_kept->push_back(std::move(owned));
    }
  }
  return t;
}

// Cross-thread frees: a producer allocates, the caller frees.
__attribute__((noinline)) size_t Handoff(size_t n) {
  std::vector<char*> handoff(n);
  std::thread producer([&] {
    for (size_t i = 0; i < handoff.size(); ++i) {
      handoff[i] = static_cast<char*>(std::malloc(16 + i % 512));
    }
  });
  producer.join();
  for (char* p : handoff) std::free(p);
  return n;
}

}  // namespace demo

using demo::Totals;

int main() {
  using Version = const char* (*)();
  auto version = reinterpret_cast<Version>(dlsym(RTLD_DEFAULT, "assay_version"));
  std::printf("allocator: %s\n", version != nullptr ? version() : "not assay (system malloc)");

  const auto start = std::chrono::steady_clock::now();
  constexpr int kThreads = 4;
  std::vector<Totals> totals(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([i, &totals] { totals[i] = demo::IndexWorkload(i + 1, 20); });
  }
  for (auto& th : threads) th.join();

  const size_t handed_off = demo::Handoff(10000);

  Totals sum;
  for (const Totals& t : totals) {
    sum.allocations += t.allocations;
    sum.bytes += t.bytes;
  }
  sum.allocations += handed_off;
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const struct mallinfo2 mi = mallinfo2();
  std::printf("threads: %d, allocations: %zu, bytes requested: %.1f MiB, time: %.1f ms\n",
              kThreads + 1, sum.allocations, sum.bytes / 1048576.0, ms);
  std::printf("heap now: in use %.1f KiB, mapped %.1f MiB\n", mi.uordblks / 1024.0,
              (mi.arena + mi.hblkhd) / 1048576.0);
  return 0;
}
