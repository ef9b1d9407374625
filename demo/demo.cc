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
#include <string>
#include <thread>
#include <vector>

namespace {

struct Totals {
  size_t allocations = 0;
  size_t bytes = 0;
};

// Builds and tears down a little in-memory index: maps of strings to vectors.
Totals IndexWorkload(int seed, int rounds) {
  Totals t;
  unsigned x = static_cast<unsigned>(seed) * 2654435761u + 1;
  for (int r = 0; r < rounds; ++r) {
    std::map<std::string, std::vector<int>> index;
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
  }
  return t;
}

}  // namespace

int main() {
  using Version = const char* (*)();
  auto version = reinterpret_cast<Version>(dlsym(RTLD_DEFAULT, "assay_version"));
  std::printf("allocator: %s\n", version != nullptr ? version() : "not assay (system malloc)");

  const auto start = std::chrono::steady_clock::now();
  constexpr int kThreads = 4;
  std::vector<Totals> totals(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([i, &totals] { totals[i] = IndexWorkload(i + 1, 20); });
  }
  for (auto& th : threads) th.join();

  // Cross-thread frees: a producer allocates, the main thread frees.
  std::vector<char*> handoff(10000);
  std::thread producer([&] {
    for (size_t i = 0; i < handoff.size(); ++i) handoff[i] = static_cast<char*>(std::malloc(16 + i % 512));
  });
  producer.join();
  for (char* p : handoff) std::free(p);

  Totals sum;
  for (const Totals& t : totals) {
    sum.allocations += t.allocations;
    sum.bytes += t.bytes;
  }
  sum.allocations += handoff.size();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const struct mallinfo2 mi = mallinfo2();
  std::printf("threads: %d, allocations: %zu, bytes requested: %.1f MiB, time: %.1f ms\n",
              kThreads + 1, sum.allocations, sum.bytes / 1048576.0, ms);
  std::printf("heap now: in use %.1f KiB, mapped %.1f MiB\n", mi.uordblks / 1024.0,
              (mi.arena + mi.hblkhd) / 1048576.0);
  return 0;
}
