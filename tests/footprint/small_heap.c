// A small program: 100 KiB in small blocks (16-79 bytes), each written, half
// of them freed. tests/footprint/footprint.sh measures its peak RSS.
#include <stdlib.h>
#include <string.h>

int main(void) {
  static void* blocks[4096];
  size_t total = 0;
  int n = 0;
  while (total < 100 * 1024) {
    const size_t size = 16 + (size_t)(n * 37) % 64;
    blocks[n] = malloc(size);
    if (blocks[n] == NULL) return 1;
    memset(blocks[n], 1, size);
    total += size;
    ++n;
  }
  for (int i = 0; i < n; i += 2) free(blocks[i]);
  return 0;
}
