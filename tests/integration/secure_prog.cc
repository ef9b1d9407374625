// The program of secure_exec.sh: linked with libassay.a, run setuid root by
// an unprivileged user. Prints AT_SECURE as the kernel set it (so the test
// knows secure execution was really in force), allocates enough to be
// sampled and profiled, and with `api PATH` writes a profile through the C++
// API, which a setuid program may still use for itself.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include <vector>

#include "assay/profiler.hpp"

int main(int argc, char** argv) {
  printf("AT_SECURE=%lu\n", getauxval(AT_SECURE));
  std::vector<void*> keep;
  for (int i = 0; i < 20000; ++i) keep.push_back(malloc(static_cast<size_t>(64 + i % 4000)));
  if (argc == 3 && strcmp(argv[1], "api") == 0) {
    assay::ProfilerOptions o;
    o.rate = 1;
    if (!assay::Start(o)) {
      printf("api: Start failed\n");
      return 1;
    }
    for (int i = 0; i < 100; ++i) keep.push_back(malloc(1000));
    const int rc = assay::WriteProfile("heap", argv[2]);
    assay::Stop();
    printf("api: WriteProfile %d\n", rc);
    if (rc != 0) return 1;
  }
  for (void* p : keep) free(p);
  printf("done\n");
  return 0;
}
