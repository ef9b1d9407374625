// A library (dlopen'ed by tls_dlopen.c) with a dynamic __thread variable.
#include <stdlib.h>
#include <string.h>
__thread void* lib_block;
void lib_keep(size_t n) {
  lib_block = malloc(n);
  memset(lib_block, 8, n);
}
