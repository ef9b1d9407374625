// Fault injection: the OS seam's mmap/mremap made to fail (base/os.h,
// SetFaultInjector; built with ASSAY_FAULT_INJECTION and ASSAY_CHECKED).
//   fault_injection_test oom          every API at every size driven to out of memory
//   fault_injection_test random SEED  a mixed workload with 1 in 4 maps failing
//   fault_injection_test disk FULL RO OK   profile writes to a full and a read-only
//                                         directory, then to a writable one
// Out of memory must give NULL + ENOMEM (posix_memalign: its result, errno
// untouched; operator new: std::bad_alloc), comalloc all or nothing, a valid
// heap (assay_check_heap), and allocations that succeed once injection stops.
// Run plain and with MALLOC_PROF=rate=1 (the profiler's arena maps too).
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <new>

#include "assay/assay.h"
#include "assay/profiler.hpp"
#include "base/os.h"
#include "tests/check_heap.h"

namespace os = assay::internal::os;

namespace {

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      fprintf(stderr, "fault_injection_test: %s failed at line %d\n", #cond, __LINE__); \
      abort();                                                                          \
    }                                                                                   \
  } while (0)

// ---- The injector: never allocates (it runs inside the allocator).
enum Mode : int { kOff, kAll, kRandom };
std::atomic<int> g_mode{kOff};
std::atomic<uint64_t> g_rng{1};
std::atomic<uint64_t> g_injected{0};
std::atomic<uint64_t> g_asked{0};

bool Injector(os::FaultOp, size_t) {
  g_asked.fetch_add(1, std::memory_order_relaxed);
  bool fail = false;
  switch (g_mode.load(std::memory_order_relaxed)) {
    case kAll:
      fail = true;
      break;
    case kRandom: {
      uint64_t x = g_rng.load(std::memory_order_relaxed);
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      g_rng.store(x, std::memory_order_relaxed);
      fail = x % 4 == 0;
      break;
    }
    default:
      break;
  }
  if (fail) g_injected.fetch_add(1, std::memory_order_relaxed);
  return fail;
}

// Pointers kept while the heap is exhausted, in memory of our own (not
// malloc's: the array must not depend on the allocator under test).
struct Kept {
  void* p;
  size_t size;
  int how;  // 0 free, 1 delete, 2 aligned delete
  size_t align;
};
constexpr size_t kMaxKept = size_t{1} << 22;
Kept* g_kept = nullptr;
size_t g_count = 0;

unsigned char Mark(const void* p) {
  return static_cast<unsigned char>(reinterpret_cast<uintptr_t>(p) >> 4);
}

void Keep(void* p, size_t size, int how = 0, size_t align = 0) {
  CHECK(g_count < kMaxKept);
  if (size > 0) {
    static_cast<unsigned char*>(p)[0] = Mark(p);
    static_cast<unsigned char*>(p)[size - 1] = Mark(p);
  }
  g_kept[g_count++] = Kept{p, size, how, align};
}

void ReleaseAll() {
  for (size_t i = 0; i < g_count; ++i) {
    const Kept& k = g_kept[i];
    if (k.size > 0) {
      CHECK(static_cast<unsigned char*>(k.p)[0] == Mark(k.p));
      CHECK(static_cast<unsigned char*>(k.p)[k.size - 1] == Mark(k.p));
    }
    if (k.how == 0) {
      free(k.p);
    } else if (k.how == 1) {
      ::operator delete(k.p);
    } else {
      ::operator delete (k.p, std::align_val_t{k.align});
    }
  }
  g_count = 0;
}

constexpr size_t kSizes[] = {16, 100, 4000, 100 << 10, 1 << 20, 16 << 20};
constexpr size_t kBound = size_t{1} << 21;  // calls before an exhausted heap must fail

// Calls `alloc` until it fails; checks the failure with `failed`.
template <typename Alloc>
void Exhaust(const char* what, size_t size, Alloc alloc) {
  for (size_t i = 0; i < kBound; ++i) {
    if (!alloc()) {
      printf("  %-14s %9zu bytes: out of memory after %zu blocks\n", what, size, i);
      return;
    }
  }
  fprintf(stderr, "%s(%zu) never failed\n", what, size);
  abort();
}

