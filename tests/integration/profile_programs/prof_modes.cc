// prof_modes: small programs for the MALLOC_PROF tests of profiles.sh, one
// per mode, run under LD_PRELOAD=libassay.so. Each prints a last line
// "<mode>: done" (unless it ends otherwise on purpose) and exits 0.
//   basic               keeps ~2.1 MB live in two sites and exits
//   run MS              allocates and frees steadily for MS milliseconds
//   churn MB            loads the profile writer, then allocates and frees MB
//                       megabytes in 64 KiB blocks
//   signal              prints "ready pid=N", then waits for EOF on stdin
//   fork PREFIX         writes a heap profile (default name), forks a child that
//                       allocates and exits normally, writes another; prints
//                       both pids and the inode of its first file
//   fork_stress N       forks N children (each allocates, then exit(0)) while
//                       another thread allocates without pause; fails if a
//                       child does not finish within 5 s
//   thread_exit         a second thread allocates and calls exit(0)
//   underscore_exit     allocates, then _exit(0)
//   fork_exec N         N times: fork, exec /bin/true, wait
//   cache N             an object cache "prof-modes-cache" (assay_cache_*, found
//                       with dlsym) of 100-byte objects: keeps N of them, plus
//                       N ordinary 100-byte mallocs, and exits (both leak)
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

volatile unsigned char g_sink;
void* g_keep[4096];

int WriteProfile(const char* kind, const char* path) {
  using WriteFn = int (*)(const char*, const char*);
  auto fn = reinterpret_cast<WriteFn>(dlsym(RTLD_DEFAULT, "assay_write_profile"));
  if (fn == nullptr) {
    std::fprintf(stderr, "prof_modes: assay_write_profile not found (no LD_PRELOAD?)\n");
    std::exit(2);
  }
  return fn(kind, path);
}

uint64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

