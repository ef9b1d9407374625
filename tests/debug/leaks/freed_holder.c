// A block reachable only from a freed block is leaked.
// leaked: 500
#include <stdlib.h>
#include <string.h>
__attribute__((noinline)) void make(void) {
  void** holder = malloc(8 * sizeof(void*));
  holder[0] = malloc(500);
  memset(holder[0], 4, 500);
  free(holder);
}
int main(void) {
  make();
  return 0;
}
