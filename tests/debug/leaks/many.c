// 100 leaked blocks of 32 bytes from one site, 50 kept in a global array.
// leaked: 3200
#include <stdlib.h>
#include <string.h>
void* g_kept[50];
__attribute__((noinline)) void* make(void) {
  void* p = malloc(32);
  memset(p, 14, 32);
  return p;
}
int main(void) {
  for (int i = 0; i < 100; ++i) make();
  for (int i = 0; i < 50; ++i) g_kept[i] = make();
  return 0;
}
