// realloc moves a block and the program keeps only the old pointer: the new
// block is leaked (the old one was freed).
// leaked: 100000
#include <stdlib.h>
#include <string.h>
char* volatile g_old;
__attribute__((noinline)) void grow(void) {
  g_old = malloc(100);
  memset(g_old, 12, 100);
  char* q = realloc(g_old, 100000);
  memset(q, 12, 100000);
}
int main(void) {
  grow();
  return 0;
}
