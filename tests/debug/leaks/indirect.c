// A leaked block holds the only pointer to another: 64 bytes direct, 1000
// bytes indirect.
// leaked: 1064
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) void make(void) {
  void** a = malloc(64);
  memset(a, 0, 64);
  a[0] = malloc(1000);
  memset(a[0], 2, 1000);
}
int main(void) {
  make();
  return 0;
}
