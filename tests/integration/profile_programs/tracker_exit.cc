// tracker_exit: a tracker session (assay::Start with on_alloc) whose callback
// calls exit(3) after N callbacks, while MALLOC_PROF profiling is also on.
// The process must end with status 3 (not hang in the exit dumps that run
// from inside the callback) and write its final profile.
// Usage: tracker_exit [N]   (default 50)
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "assay/profiler.hpp"

namespace {
int g_calls = 0;
int g_limit = 50;
void* g_keep[100000];
}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_limit = std::atoi(argv[1]);
  assay::ProfilerOptions options;
  options.rate = 16 * 1024;
  assay::Tracker tracker;
  tracker.on_alloc = [](const assay::SampledAllocation& a) -> std::optional<assay::Token> {
    if (++g_calls == g_limit) {
      std::printf("tracker_exit: exit(3) from on_alloc after %d callbacks\n", g_calls);
      std::fflush(stdout);
      std::exit(3);
    }
    return reinterpret_cast<assay::Token>(a.address);
  };
  if (!assay::Start(options, tracker)) {
    std::printf("tracker_exit: assay::Start failed\n");
    return 2;
  }
  for (int i = 0; i < 100000; ++i) {
    g_keep[i] = std::malloc(1000);
    static_cast<volatile char*>(g_keep[i])[0] = 1;
  }
  std::printf("tracker_exit: only %d callbacks for 100000 allocations\n", g_calls);
  return 1;
}
