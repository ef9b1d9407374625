// A thread still running at exit: it leaked one block (777 bytes) and keeps
// another in a local of its live frame (not leaked).
// leaked: 777
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static pthread_barrier_t g_ready;
__attribute__((noinline)) static void drop(void) {
  char* p = malloc(777);
  memset(p, 10, 777);
}
static void* run(void* arg) {
  (void)arg;
  char* volatile kept = malloc(333);
  memset(kept, 11, 333);
  drop();
  pthread_barrier_wait(&g_ready);
  for (;;) pause();
  return (void*)kept;
}
int main(void) {
  pthread_t t;
  pthread_barrier_init(&g_ready, NULL, 2);
  pthread_create(&t, NULL, run, NULL);
  pthread_barrier_wait(&g_ready);
  return 0;
}
