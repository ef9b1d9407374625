// A block kept through dynamic TLS (a __thread variable of a dlopen'ed
// library, allocated by the dynamic linker): not leaked. argv[1]: the library.
// leaked: 0
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char** argv) {
  if (argc < 2) return 2;
  void* lib = dlopen(argv[1], RTLD_NOW);
  if (lib == NULL) {
    fprintf(stderr, "%s\n", dlerror());
    return 2;
  }
  void (*keep)(size_t) = (void (*)(size_t))dlsym(lib, "lib_keep");
  keep(2500);
  return 0;
}
