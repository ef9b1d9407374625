// A thread keeps a block in its __thread variable and exits: its TLS is gone,
// the block is leaked.
// leaked: 1500
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
static __thread void* t_block;
static void* run(void* arg) {
  (void)arg;
  t_block = malloc(1500);
  memset(t_block, 15, 1500);
  return NULL;
}
int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, run, NULL);
  pthread_join(t, NULL);
  return 0;
}
