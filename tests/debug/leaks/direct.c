// A function mallocs 12 345 bytes, fills them and returns the pointer; the
// caller drops it. A stale copy survives in the dead frame below sp.
// leaked: 12345
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) void* make(void) {
  void* p = malloc(12345);
  memset(p, 1, 12345);
  return p;
}
int main(void) {
  make();
  return 0;
}