void OomAtSize(size_t size) {
  // malloc
  Exhaust("malloc", size, [&] {
    errno = 0;
    void* p = malloc(size);
    if (p == nullptr) {
      CHECK(errno == ENOMEM);
      return false;
    }
    Keep(p, size);
    return true;
  });
  // comalloc with the exhausted size last: the blocks before it are taken
  // and given back, out[] untouched, nothing left allocated.
  {
    assay_stats before, after;
    const size_t sizes[4] = {24, 48, 200, size};
    void* out[4] = {&g_count, &g_count, &g_count, &g_count};
    assay_get_stats(&before);
    CHECK(assay_comalloc(4, sizes, out) == ENOMEM);
    assay_get_stats(&after);
    for (void* p : out) CHECK(p == &g_count);
    CHECK(after.allocated == before.allocated);
  }
  Exhaust("calloc", size, [&] {
    errno = 0;
    void* p = calloc(1, size);
    if (p == nullptr) {
      CHECK(errno == ENOMEM);
      return false;
    }
    Keep(p, size);
    return true;
  });
  Exhaust("realloc", size, [&] {
    // An 8-byte block (taken before the heap ran out, or kept from the
    // others) grown to size: on failure it is untouched.
    static unsigned char* small = nullptr;
    if (small == nullptr) {
      Mode m = static_cast<Mode>(g_mode.exchange(kOff));
      small = static_cast<unsigned char*>(malloc(8));
      g_mode = m;
      CHECK(small != nullptr);
      memcpy(small, "abcdefg", 8);
    }
    errno = 0;
    void* q = realloc(small, size);
    if (q == nullptr) {
      CHECK(errno == ENOMEM);
      CHECK(memcmp(small, "abcdefg", 8) == 0);
      return false;
    }
    CHECK(memcmp(q, "abcdefg", 8) == 0);
    Keep(q, size);
    small = nullptr;
    return true;
  });
  Exhaust("aligned_alloc", size, [&] {
    errno = 0;
    void* p = aligned_alloc(64, size);
    if (p == nullptr) {
      CHECK(errno == ENOMEM);
      return false;
    }
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    Keep(p, size);
    return true;
  });
  Exhaust("posix_memalign", size, [&] {
    errno = 12345;
    void* p = nullptr;
    const int rc = posix_memalign(&p, 4096, size);
    CHECK(errno == 12345);  // the result says it, not errno
    if (rc != 0) {
      CHECK(rc == ENOMEM);
      CHECK(p == nullptr);
      return false;
    }
    Keep(p, size);
    return true;
  });
  Exhaust("memalign", size, [&] {
    errno = 0;
    void* p = memalign(256, size);
    if (p == nullptr) {
      CHECK(errno == ENOMEM);
      return false;
    }
    Keep(p, size);
    return true;
  });
  Exhaust("new", size, [&] {
    try {
      Keep(::operator new(size), size, 1);
      return true;
    } catch (const std::bad_alloc&) {
      return false;
    }
  });
  Exhaust("new(align)", size, [&] {
    try {
      Keep(::operator new (size, std::align_val_t{512}), size, 2, 512);
      return true;
    } catch (const std::bad_alloc&) {
      return false;
    }
  });
  Exhaust("new(nothrow)", size, [&] {
    void* p = ::operator new(size, std::nothrow);
    if (p == nullptr) return false;
    Keep(p, size, 1);
    return true;
  });
  CHECK(assay_check_heap(1) == 1);
}

int Oom() {
  for (size_t size : kSizes) {
    g_mode = kAll;
    OomAtSize(size);
    g_mode = kOff;
    // Usable again at once, with the exhausted blocks still live.
    void* p = malloc(size);
    CHECK(p != nullptr);
    free(p);
    ReleaseAll();
    CHECK(assay_check_heap(1) == 1);
  }
  for (size_t size : kSizes) {
    void* p = malloc(size);
    CHECK(p != nullptr);
    memset(p, 1, size);
    free(p);
  }
  printf("oom: %llu of %llu maps refused\n", static_cast<unsigned long long>(g_injected.load()),
         static_cast<unsigned long long>(g_asked.load()));
  CHECK(g_injected.load() > 0);
  return 0;
}

