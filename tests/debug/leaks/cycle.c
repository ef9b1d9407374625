// Two blocks point at each other and nothing points at them.
// leaked: 200
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) void make(void) {
  void** a = malloc(80);
  void** b = malloc(120);
  memset(a, 0, 80);
  memset(b, 0, 120);
  a[0] = b;
  b[0] = a;
}
int main(void) {
  make();
  return 0;
}
