// The profiler's cost per sampled allocation, for callgrind: N pairs of
// malloc(64)+free under 10 program frames (built with frame pointers, like
// the rest of the tree). Links no allocator: run it with
// LD_PRELOAD=libassay.so MALLOC_PROF=rate=1,final=0; tools/bench/sample_cost
// subtracts two run lengths to get instructions per sampled pair.
#include <stdlib.h>

#include <cstdint>

namespace {

volatile uintptr_t g_sink;

__attribute__((noinline)) void Pairs(long n, size_t size) {
  for (long i = 0; i < n; ++i) {
    void* p = malloc(size);
    g_sink = reinterpret_cast<uintptr_t>(p);
    free(p);
  }
}

// Frames: main, Recurse x8, Pairs = 10 program frames.
__attribute__((noinline, noclone)) void Recurse(int depth, long n, size_t size) {
  if (depth == 0)
    Pairs(n, size);
  else
    Recurse(depth - 1, n, size);
  g_sink = g_sink + 1;  // not a tail call: every frame stays on the stack
}

}  // namespace

int main(int argc, char** argv) {
  const long n = argc > 1 ? atol(argv[1]) : 100000;
  const size_t size = argc > 2 ? static_cast<size_t>(atol(argv[2])) : 64;
  Recurse(7, 1000, size);  // warm up: first stacks, thread state, spans
  Recurse(7, n, size);
  return 0;
}
