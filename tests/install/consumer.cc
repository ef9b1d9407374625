// A C++ program built against an installed assay (tests/install/install_tree.sh):
// prints assay_version(), starts a profiling session with the C++ API (every
// allocation sampled), keeps 300 vectors of 5000 bytes from one named
// function live, and writes a heap profile to argv[1].
#include <assay/assay.h>

#include <assay/profiler.hpp>
#include <cstdio>
#include <memory>
#include <vector>

std::vector<std::unique_ptr<std::vector<char>>> g_kept;

__attribute__((noinline)) void consumer_cc_site() {
  for (int i = 0; i < 300; ++i) g_kept.push_back(std::make_unique<std::vector<char>>(5000));
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::printf("%s\n", assay_version());
  if (!assay::Start({.rate = 1})) return 3;
  consumer_cc_site();
  const int rc = assay::WriteProfile("heap", argv[1]);
  assay::Stop();
  if (rc != 0) std::fprintf(stderr, "WriteProfile: %d\n", rc);
  return rc == 0 ? 0 : 1;
}
