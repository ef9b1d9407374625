// The leak scan's cost on a big heap: N blocks of ~100 bytes (default 1 M,
// ~100 MB with the debug headers), in two linked chains; a global keeps the
// first, the second is dropped (one direct leak, the rest indirect). Run:
//   ASSAY_DEBUG=leaks LD_PRELOAD=build/libassay.so build/tests/debug/leak_scan_time [N]
// and read the scan time on the report's second line.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
  struct node* next;
  char pad[88 + 8];  // 104 bytes a block
};

struct node* g_kept;

__attribute__((noinline)) static void build(long n) {
  struct node* dropped = NULL;
  for (long i = 0; i < n; ++i) {
    struct node* b = malloc(sizeof(*b));
    memset(b->pad, (int)i, sizeof(b->pad));
    if (i % 2 == 0) {
      b->next = g_kept;
      g_kept = b;
    } else {
      b->next = dropped;
      dropped = b;
    }
  }
  dropped = NULL;
}

int main(int argc, char** argv) {
  const long n = argc > 1 ? atol(argv[1]) : 1000000;
  build(n);
  printf("%ld blocks of %zu bytes\n", n, sizeof(struct node));
  return 0;
}
