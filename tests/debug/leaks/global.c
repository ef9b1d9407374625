// Blocks kept through globals (data and bss): not leaked.
// leaked: 0
#include <stdlib.h>
#include <string.h>
void* g_bss;
void* g_data = (void*)1;
__attribute__((noinline)) void make(void) {
  g_bss = malloc(3000);
  memset(g_bss, 6, 3000);
  g_data = malloc(77);
}
int main(void) {
  make();
  return 0;
}
