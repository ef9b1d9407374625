/* Link test: this program is linked against assay two ways (see
 * CMakeLists.txt): statically through the assay_whole target
 * (assay_link_static) and dynamically against libassay.so (assay_link_shared).
 * Either way the malloc family it calls, and the one libc calls internally,
 * must be assay's. Exits 0 and prints "PASS" on success. */
#define _GNU_SOURCE
#include <assay/assay.h>
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, ...)                    \
  do {                                      \
    if (!(cond)) {                          \
      fprintf(stderr, "FAIL: %s: ", #cond); \
      fprintf(stderr, __VA_ARGS__);         \
      fprintf(stderr, "\n");                \
      failures++;                           \
    }                                       \
  } while (0)

static size_t allocated_now(void) {
  assay_stats s;
  assay_get_stats(&s);
  return s.allocated;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";

  const char* v = assay_version();
  CHECK(v != NULL && strncmp(v, "assay ", 6) == 0, "assay_version() returned '%s'",
        v ? v : "(null)");
  printf("assay_version: %s\n", v ? v : "(null)");

  /* assay_version must also be what the dynamic linker finds. */
  const char* (*dyn_version)(void) = (const char* (*)(void))dlsym(RTLD_DEFAULT, "assay_version");
  if (strcmp(mode, "shared") == 0) {
    CHECK(dyn_version != NULL && strcmp(dyn_version(), v) == 0, "dlsym(assay_version) = %p",
          (void*)dyn_version);
  }

  void* p = malloc(1000);
  CHECK(p != NULL, "malloc(1000) returned NULL");
  CHECK(malloc_usable_size(p) >= 1000, "malloc_usable_size(malloc(1000)) = %zu",
        malloc_usable_size(p));
  memset(p, 0xab, 1000);
  p = realloc(p, 100000);
  CHECK(p != NULL && ((unsigned char*)p)[999] == 0xab, "realloc lost the contents");
  CHECK(malloc_usable_size(p) >= 100000, "usable size after realloc = %zu", malloc_usable_size(p));
  free(p);

  int* z = calloc(1000, sizeof(int));
  CHECK(z != NULL, "calloc returned NULL");
  for (int i = 0; z != NULL && i < 1000; i++) CHECK(z[i] == 0, "calloc memory not zero at %d", i);
  free(z);

  void* a = NULL;
  CHECK(posix_memalign(&a, 4096, 5000) == 0 && ((uintptr_t)a & 4095) == 0, "posix_memalign: %p", a);
  free(a);
  a = aligned_alloc(256, 512);
  CHECK(a != NULL && ((uintptr_t)a & 255) == 0, "aligned_alloc: %p", a);
  free(a);

  /* The program's own big allocation is counted by assay. */
  size_t before = allocated_now();
  char* big = malloc(8 << 20);
  size_t grew = allocated_now() - before;
  CHECK(big != NULL && grew >= (8u << 20), "assay_stats.allocated grew by %zu for malloc(8 MiB)",
        grew);
  free(big);

  /* libc's internal allocations are served by assay too: strdup mallocs inside
   * libc, and the block is freed here with assay's free. */
  char* text = malloc(4 << 20);
  CHECK(text != NULL, "malloc(4 MiB) returned NULL");
  if (text != NULL) {
    memset(text, 'q', (4 << 20) - 1);
    text[(4 << 20) - 1] = '\0';
    before = allocated_now();
    char* copy = strdup(text);
    grew = allocated_now() - before;
    CHECK(copy != NULL && grew >= (4u << 20),
          "strdup inside libc: assay_stats.allocated grew by %zu", grew);
    CHECK(copy != NULL && malloc_usable_size(copy) >= (4u << 20), "usable size of strdup's block");
    free(copy);
    free(text);
  }

  /* Which object does the program's malloc come from? */
  Dl_info info;
  memset(&info, 0, sizeof info);
  void* (*volatile malloc_ptr)(size_t) = malloc;
  if (dladdr((void*)malloc_ptr, &info) != 0) {
    const char* from = info.dli_fname ? info.dli_fname : "";
    printf("malloc from: %s\n", from[0] ? from : "(the executable)");
    CHECK(strstr(from, "libc.so") == NULL, "malloc resolves to libc: %s", from);
    if (strcmp(mode, "shared") == 0)
      CHECK(strstr(from, "libassay") != NULL, "malloc from %s", from);
    if (strcmp(mode, "static") == 0)
      CHECK(strstr(from, "libassay") == NULL, "malloc from %s", from);
  }

  if (failures != 0) {
    fprintf(stderr, "%d check(s) failed (%s link)\n", failures, mode);
    return 1;
  }
  printf("PASS (%s link)\n", mode);
  return 0;
}
