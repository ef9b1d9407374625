// A program for the source-line tests (source_lines.sh): three allocating
// sites whose lines are marked with "@site-" comments the test finds by grep:
// a plain call, an always_inline function inlined into its caller, and a
// loop. Built -O2 -g, and stripped. Keeps every block live until exit, so the
// final heap profile holds them; with `double_free` it frees a block twice
// (for the debug heap's report), a block allocated in the inlined function.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void* g_keep[4096];
static int g_kept;

static void Keep(void* p) {
  if (g_kept < 4096) g_keep[g_kept++] = p;
}

__attribute__((noinline)) void* direct_site(size_t n) {
  char* p = malloc(n);  // @site-direct
  memset(p, 1, n);
  return p;
}

static inline __attribute__((always_inline)) char* inlined_fill(size_t n) {
  char* p = malloc(n);  // @site-inlined
  memset(p, 2, n);
  return p;
}

__attribute__((noinline)) void* calls_inlined(size_t n) {
  void* p = inlined_fill(n);  // @site-call-inlined
  __asm__ volatile("" ::: "memory");
  return p;
}

__attribute__((noinline)) void double_free(void) {
  char* p = inlined_fill(48);  // @site-double-free-alloc
  free(p);                     // @site-first-free
  free(p);
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "double_free") == 0) {
    double_free();
    return 0;
  }
  for (int i = 0; i < 200; ++i) Keep(direct_site(64 << 10));
  for (int i = 0; i < 100; ++i) Keep(calls_inlined(64 << 10));
  printf("kept %d blocks\n", g_kept);
  return 0;
}
