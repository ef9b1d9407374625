// (c) False-sharing sensitivity (after Hoard's cache-thrash and
// cache-scratch). The main thread allocates THREADS small blocks in a row
// (they may share a cache line) and hands one to each thread, which frees it
// ("passive" false sharing if the allocator then gives the freed block's line
// to another thread); then each thread repeatedly allocates a small block,
// writes it many times and frees it ("active" false sharing if two threads'
// blocks share a line). An allocator that keeps each thread's blocks on its
// own cache lines runs this at the speed of the writes; one that does not
// pays a cache-line transfer per write.
#include <thread>
#include <vector>

#include "common.h"

namespace {

uint64_t Worker(int id, void* given, uint64_t rounds, int writes) {
  free(given);
  wl::Rng r(3000 + id);
  uint64_t check = 0;
  for (uint64_t i = 0; i < rounds; ++i) {
    const size_t words = size_t{1} << r.Below(3);  // 8, 16 or 32 B
    auto* p = static_cast<volatile uint64_t*>(malloc(words * 8));
    // Plain stores (no load in the loop): about one per cycle when the line
    // stays in this core's cache, one line transfer each when it does not.
    for (int w = 0; w < writes; ++w) p[w & (words - 1)] = w;
    check += p[0];
    free(const_cast<uint64_t*>(p));
  }
  return check;
}

}  // namespace

int main(int argc, char** argv) {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const wl::Args a = wl::Parse(argc, argv, cores > 1 ? cores : 2);
  const uint64_t rounds = wl::Scaled(a.scale, 1600000);
  constexpr int kWrites = 1000;
  wl::Timer t;
  std::vector<void*> given(a.threads);
  for (auto& p : given) {
    p = malloc(8);
    memset(p, 0, 8);
  }
  std::vector<std::thread> ts;
  std::vector<uint64_t> checks(a.threads);
  for (int i = 0; i < a.threads; ++i)
    ts.emplace_back([&, i] { checks[i] = Worker(i, given[i], rounds, kWrites); });
  for (auto& th : ts) th.join();
  uint64_t check = 0;
  for (uint64_t c : checks) check += c;
  wl::Report("falseshare", a, t, check);
}
