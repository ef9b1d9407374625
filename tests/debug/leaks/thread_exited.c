// A thread leaks a block and exits (joined): its cached stack is free memory.
// leaked: 4242
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
static void* run(void* arg) {
  (void)arg;
  char* p = malloc(4242);
  memset(p, 3, 4242);
  return NULL;
}
int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, run, NULL);
  pthread_join(t, NULL);
  return 0;
}
