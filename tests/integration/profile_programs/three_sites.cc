// three_sites: three allocation sites of known size kept live until exit,
// plus churn that is all freed again. Runs under LD_PRELOAD=libassay.so with
// MALLOC_PROF set; the profile of it is checked against the truth by
// profiles.sh:
//   sites::SmallObjects   200000 x 48 B      (  9 600 000 B live)
//   sites::MediumBuffers    3000 x 4000 B    ( 12 000 000 B live)
//   sites::BigBlocks          40 x 1 MiB     ( 41 943 040 B live)
//   sites::Churn          102400 x 2 KiB     (209 715 200 B allocated, 0 live)
// Usage: three_sites [write KIND PATH]... [hold]
//   write KIND PATH  after the allocations, calls assay_write_profile(KIND,
//                    PATH) (found with dlsym) and prints its result
//   hold             then prints "ready" and waits for EOF on stdin
// Prints "three_sites: pid=N" first and "three_sites: done" last, and exits 0
// (the blocks stay live).
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sites {

constexpr int kSmallCount = 200000;
constexpr size_t kSmallSize = 48;
constexpr int kMediumCount = 3000;
constexpr size_t kMediumSize = 4000;
constexpr int kBigCount = 40;
constexpr size_t kBigSize = size_t{1} << 20;
constexpr int kChurnCount = 102400;
constexpr size_t kChurnSize = 2048;

// Holders live outside the heap, so each site allocates only its blocks.
void* g_small[kSmallCount];
void* g_medium[kMediumCount];
void* g_big[kBigCount];
volatile unsigned char g_sink;

__attribute__((noinline)) void SmallObjects() {
  for (int i = 0; i < kSmallCount; ++i) {
    g_small[i] = malloc(kSmallSize);
    static_cast<unsigned char*>(g_small[i])[0] = static_cast<unsigned char>(i);
  }
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void MediumBuffers() {
  for (int i = 0; i < kMediumCount; ++i) {
    g_medium[i] = malloc(kMediumSize);
    static_cast<unsigned char*>(g_medium[i])[0] = static_cast<unsigned char>(i);
  }
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void BigBlocks() {
  for (int i = 0; i < kBigCount; ++i) {
    g_big[i] = malloc(kBigSize);
    static_cast<unsigned char*>(g_big[i])[0] = static_cast<unsigned char>(i);
  }
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void Churn() {
  for (int i = 0; i < kChurnCount; ++i) {
    void* p = malloc(kChurnSize);
    static_cast<volatile unsigned char*>(p)[0] = static_cast<unsigned char>(i);
    g_sink = static_cast<unsigned char*>(p)[0];
    free(p);
  }
  asm volatile("" ::: "memory");
}

}  // namespace sites

int main(int argc, char** argv) {
  std::printf("three_sites: pid=%d\n", static_cast<int>(getpid()));
  sites::SmallObjects();
  sites::MediumBuffers();
  sites::BigBlocks();
  sites::Churn();
  bool hold = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "write") == 0 && i + 2 < argc) {
      using WriteFn = int (*)(const char*, const char*);
      auto fn = reinterpret_cast<WriteFn>(dlsym(RTLD_DEFAULT, "assay_write_profile"));
      if (fn == nullptr) {
        std::fprintf(stderr, "three_sites: assay_write_profile not found (no LD_PRELOAD?)\n");
        return 2;
      }
      const int rc = fn(argv[i + 1], argv[i + 2]);
      std::printf("write %s: %d\n", argv[i + 1], rc);
      i += 2;
    } else if (std::strcmp(argv[i], "hold") == 0) {
      hold = true;
    } else {
      std::fprintf(stderr, "three_sites: bad argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (hold) {
    std::printf("ready\n");
    std::fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof(buf)) > 0) {
    }
  }
  std::printf("three_sites: done\n");
  return 0;
}
