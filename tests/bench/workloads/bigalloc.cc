// (g) Big allocations: a working set of 16 blocks of 64 KiB-32 MiB
// (log-uniform) where each step frees a random block and allocates a new one,
// writing one byte in every 4 KiB page of its first 256 KiB and a byte every
// 64 KiB after that. Dominated by how the allocator maps, caches, reuses and
// returns large blocks (page faults, mmap/munmap, madvise). Single-threaded.
#include "common.h"

int main(int argc, char** argv) {
  const wl::Args a = wl::Parse(argc, argv, 1);
  const uint64_t steps = wl::Scaled(a.scale, 30000);
  constexpr size_t kLive = 16;
  wl::Rng r(7000);
  void* live[kLive] = {};
  size_t size[kLive] = {};
  uint64_t check = 0;
  wl::Timer t;
  for (uint64_t s = 0; s < steps; ++s) {
    const size_t k = r.Below(kLive);
    if (live[k] != nullptr) {
      check += static_cast<unsigned char*>(live[k])[size[k] - 1];
      free(live[k]);
    }
    const size_t n = r.LogRange(64 << 10, 32 << 20);
    auto* p = static_cast<unsigned char*>(malloc(n));
    for (size_t off = 0; off < n; off += off < (256 << 10) ? 4096 : (64 << 10))
      p[off] = static_cast<unsigned char>(s);
    p[n - 1] = static_cast<unsigned char>(s >> 3);
    live[k] = p;
    size[k] = n;
  }
  for (void* p : live) free(p);
  wl::Report("bigalloc", a, t, check);
}