void SleepMs(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

void* Touch(void* p, size_t n) {
  if (p == nullptr) {
    std::fprintf(stderr, "prof_modes: out of memory\n");
    std::exit(2);
  }
  static_cast<volatile unsigned char*>(p)[0] = 1;
  static_cast<volatile unsigned char*>(p)[n - 1] = 2;
  return p;
}

__attribute__((noinline)) void KeepLarge() {
  for (int i = 0; i < 32; ++i) g_keep[i] = Touch(std::malloc(64 << 10), 64 << 10);
}

__attribute__((noinline)) void KeepSmall() {
  for (int i = 32; i < 1032; ++i) g_keep[i] = Touch(std::malloc(100), 100);
}

__attribute__((noinline)) void ChurnBlocks(size_t count, size_t size) {
  for (size_t i = 0; i < count; ++i) {
    void* p = Touch(std::malloc(size), size);
    g_sink = static_cast<unsigned char*>(p)[0];
    std::free(p);
  }
}

int Basic() {
  KeepLarge();
  KeepSmall();
  std::printf("basic: done\n");
  return 0;
}

int Run(int ms) {
  KeepLarge();
  const uint64_t end = NowMs() + static_cast<uint64_t>(ms);
  while (NowMs() < end) {
    ChurnBlocks(100, 16 << 10);
    SleepMs(10);
  }
  std::printf("run: done\n");
  return 0;
}

// Loads the profile writer (the pprof plugin) by writing a heap profile
// to /dev/null, as a program's first dump would.
void LoadWriter() {
  using ToFdFn = int (*)(const char*, int);
  auto fn = reinterpret_cast<ToFdFn>(dlsym(RTLD_DEFAULT, "assay_profile_to_fd"));
  const int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (fn == nullptr || fd < 0 || fn("heap", fd) != 0) {
    std::fprintf(stderr, "prof_modes: no heap profile to /dev/null (no LD_PRELOAD?)\n");
    std::exit(2);
  }
  close(fd);
}

int Churn(int mb) {
  // 1 MiB at a time, with a pause: a program that allocates steadily, at
  // about 100 MiB/s. Interval dumps requested while the dump thread writes
  // one coalesce. The first dump of a process loads the writer (~0.2 s,
  // 1.3 s on a loaded CI machine, where the whole churn passed within it
  // and an 8 MiB interval left 2 files): it is loaded before the churn.
  LoadWriter();
  for (int i = 0; i < mb; ++i) {
    ChurnBlocks(16, 64 << 10);
    SleepMs(10);
  }
  std::printf("churn: done\n");
  return 0;
}

int Signal() {
  KeepLarge();
  std::printf("ready pid=%d\n", static_cast<int>(getpid()));
  std::fflush(stdout);
  char buf[64];
  ssize_t r;
  while ((r = read(0, buf, sizeof(buf))) != 0) {
    if (r < 0 && errno != EINTR) break;
  }
  std::printf("signal: done\n");
  return 0;
}

int Fork(const char* prefix) {
  KeepLarge();
  const std::string first = std::string(prefix) + "." + std::to_string(getpid()) + ".0.heap.pb.gz";
  int rc = WriteProfile("heap", nullptr);
  struct stat st {};
  if (rc != 0 || stat(first.c_str(), &st) != 0) {
    std::printf("fork: first write rc=%d, %s missing\n", rc, first.c_str());
    return 1;
  }
  std::printf("parent pid=%d inode0=%lu\n", static_cast<int>(getpid()),
              static_cast<unsigned long>(st.st_ino));
  std::fflush(stdout);
  const pid_t child = fork();
  if (child < 0) {
    std::perror("fork");
    return 1;
  }
  if (child == 0) {
    KeepSmall();
    ChurnBlocks(200, 32 << 10);
    std::printf("child pid=%d\n", static_cast<int>(getpid()));
    std::exit(0);  // atexit handlers run: the child's own exit dumps
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::printf("fork: child failed, status 0x%x\n", status);
    return 1;
  }
  rc = WriteProfile("heap", nullptr);
  std::printf("parent second write rc=%d\n", rc);
  std::printf("fork: done\n");
  return rc == 0 ? 0 : 1;
}

volatile bool g_stop = false;

void* Allocator(void*) {
  while (!g_stop) ChurnBlocks(64, 8 << 10);
  return nullptr;
}

int ForkStress(int n) {
  KeepLarge();
  pthread_t t;
  pthread_create(&t, nullptr, Allocator, nullptr);
  int hung = 0, failed = 0;
  for (int i = 0; i < n; ++i) {
    ChurnBlocks(64, 8 << 10);
    std::fflush(stdout);
    const pid_t child = fork();
    if (child < 0) {
      std::perror("fork");
      return 1;
    }
    if (child == 0) {
      ChurnBlocks(64, 8 << 10);
      std::exit(0);
    }
    int status = 0;
    const uint64_t deadline = NowMs() + 5000;
    pid_t w = 0;
    while ((w = waitpid(child, &status, WNOHANG)) == 0 && NowMs() < deadline) SleepMs(2);
    if (w == 0) {
      std::printf("fork_stress: child %d (fork %d) still running after 5 s\n",
                  static_cast<int>(child), i);
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      ++hung;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::printf("fork_stress: child %d (fork %d) ended with status 0x%x\n",
                  static_cast<int>(child), i, status);
      ++failed;
    }
    if (hung > 0) break;
  }
  g_stop = true;
  pthread_join(t, nullptr);
  std::printf("fork_stress: %d forks, %d hung, %d failed\n", n, hung, failed);
  std::printf("fork_stress: done\n");
  return hung + failed == 0 ? 0 : 1;
}

void* ExitingThread(void*) {
  KeepLarge();
  KeepSmall();
  std::printf("thread_exit: exiting from a second thread\n");
  std::fflush(stdout);
  std::exit(0);
}

int ThreadExit() {
  pthread_t t;
  pthread_create(&t, nullptr, ExitingThread, nullptr);
  pthread_join(t, nullptr);  // never returns: the thread exits the process
  std::printf("thread_exit: the thread returned\n");
  return 1;
}

int UnderscoreExit() {
  KeepLarge();
  KeepSmall();
  std::printf("underscore_exit: calling _exit\n");
  std::fflush(stdout);
  _exit(0);
}

int ForkExec(int n) {
  KeepLarge();
  for (int i = 0; i < n; ++i) {
    std::fflush(stdout);
    const pid_t child = fork();
    if (child < 0) {
      std::perror("fork");
      return 1;
    }
    if (child == 0) {
      execl("/bin/true", "true", static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::printf("fork_exec: /bin/true ended with status 0x%x\n", status);
      return 1;
    }
    ChurnBlocks(50, 16 << 10);
  }
  std::printf("fork_exec: done\n");
  return 0;
}

// Keeps n objects of an object cache and n ordinary mallocs of the same size.
int Cache(int n) {
  using CreateFn = void* (*)(const char*, size_t, size_t, int (*)(void*, void*),
                             void (*)(void*, void*), void*, unsigned);
  using AllocFn = void* (*)(void*, unsigned);
  auto create = reinterpret_cast<CreateFn>(dlsym(RTLD_DEFAULT, "assay_cache_create"));
  auto alloc = reinterpret_cast<AllocFn>(dlsym(RTLD_DEFAULT, "assay_cache_alloc"));
  if (create == nullptr || alloc == nullptr) {
    std::fprintf(stderr, "prof_modes: assay_cache_* not found (no LD_PRELOAD?)\n");
    return 2;
  }
  void* cache = create("prof-modes-cache", 100, 0, nullptr, nullptr, nullptr, 0);
  if (cache == nullptr) return 2;
  auto** keep = static_cast<void**>(std::malloc(2 * static_cast<size_t>(n) * sizeof(void*)));
  if (keep == nullptr) return 2;
  for (int i = 0; i < n; ++i) {
    keep[2 * i] = Touch(alloc(cache, 0), 100);
    keep[2 * i + 1] = Touch(std::malloc(100), 100);
  }
  std::printf("cache: done\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const int arg = argc > 2 ? std::atoi(argv[2]) : 0;
  if (mode == "basic") return Basic();
  if (mode == "run" && arg > 0) return Run(arg);
  if (mode == "churn" && arg > 0) return Churn(arg);
  if (mode == "signal") return Signal();
  if (mode == "fork" && argc > 2) return Fork(argv[2]);
  if (mode == "fork_stress" && arg > 0) return ForkStress(arg);
  if (mode == "thread_exit") return ThreadExit();
  if (mode == "underscore_exit") return UnderscoreExit();
  if (mode == "fork_exec" && arg > 0) return ForkExec(arg);
  if (mode == "cache" && arg > 0) return Cache(arg);
  std::fprintf(stderr, "usage: prof_modes MODE [ARG] (see the source)\n");
  return 2;
}
