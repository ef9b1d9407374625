// Whole-program workload for the seed glibc-memory-not-returned.txt: rounds
// of 2 MiB blocks (each preceded by a 2 MiB allocate-and-free, which moves
// glibc's mmap threshold) and a pool of 64 KiB blocks, all freed but a few.
// Prints VmRSS before, at peak, right after the frees, and after 2 s idle.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

size_t ResidentKiB() {
  char buf[4096];
  const int fd = open("/proc/self/status", O_RDONLY);
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  const char* line = strstr(buf, "VmRSS:");
  return line == nullptr ? 0 : strtoull(line + 6, nullptr, 10);
}

}  // namespace

int main() {
  const size_t before = ResidentKiB();
  size_t peak = 0;
  std::vector<void*> kept;
  for (int round = 0; round < 4; ++round) {
    std::vector<char*> big;
    std::vector<char*> pool;
    for (int i = 0; i < 48; ++i) {
      delete[] new char[2 << 20];
      big.push_back(new char[2 << 20]);
      memset(big.back(), 1, 2 << 20);
    }
    for (int i = 0; i < 2000; ++i) {
      pool.push_back(new char[64 << 10]);
      memset(pool.back(), 2, 64 << 10);
    }
    const size_t rss = ResidentKiB();
    peak = rss > peak ? rss : peak;
    // The seed's pattern: the big blocks go first, then the pool, but the
    // last pool blocks allocated stay live (they sit at the top of glibc's heap).
    for (char* p : big) delete[] p;
    for (size_t i = 0; i < pool.size(); ++i) {
      if (round == 3 && i >= pool.size() - 100) {
        kept.push_back(pool[i]);
      } else {
        delete[] pool[i];
      }
    }
  }
  const size_t after_free = ResidentKiB();
  sleep(2);
  const size_t idle = ResidentKiB();
  std::printf("live %zu MiB | rss MiB: before %zu, peak %zu, after free %zu, after 2 s idle %zu\n",
              kept.size() * 64 / 1024, before / 1024, peak / 1024, after_free / 1024, idle / 1024);
  for (void* p : kept) delete[] static_cast<char*>(p);
  return 0;
}
