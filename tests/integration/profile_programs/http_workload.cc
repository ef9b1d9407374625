// A server-like program for the HTTP endpoint test (http_endpoint.sh): it
// allocates and frees in a loop from two named sites, keeping a ring of live
// blocks, until a stop file appears (or --max-seconds pass), or for a fixed
// number of iterations; then prints its iteration count, its elapsed time and
// the longest gap between two progress checks (a stall shows there), and
// exits 0. It links nothing of assay: run it under LD_PRELOAD=libassay.so.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace {

double ClockS(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}
double NowS() { return ClockS(CLOCK_MONOTONIC); }

}  // namespace

extern "C" __attribute__((noinline, used)) void* http_workload_small_site(size_t n) {
  char* p = static_cast<char*>(malloc(n));
  if (p != nullptr) memset(p, 1, n);
  return p;
}

extern "C" __attribute__((noinline, used)) void* http_workload_big_site(size_t n) {
  char* p = static_cast<char*>(malloc(n));
  if (p != nullptr) p[0] = p[n - 1] = 2;
  return p;
}

int main(int argc, char** argv) {
  const char* stop_file = nullptr;
  double max_seconds = 60;
  unsigned long long fixed = 0;  // iterations; 0: until stopped
  bool fork_child = false;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--stop-file") == 0 && i + 1 < argc) {
      stop_file = argv[++i];
    } else if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc) {
      max_seconds = atof(argv[++i]);
    } else if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
      fixed = strtoull(argv[++i], nullptr, 10);
    } else if (strcmp(argv[i], "--fork") == 0) {
      fork_child = true;
    } else {
      fprintf(stderr, "usage: %s [--stop-file F] [--max-seconds S] [--iterations N] [--fork]\n",
              argv[0]);
      return 2;
    }
  }
  if (fork_child) {  // a child that allocates a little and exits: the endpoint stays the parent's
    const pid_t pid = fork();
    if (pid == 0) {
      for (int i = 0; i < 1000; ++i) free(http_workload_small_site(100));
      usleep(300 * 1000);
      _exit(0);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      fprintf(stderr, "the fork child failed\n");
      return 1;
    }
  }
  constexpr size_t kRing = 4096;
  static void* ring[kRing];
  const double start = NowS();
  double last_check = start, max_gap = 0;
  unsigned long long it = 0;
  for (;; ++it) {
    if (fixed != 0 && it == fixed) break;
    const size_t slot = it % kRing;
    free(ring[slot]);
    ring[slot] = (it % 16 == 0) ? http_workload_big_site(64 * 1024 + (it % 7) * 512)
                                : http_workload_small_site(64 + (it * 37) % 960);
    if ((it & 1023) == 0) {
      const double now = NowS();
      if (now - last_check > max_gap) max_gap = now - last_check;
      last_check = now;
      if (fixed == 0) {
        struct stat st;
        if (now - start > max_seconds || (stop_file != nullptr && stat(stop_file, &st) == 0)) break;
      }
    }
  }
  const double elapsed = NowS() - start;
  for (void* p : ring) free(p);
  // CPU seconds of this (the working) thread, and of the whole process (the
  // profiler's threads included).
  printf("iterations %llu elapsed_s %.3f max_gap_ms %.1f thread_cpu_s %.3f process_cpu_s %.3f\n",
         it, elapsed, max_gap * 1000, ClockS(CLOCK_THREAD_CPUTIME_ID),
         ClockS(CLOCK_PROCESS_CPUTIME_ID));
  return 0;
}
