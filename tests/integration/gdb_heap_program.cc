// gdb_heap_program: builds a known heap for the gdb heap walker test
// (gdb_heap.sh, tools/gdb/assay.py), then stops so that gdb can read it: a
// core file (abort) or a live process (SIGTRAP under `gdb -ex run`, or
// SIGSTOP for `gcore`). Runs under LD_PRELOAD=libassay.so, with or without
// MALLOC_PROF=rate=1 (every block sampled).
//
// Live blocks it leaves (each site a noinline function of its own, so the
// profiler's stacks name it):
//   gdbheap::SmallBlocks        1000 x   24 B  -> class    32
//   gdbheap::MediumBlocks        500 x  100 B  -> class   112
//   gdbheap::KiloBlocks          200 x 1000 B  -> class  1024
//   gdbheap::DistinctMain        700 x 2990 B  -> class  3072 (of 1000; 300 freed)
//   gdbheap::DistinctWorker       77 x 2990 B  -> class  3072 (of 150, another thread,
//                                                 which stays alive with 73 in its cache)
//   gdbheap::RemoteBlocks        200 x  640 B  -> class   640 (of 600; 400 freed by a
//                                                 thread that only frees: chains of
//                                                 32..128 blocks in the transfer cache)
//   gdbheap::StringBlocks        300 x  200 B  -> class   208, C strings "gdb-heap-string-NNN"
//   gdbheap::PointerTables        40 x 1500 B  -> class  1536, each 187 pointers into the heap
//   gdbheap::LargeBlocks          10 x 300 KiB -> large, 5 slices = 327,680 B usable
//   gdbheap::HugeBlocks            2 x   3 MiB -> huge, 3,145,728 B usable
// plus churn that is freed again (free lists in the thread caches, the
// central transfer caches and the spans). Nobody else in the process uses
// classes 208, 640, 1536 and 3072 (the test checks their counts exactly).
//
// Usage: gdb_heap_program [abort|trap|stop]
//   prints "gdb_heap_program: ready pid=N" on stdout, then abort() (default;
//   a core file), raise(SIGTRAP) (stops under gdb) or raise(SIGSTOP).
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace gdbheap {

constexpr size_t kDistinctSize = 2990;

void* g_small[1000];
void* g_medium[500];
void* g_kilo[200];
void* g_distinct[1000];
void* g_worker[150];
void* g_remote[600];
void* g_strings[300];
void* g_tables[40];
void* g_large[10];
void* g_huge[2];
volatile unsigned char g_sink;

void Fill(void* p, size_t n, int seed) { memset(p, 0x40 + seed % 32, n); }

__attribute__((noinline)) void SmallBlocks() {
  for (void*& p : g_small) {
    p = malloc(24);
    Fill(p, 24, 1);
  }
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void MediumBlocks() {
  for (void*& p : g_medium) {
    p = malloc(100);
    Fill(p, 100, 2);
  }
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void KiloBlocks() {
  for (void*& p : g_kilo) {
    p = malloc(1000);
    memset(p, 0, 1000);  // "zeroes" for heap analyze
  }
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void DistinctMain() {
  for (void*& p : g_distinct) {
    p = malloc(kDistinctSize);
    Fill(p, kDistinctSize, 3);
  }
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void StringBlocks() {
  for (int i = 0; i < 300; ++i) {
    char* s = static_cast<char*>(malloc(200));
    memset(s, 0x5a, 200);
    snprintf(s, 200, "gdb-heap-string-%03d", i);
    g_strings[i] = s;
  }
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void PointerTables() {
  for (int t = 0; t < 40; ++t) {
    void** table = static_cast<void**>(malloc(1500));
    for (int i = 0; i < 1500 / 8; ++i) table[i] = g_small[(t * 187 + i) % 1000];
    g_tables[t] = table;
  }
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void LargeBlocks() {
  for (void*& p : g_large) {
    p = malloc(300 * 1024);
    Fill(p, 300 * 1024, 4);
  }
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void HugeBlocks() {
  for (void*& p : g_huge) {
    p = malloc(3 * 1024 * 1024);
    Fill(p, 4096, 5);
  }
  asm volatile("" ::: "memory");
}

// Blocks allocated and freed again in several classes, so that free blocks
// sit in the thread cache, in the central transfer cache and on the spans.
__attribute__((noinline)) void Churn() {
  static void* tmp[4000];
  for (int round = 0; round < 3; ++round) {
    for (void*& p : tmp) p = malloc(24);
    for (int i = 0; i < 4000; i += 2) free(tmp[i]);
    for (int i = 1; i < 4000; i += 2) free(tmp[i]);
  }
  for (void*& p : tmp) p = malloc(1000);
  for (void* p : tmp) free(p);
  for (int i = 0; i < 5; ++i) {
    void* p = malloc(600 * 1024);  // large, freed
    g_sink = static_cast<unsigned char*>(p)[0];
    free(p);
  }
  void* h = malloc(5 * 1024 * 1024);  // huge, freed
  free(h);
}

// The distinct class: 1000 live, then every third of them (and a few more)
// freed until 700 are left.
__attribute__((noinline)) void FreeSomeDistinct() {
  int freed = 0;
  for (int i = 0; i < 1000 && freed < 300; i += 3, ++freed) {
    free(g_distinct[i]);
    g_distinct[i] = nullptr;
  }
  for (int i = 1; i < 1000 && freed < 300; i += 3, ++freed) {
    free(g_distinct[i]);
    g_distinct[i] = nullptr;
  }
}

__attribute__((noinline)) void RemoteBlocks() {
  for (void*& p : g_remote) {
    p = malloc(640);
    Fill(p, 640, 7);
  }
  asm volatile("" ::: "memory");
}

// Frees the first 400 of g_remote and exits: it never allocates the class,
// so its list goes to the central transfer cache as whole chains (and, at
// its exit, what is left in batches).
void* RemoteFreer(void*) {
  for (int i = 0; i < 400; ++i) {
    free(g_remote[i]);
    g_remote[i] = nullptr;
  }
  return nullptr;
}

pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
bool g_worker_done = false;

__attribute__((noinline)) void DistinctWorker() {
  for (void*& p : g_worker) {
    p = malloc(kDistinctSize);
    Fill(p, kDistinctSize, 6);
  }
  asm volatile("" ::: "memory");
}

void* WorkerMain(void*) {
  DistinctWorker();
  for (int i = 0; i < 73; ++i) {  // stay in this thread's cache (bound 85)
    free(g_worker[i * 2]);
    g_worker[i * 2] = nullptr;
  }
  pthread_mutex_lock(&g_mu);
  g_worker_done = true;
  pthread_cond_signal(&g_cv);
  pthread_mutex_unlock(&g_mu);
  for (;;) pause();  // alive (with its cache) when the process stops
  return nullptr;
}

}  // namespace gdbheap

int main(int argc, char** argv) {
  using namespace gdbheap;
  const char* mode = argc > 1 ? argv[1] : "abort";
  if (strcmp(mode, "abort") != 0 && strcmp(mode, "trap") != 0 && strcmp(mode, "stop") != 0) {
    fprintf(stderr, "usage: gdb_heap_program [abort|trap|stop]\n");
    return 2;
  }
  Churn();
  SmallBlocks();
  MediumBlocks();
  KiloBlocks();
  DistinctMain();
  StringBlocks();
  PointerTables();
  LargeBlocks();
  HugeBlocks();
  FreeSomeDistinct();
  RemoteBlocks();
  pthread_t freer;
  if (pthread_create(&freer, nullptr, RemoteFreer, nullptr) != 0 ||
      pthread_join(freer, nullptr) != 0) {
    fprintf(stderr, "gdb_heap_program: remote freer failed\n");
    return 1;
  }

  pthread_t worker;
  if (pthread_create(&worker, nullptr, WorkerMain, nullptr) != 0) {
    fprintf(stderr, "gdb_heap_program: pthread_create failed\n");
    return 1;
  }
  pthread_mutex_lock(&g_mu);
  while (!g_worker_done) pthread_cond_wait(&g_cv, &g_mu);
  pthread_mutex_unlock(&g_mu);

  printf("gdb_heap_program: ready pid=%d\n", static_cast<int>(getpid()));
  fflush(stdout);
  if (strcmp(mode, "trap") == 0) {
    raise(SIGTRAP);
  } else if (strcmp(mode, "stop") == 0) {
    raise(SIGSTOP);
  } else {
    abort();
  }
  // Only after `continue` from gdb (trap/stop): keep everything live.
  for (;;) pause();
}
