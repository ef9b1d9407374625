/* A C program built against an installed assay (tests/install/install_tree.sh):
 * prints assay_version(), allocates 512 blocks of 4000 bytes in one named
 * function that it keeps live, and writes a heap profile to argv[1]. */
#include <assay/assay.h>
#include <stdio.h>
#include <stdlib.h>

static void* blocks[512];

__attribute__((noinline)) void consumer_c_site(void) {
  for (int i = 0; i < 512; ++i) blocks[i] = malloc(4000);
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  printf("%s\n", assay_version());
  consumer_c_site();
  const int rc = assay_write_profile("heap", argv[1]);
  if (rc != 0) fprintf(stderr, "assay_write_profile: %d\n", rc);
  for (int i = 0; i < 512; ++i) free(blocks[i]);
  return rc == 0 ? 0 : 1;
}
