// A cycle of three blocks reachable from a global: not leaked; and a leaked
// block pointing into a kept one (a leaked block's pointer keeps nothing
// alive that is already reachable): 48 bytes leaked.
// leaked: 48
#include <stdlib.h>
#include <string.h>
void** g_ring;
__attribute__((noinline)) void make(void) {
  void** a = malloc(64);
  void** b = malloc(64);
  void** c = malloc(64);
  memset(a, 0, 64), memset(b, 0, 64), memset(c, 0, 64);
  a[0] = b, b[0] = c, c[0] = a;
  g_ring = a;
  void** stray = malloc(48);
  memset(stray, 0, 48);
  stray[0] = b;
}
int main(void) {
  make();
  return 0;
}
