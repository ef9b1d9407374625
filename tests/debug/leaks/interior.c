// Only a pointer into the middle of a block is kept (in a global): not leaked.
// leaked: 0
#include <stdlib.h>
#include <string.h>
char* volatile g_inside;
int main(void) {
  char* p = malloc(1000);
  memset(p, 5, 1000);
  g_inside = p + 300;
  p = NULL;
  return 0;
}
