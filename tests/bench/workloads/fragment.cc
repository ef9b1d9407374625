// (e) Fragmentation: phases that allocate many blocks of many sizes, free a
// random half, and allocate again with a shifted size mix, so new requests
// must fit between survivors. Peak RSS is the number that matters here (the
// program prints its own maxrss; tools/bench/compare measures it too).
// Single-threaded.
#include <vector>

#include "common.h"

int main(int argc, char** argv) {
  const wl::Args a = wl::Parse(argc, argv, 1);
  const size_t live = wl::Scaled(a.scale, 400000);
  constexpr int kPhases = 10;
  wl::Rng r(5000);
  std::vector<void*> blocks;
  std::vector<size_t> sizes;
  blocks.reserve(live * 2);
  sizes.reserve(live * 2);
  uint64_t check = 0;
  wl::Timer t;
  for (int phase = 0; phase < kPhases; ++phase) {
    // Sizes drift upward phase by phase: 16 B .. 512 B at first, up to 8 KiB
    // by the end, so freed small holes are the wrong size for later requests.
    const size_t lo = 16 + 16 * phase;
    const size_t hi = 512 << (phase / 3 + 0);
    while (blocks.size() < live) {
      const size_t n = r.Chance(1, 50) ? r.Range(8 << 10, 64 << 10) : r.LogRange(lo, hi);
      void* p = malloc(n);
      check += wl::Touch(p, n, blocks.size());
      blocks.push_back(p);
      sizes.push_back(n);
    }
    // Free a random half (swap-remove keeps the survivors in random order).
    for (size_t k = live / 2; k > 0; --k) {
      const size_t i = r.Below(blocks.size());
      check += *static_cast<unsigned char*>(blocks[i]);
      free(blocks[i]);
      blocks[i] = blocks.back();
      sizes[i] = sizes.back();
      blocks.pop_back();
      sizes.pop_back();
    }
  }
  for (void* p : blocks) free(p);
  wl::Report("fragment", a, t, check);
}
