// dump_overhead: the cost of one heap profile dump with many sampled blocks.
// Run under LD_PRELOAD=libassay.so with MALLOC_PROF=rate=1,... (every block
// sampled). Keeps COUNT small blocks live (default 100000) from 20 distinct
// stacks, then calls assay_write_profile("heap", PATH) twice (the first also
// loads libassay_pprof.so and reads the symbol tables) and prints, for each:
// wall time, the VmHWM growth over the RSS before it (peak RSS is reset first
// through /proc/self/clear_refs where the kernel allows), the RSS after, and
// the file size. Prints measurements only; exits 1 only if a dump fails.
// Usage: dump_overhead PATH [COUNT]
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr int kStacks = 20;
void** g_blocks;

// Reads a "Key:   123 kB" field of /proc/self/status without stdio.
long StatusKb(const char* key) {
  char buf[8192];
  const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const size_t klen = std::strlen(key);
  for (char* line = buf; line != nullptr && *line != '\0';) {
    if (std::strncmp(line, key, klen) == 0 && line[klen] == ':') return std::atol(line + klen + 1);
    line = std::strchr(line, '\n');
    if (line != nullptr) ++line;
  }
  return -1;
}

bool ResetPeak() {
  const int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = write(fd, "5", 1) == 1;
  close(fd);
  return ok;
}

double NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// Site<K> allocates `count` blocks of its own size at &g_blocks[first]:
// one stack per K (each under a chain of K % 4 + 1 distinct frames).
template <int K>
__attribute__((noinline)) void Site(int first, int count) {
  for (int i = 0; i < count; ++i) {
    const size_t size = 16 + 8 * K;
    g_blocks[first + i] = std::malloc(size);
    static_cast<volatile char*>(g_blocks[first + i])[0] = 1;
  }
  asm volatile("" ::: "memory");
}

template <int K, int Depth>
__attribute__((noinline)) void Chain(int first, int count) {
  if constexpr (Depth == 0) {
    Site<K>(first, count);
  } else {
    Chain<K, Depth - 1>(first, count);
  }
  asm volatile("" ::: "memory");
}

template <int K>
void AllocAll(int per, int total) {
  if constexpr (K < kStacks) {
    const int first = K * per;
    const int count = K == kStacks - 1 ? total - first : per;
    Chain<K, K % 4 + 1>(first, count);
    AllocAll<K + 1>(per, total);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: dump_overhead PATH [COUNT]\n");
    return 2;
  }
  const int count = argc > 2 ? std::atoi(argv[2]) : 100000;
  using WriteFn = int (*)(const char*, const char*);
  auto write_profile = reinterpret_cast<WriteFn>(dlsym(RTLD_DEFAULT, "assay_write_profile"));
  if (write_profile == nullptr) {
    std::fprintf(stderr, "dump_overhead: assay_write_profile not found (no LD_PRELOAD?)\n");
    return 2;
  }
  g_blocks = static_cast<void**>(std::calloc(static_cast<size_t>(count), sizeof(void*)));
  AllocAll<0>(count / kStacks, count);
  std::printf("dump_overhead: %d live blocks from %d stacks\n", count, kStacks);
  int failures = 0;
  for (int round = 1; round <= 2; ++round) {
    const std::string path = std::string(argv[1]) + "." + std::to_string(round) + ".heap.pb.gz";
    const bool reset = ResetPeak();
    const long rss0 = StatusKb("VmRSS");
    const long hwm0 = StatusKb("VmHWM");
    const double t0 = NowMs();
    const int rc = write_profile("heap", path.c_str());
    const double t1 = NowMs();
    const long rss1 = StatusKb("VmRSS");
    const long hwm1 = StatusKb("VmHWM");
    struct stat st {};
    const long size = stat(path.c_str(), &st) == 0 ? static_cast<long>(st.st_size) : -1;
    std::printf(
        "dump %d%s: rc=%d time_ms=%.1f rss_before_kb=%ld hwm_after_kb=%ld "
        "peak_growth_kb=%ld (%s) rss_after_kb=%ld rss_growth_kb=%ld file_bytes=%ld\n",
        round, round == 1 ? " (first: loads the writer)" : "", rc, t1 - t0, rss0, hwm1,
        hwm1 - (reset ? rss0 : hwm0),
        reset ? "VmHWM reset before the dump" : "VmHWM not resettable", rss1, rss1 - rss0, size);
    if (rc != 0 || size <= 0) ++failures;
  }
  return failures == 0 ? 0 : 1;
}