// A mixed workload while 1 in 4 maps and remaps fail.
int Random(uint64_t seed) {
  g_rng = seed * 0x9e3779b97f4a7c15ull | 1;
  uint64_t r = seed + 1;
  auto next = [&] {
    r ^= r << 13;
    r ^= r >> 7;
    r ^= r << 17;
    return r;
  };
  constexpr size_t kSlots = 256;
  Kept slots[kSlots] = {};
  uint64_t failures = 0;
  g_mode = kRandom;
  for (int op = 0; op < 20000; ++op) {
    Kept& s = slots[next() % kSlots];
    const size_t size = kSizes[next() % 6] + next() % 64;
    const int what = static_cast<int>(next() % 6);
    if (s.p != nullptr && what != 2) {
      CHECK(static_cast<unsigned char*>(s.p)[0] == Mark(s.p));
      if (s.how == 2) {
        ::operator delete (s.p, std::align_val_t{s.align});
      } else {
        free(s.p);
      }
      s = Kept{};
    }
    void* p = nullptr;
    int how = 0;
    size_t align = 0;
    errno = 0;
    switch (what) {
      case 0:
        p = malloc(size);
        break;
      case 1:
        p = calloc(1, size);
        break;
      case 2: {
        void* q = realloc(s.p, size);
        if (q == nullptr) {
          CHECK(errno == ENOMEM);
          if (s.p != nullptr) CHECK(static_cast<unsigned char*>(s.p)[0] == Mark(s.p));
          ++failures;
          continue;
        }
        s = Kept{};
        p = q;
        break;
      }
      case 3: {
        const int rc = posix_memalign(&p, 1 << (next() % 16 + 3), size);
        CHECK(rc == 0 || rc == ENOMEM);
        if (rc != 0) errno = ENOMEM;
        break;
      }
      case 4:
        align = size_t{1} << (next() % 20 + 4);
        how = 2;
        try {
          p = ::operator new (size, std::align_val_t{align});
        } catch (const std::bad_alloc&) {
          errno = ENOMEM;
        }
        break;
      default: {
        size_t sizes[3] = {size, 40, size / 3};
        void* out[3] = {nullptr, nullptr, nullptr};
        if (assay_comalloc(3, sizes, out) != 0) {
          for (void* o : out) CHECK(o == nullptr);
          ++failures;
          continue;
        }
        free(out[1]);
        free(out[2]);
        p = out[0];
      }
    }
    if (p == nullptr) {
      CHECK(errno == ENOMEM);
      ++failures;
      continue;
    }
    static_cast<unsigned char*>(p)[0] = Mark(p);
    s = Kept{p, size, how, align};
    if (op % 2000 == 0) CHECK(assay_check_heap(1) == 1);
  }
  g_mode = kOff;
  CHECK(assay_check_heap(1) == 1);
  for (Kept& s : slots) {
    if (s.p == nullptr) continue;
    CHECK(static_cast<unsigned char*>(s.p)[0] == Mark(s.p));
    if (s.how == 2) {
      ::operator delete (s.p, std::align_val_t{s.align});
    } else {
      free(s.p);
    }
  }
  for (size_t size : kSizes) {
    void* p = malloc(size);
    CHECK(p != nullptr);
    free(p);
  }
  CHECK(assay_check_heap(1) == 1);
  printf("random %llu: %llu allocations failed, %llu of %llu maps refused\n",
         static_cast<unsigned long long>(seed), static_cast<unsigned long long>(failures),
         static_cast<unsigned long long>(g_injected.load()),
         static_cast<unsigned long long>(g_asked.load()));
  CHECK(failures > 0);
  return 0;
}

bool NonEmptyFile(const char* path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

// Profile writes that fail (a full directory, a read-only one): each
// returns its error, the dump failure is reported once, profiling goes on,
// and a write to a writable path then succeeds. MALLOC_PROF sets the prefix
// in the full directory and a small interval, so the dump thread fails too.
int Disk(const char* full, const char* ro, const char* ok) {
  CHECK(assay::IsRunning() || getenv("MALLOC_PROF") != nullptr);
  void* keep[256];
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 256; ++i) keep[i] = malloc(4096 + i);
    for (int i = 0; i < 256; ++i) free(keep[i]);
    const int rc = assay_write_profile("heap", nullptr);  // the next name under FULL
    printf("write to the full directory %s: %d (%s)\n", full, rc, strerror(rc));
    CHECK(rc != 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/heap.pb.gz", ro);
    const int rc2 = assay_write_profile("heap", path);
    printf("write to the read-only directory: %d (%s)\n", rc2, strerror(rc2));
    CHECK(rc2 != 0);
    usleep(20000);  // the dump thread's interval dumps fail meanwhile
  }
  const uint64_t samples = assay::GetProfilerStats().samples;
  for (int i = 0; i < 256; ++i) keep[i] = malloc(4096 + i);
  CHECK(assay::GetProfilerStats().samples > samples);  // still sampling
  char path[512];
  snprintf(path, sizeof(path), "%s/heap.pb.gz", ok);
  CHECK(assay_write_profile("heap", path) == 0);
  CHECK(NonEmptyFile(path));
  for (int i = 0; i < 256; ++i) free(keep[i]);
  // Our own cache and the shared structures only: the dump thread may be
  // allocating right now (its interval dumps), so no thread but this one is
  // quiescent (checking every cache failed now and then on its list).
  CHECK(assay_check_heap(0) == 1);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CHECK(assay_check_heap(0) == 1);  // a checked build: the walks run
  os::SetFaultInjector(Injector);
  void* kept = mmap(nullptr, kMaxKept * sizeof(Kept), PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  CHECK(kept != MAP_FAILED);
  g_kept = static_cast<Kept*>(kept);
  setvbuf(stdout, nullptr, _IONBF, 0);
  if (argc >= 2 && strcmp(argv[1], "oom") == 0) return Oom();
  if (argc >= 3 && strcmp(argv[1], "random") == 0) return Random(strtoull(argv[2], nullptr, 10));
  if (argc >= 5 && strcmp(argv[1], "disk") == 0) return Disk(argv[2], argv[3], argv[4]);
  fprintf(stderr, "usage: fault_injection_test oom | random SEED | disk FULL RO OK\n");
  return 2;
}
