// Programs that commit one heap error each (the first argument names it), for
// tests/debug/debug_mode.sh; "clean" runs every pattern without the bug.
// Built with -fno-builtin so the compiler keeps every malloc, free and store.
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Keeps a pointer where the leak scan cannot see it (XOR-masked) while the
// test still needs it, so "lost" blocks are really unreachable.
static uintptr_t g_hidden;

__attribute__((noinline)) char* make_buffer(size_t n) { return malloc(n); }

__attribute__((noinline)) void overrun_by_one(void) {
  char* p = make_buffer(24);
  memset(p, 'x', 25);  // one byte past the end
  free(p);
}

__attribute__((noinline)) void underrun(void) {
  char* p = make_buffer(40);
  p[-1] = 'x';
  free(p);
}

__attribute__((noinline)) void double_free(void) {
  char* p = make_buffer(32);
  free(p);
  free(p);
}

__attribute__((noinline)) void invalid_free(void) {
  char* p = make_buffer(64);
  free(p + 16);
}

__attribute__((noinline)) void stack_free(void) {
  char local[32];
  free(local + (uintptr_t)g_hidden);
}

__attribute__((noinline)) void use_after_free(void) {
  char* p = make_buffer(48);
  free(p);
  p[5] = 'x';  // detected when the block leaves quarantine, or at exit
}

__attribute__((noinline)) void* make_leak(void) { return malloc(100); }

// A block whose only pointer sat in a block that was then freed.
__attribute__((noinline)) void leak_via_freed(void) {
  void** holder = malloc(sizeof(void*) * 4);
  holder[0] = make_leak();
  free(holder);
}

__attribute__((noinline)) void guard_overrun(void) {
  char* p = make_buffer(10000);  // a page or more: against a guard page
  volatile char* q = p;
  q[10000 + 64] = 1;  // faults at once, past the slack before the guard page
}

__attribute__((noinline)) void guard_aligned_underrun(void) {
  void* p = NULL;
  if (posix_memalign(&p, 4096, 8192) != 0) abort();
  volatile char* q = p;
  q[-1] = 1;  // the page before a page-aligned block is a guard page too
}

__attribute__((noinline)) void realloc_overrun(void) {
  char* p = make_buffer(16);
  p[16] = 'y';
  p = realloc(p, 64);  // realloc checks the redzone first
  free(p);
}

__attribute__((noinline)) void guard_small(void) {
  char* p = make_buffer(64);  // guard=1: every block is guarded
  volatile char* q = p;
  q[64] = 1;  // the first byte past the block is on the guard page
}

// Allocates COUNT blocks of SIZE bytes (argv[2], argv[3]), frees them, and
// prints how many were guarded (guarded_total from assay_stats_json).
static void guard_sampling(size_t size, int count) {
  char** blocks = malloc(sizeof(char*) * (size_t)count);
  for (int i = 0; i < count; ++i) blocks[i] = make_buffer(size);
  for (int i = 0; i < count; ++i) free(blocks[i]);
  free(blocks);
  size_t (*stats_json)(char*, size_t) =
      (size_t(*)(char*, size_t))dlsym(RTLD_DEFAULT, "assay_stats_json");
  if (stats_json == NULL) {
    fprintf(stderr, "assay_stats_json not found: run under LD_PRELOAD=libassay.so\n");
    exit(2);
  }
  static char json[1 << 16];
  stats_json(json, sizeof(json));
  const char* g = strstr(json, "\"guarded_total\":");
  if (g == NULL) {
    fprintf(stderr, "no debug section in %s\n", json);
    exit(2);
  }
  printf("guarded %ld of %d\n", strtol(g + strlen("\"guarded_total\":"), NULL, 10), count);
  // With PROFILE_OUT set (and MALLOC_PROF on): the alloc profile, to check
  // that the profiler's estimates stay unbiased while guard points share
  // its countdown.
  const char* out = getenv("PROFILE_OUT");
  if (out != NULL) {
    int (*write_profile)(const char*, const char*) =
        (int (*)(const char*, const char*))dlsym(RTLD_DEFAULT, "assay_write_profile");
    if (write_profile == NULL || write_profile("alloc", out) != 0) {
      fprintf(stderr, "cannot write the alloc profile to %s\n", out);
      exit(2);
    }
  }
}

