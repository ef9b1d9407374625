// The only pointer sits in a frame that has returned (below sp, a stale copy
// the next calls did not overwrite): leaked.
// leaked: 4000
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) void stash(void) {
  void* volatile local[4];
  local[0] = malloc(4000);
  memset(local[0], 13, 4000);
  local[1] = local[0];
  local[2] = local[0];
}
int main(void) {
  stash();
  return 0;
}
