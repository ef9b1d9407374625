// (d) Many threads allocating and freeing small objects, in the style of
// Larson & Krishnan's server benchmark (and mimalloc-bench's larson/xmalloc):
// THREADS threads (default 8) each own an array of 1000 blocks of 8-1024 B
// and repeatedly free a random one and allocate a replacement. Work runs in
// rounds; at the end of a round every thread exits and a new thread takes
// over the array of another one, so blocks are freed by threads that did not
// allocate them, and thread caches are created and torn down all the time.
#include <thread>
#include <vector>

#include "common.h"

namespace {

constexpr size_t kBlocks = 1000;

struct Arena {
  void* block[kBlocks];
};

uint64_t Run(Arena* arena, uint64_t seed, uint64_t ops) {
  wl::Rng r(seed);
  uint64_t check = 0;
  for (uint64_t i = 0; i < ops; ++i) {
    const size_t k = r.Below(kBlocks);
    if (arena->block[k] != nullptr) {
      check += *static_cast<unsigned char*>(arena->block[k]);
      free(arena->block[k]);
    }
    const size_t n = r.LogRange(8, 1024);
    arena->block[k] = malloc(n);
    wl::Touch(arena->block[k], n, i);
  }
  return check;
}

}  // namespace

int main(int argc, char** argv) {
  const wl::Args a = wl::Parse(argc, argv, 8);
  constexpr int kRounds = 40;
  const uint64_t ops = wl::Scaled(a.scale, 28000000) / kRounds / a.threads;
  std::vector<Arena> arenas(a.threads);
  for (auto& ar : arenas) memset(ar.block, 0, sizeof(ar.block));
  wl::Timer t;
  uint64_t check = 0;
  std::vector<uint64_t> checks(a.threads);
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::thread> ts;
    for (int i = 0; i < a.threads; ++i) {
      Arena* ar = &arenas[(i + round) % a.threads];
      ts.emplace_back([&, ar, i] { checks[i] = Run(ar, 4000 + round * 64 + i, ops); });
    }
    for (auto& th : ts) th.join();
    for (uint64_t c : checks) check += c;
  }
  for (auto& ar : arenas)
    for (void* p : ar.block) free(p);
  wl::Report("larson", a, t, check);
}