__attribute__((noinline)) void guard_realloc_overrun(void) {
  char* p = make_buffer(5000);
  p = realloc(p, 6000);
  p = realloc(p, 7000);  // grown in place: room after it up to the guard page
  p[7000] = 1;           // one past the end, still before the guard page
  free(p);
}

__attribute__((noinline)) void big_realloc_overrun(void) {
  char* p = make_buffer(300000);  // a mapping of its own in the debug heap
  p = realloc(p, 310000);         // grown in place, its room kept as redzone
  p[310000] = 1;
  free(p);
}

static void clean(void) {
  char* p = make_buffer(24);
  memset(p, 'x', 24);
  free(p);
  p = make_buffer(40);
  p[0] = 'x';
  free(p);
  p = make_buffer(32);
  free(p);
  p = make_buffer(48);
  p[5] = 'x';
  free(p);
  void** holder = malloc(sizeof(void*) * 4);
  holder[0] = make_leak();
  free(holder[0]);
  free(holder);
  p = make_buffer(10000);
  p[9999] = 1;
  free(p);
  void* a = NULL;
  if (posix_memalign(&a, 4096, 8192) != 0) abort();
  memset(a, 1, 8192);
  free(a);
  p = make_buffer(16);
  p[15] = 'y';
  p = realloc(p, 64);
  p = realloc(p, 300000);
  memset(p, 0, 300000);
  free(p);
  // A buffer grown by small reallocs keeps its contents.
  size_t len = 0;
  p = NULL;
  for (size_t n = 4096; n < 400000; n += 777) {  // small blocks, then mapped ones
    p = realloc(p, n);
    for (size_t i = len; i < n; ++i) p[i] = (char)(i * 7);
    len = n;
  }
  for (size_t i = 0; i < len; ++i) {
    if (p[i] != (char)(i * 7)) abort();
  }
  p = realloc(p, 5000);  // and shrinks
  for (size_t i = 0; i < 5000; ++i) {
    if (p[i] != (char)(i * 7)) abort();
  }
  free(p);
  p = calloc(10, 10);
  for (int i = 0; i < 100; ++i) {
    if (p[i] != 0) abort();
  }
  free(p);
  // Many small blocks through the quarantine, so some leave it.
  for (int i = 0; i < 20000; ++i) {
    char* q = make_buffer((size_t)(i % 2000));
    if (i % 2000 > 0) q[i % 2000 - 1] = 1;
    free(q);
  }
  // A block reachable only through a masked pointer is a leak in "leak"
  // mode; here it is unmasked and freed.
  g_hidden = (uintptr_t)make_leak() ^ 0x5555;
  free((void*)(g_hidden ^ 0x5555));
}

static void leak(void) {
  leak_via_freed();
  g_hidden = (uintptr_t)make_leak() ^ 0x5555;  // masked: unreachable
}

static const struct {
  const char* name;
  void (*run)(void);
} kCases[] = {
    {"overrun", overrun_by_one},
    {"underrun", underrun},
    {"double_free", double_free},
    {"invalid_free", invalid_free},
    {"stack_free", stack_free},
    {"use_after_free", use_after_free},
    {"leak", leak},
    {"guard_overrun", guard_overrun},
    {"guard_aligned", guard_aligned_underrun},
    {"realloc_overrun", realloc_overrun},
    {"guard_realloc_overrun", guard_realloc_overrun},
    {"guard_small", guard_small},
    {"big_realloc_overrun", big_realloc_overrun},
    {"clean", clean},
};

int main(int argc, char** argv) {
  const char* what = argc > 1 ? argv[1] : "clean";
  if (strcmp(what, "guard_sampling") == 0 && argc > 3) {
    guard_sampling((size_t)atol(argv[2]), atoi(argv[3]));
    puts("done");
    return 0;
  }
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); ++i) {
    if (strcmp(what, kCases[i].name) == 0) {
      kCases[i].run();
      puts("done");
      return 0;
    }
  }
  fprintf(stderr, "unknown case %s\n", what);
  return 2;
}
