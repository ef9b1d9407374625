// Blocks kept through static TLS: the main thread's __thread variable, and a
// thread still blocked at exit holding one in its own: not leaked.
// leaked: 0
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static __thread void* t_block;
static pthread_barrier_t g_ready;
static void* run(void* arg) {
  (void)arg;
  t_block = malloc(900);
  memset(t_block, 7, 900);
  pthread_barrier_wait(&g_ready);
  for (;;) pause();
  return NULL;
}
__attribute__((noinline)) void make(void) {
  t_block = malloc(600);
  memset(t_block, 7, 600);
}
int main(void) {
  pthread_t t;
  pthread_barrier_init(&g_ready, NULL, 2);
  pthread_create(&t, NULL, run, NULL);
  pthread_barrier_wait(&g_ready);
  make();
  return 0;
}
