// Linux implementation of the OS seam (base/os.h).
#include "base/os.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "base/vdso.h"

// glibc's: what pthread_atfork (libc_nonshared.a) calls, with the calling
// object's handle (crtbegin's, hidden).
extern "C" int __register_atfork(void (*prepare)(), void (*parent)(), void (*child)(),
                                 void* dso_handle);
extern "C" int __cxa_atexit(void (*fn)(void*), void* arg, void* dso_handle);
extern "C" void* __dso_handle __attribute__((visibility("hidden")));

extern char** environ;

namespace assay::internal::os {
namespace {

// Restores errno when it goes out of scope.
class ErrnoKeeper {
 public:
  ErrnoKeeper() : saved_(errno) {}
  ~ErrnoKeeper() { errno = saved_; }

 private:
  int saved_;
};

#ifdef ASSAY_FAULT_INJECTION
std::atomic<FaultInjector> g_injector{nullptr};

// True if the injector asks this call to fail.
bool InjectFault(FaultOp op, size_t size) {
  const FaultInjector f = g_injector.load(std::memory_order_acquire);
  return f != nullptr && f(op, size);
}
#else
constexpr bool InjectFault(FaultOp, size_t) { return false; }
#endif

}  // namespace

#ifdef ASSAY_FAULT_INJECTION
void SetFaultInjector(FaultInjector injector) {
  g_injector.store(injector, std::memory_order_release);
}
#endif

ASSAY_FIRST_USE void* MapAligned(size_t size, size_t align) {
  ErrnoKeeper keep;
  if (InjectFault(FaultOp::kMap, size)) return nullptr;
  if (align <= kPageSize) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
  const size_t over = size + align;
  if (over < size) return nullptr;
  void* p = mmap(nullptr, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  const uintptr_t base = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = AlignUp(base, align);
  if (aligned > base) munmap(p, aligned - base);
  const uintptr_t end = base + over;
  if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - aligned - size);
  return reinterpret_cast<void*>(aligned);
}

void Unmap(void* p, size_t size) {
  ErrnoKeeper keep;
  munmap(p, size);
}

void* Remap(void* p, size_t old_size, size_t new_size) {
  ErrnoKeeper keep;
  if (InjectFault(FaultOp::kRemap, new_size)) return nullptr;
  void* q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
  return q == MAP_FAILED ? nullptr : q;
}

void Purge(void* p, size_t size) {
  ErrnoKeeper keep;
  // MADV_DONTNEED, not MADV_FREE: the pages leave RSS now, so resident
  // memory visibly follows the live heap.
  madvise(p, size, MADV_DONTNEED);
}

bool Resident(const void* p, size_t size, unsigned char* vec) {
  ErrnoKeeper keep;
  if (mincore(const_cast<void*>(p), size, vec) != 0) return false;
  for (size_t i = 0; i < size / kPageSize; ++i) vec[i] &= 1;  // the other bits are reserved
  return true;
}

bool ProtectNone(void* p, size_t size) {
  ErrnoKeeper keep;
  return mprotect(p, size, PROT_NONE) == 0;
}

bool IsMapped(const void* p, size_t size) {
  ErrnoKeeper keep;
  // msync(MS_ASYNC) does nothing to anonymous memory but fails with ENOMEM
  // when part of the range is not mapped.
  return msync(const_cast<void*>(p), size, MS_ASYNC) == 0;
}

void FutexWait(const uint32_t* word, uint32_t expected, int64_t timeout_ms) {
  ErrnoKeeper keep;
  struct timespec ts;
  struct timespec* tsp = nullptr;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = (timeout_ms % 1000) * 1000000;
    tsp = &ts;
  }
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, tsp, nullptr, 0);
}

void FutexWake(const uint32_t* word, int count) {
  ErrnoKeeper keep;
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
}

bool FenceAllThreads() {
  ErrnoKeeper keep;
  // Registered once (idempotent); MEMBARRIER_CMD_PRIVATE_EXPEDITED = 8, its
  // registration 16: the constants of <linux/membarrier.h>, spelled here so
  // that an old header does not matter.
  static constinit int registered = 0;  // 1 ok, -1 refused
  if (__atomic_load_n(&registered, __ATOMIC_ACQUIRE) == 0) {
    const long r = syscall(SYS_membarrier, 16, 0, 0);
    __atomic_store_n(&registered, r == 0 ? 1 : -1, __ATOMIC_RELEASE);
  }
  if (__atomic_load_n(&registered, __ATOMIC_ACQUIRE) < 0) return false;
  return syscall(SYS_membarrier, 8, 0, 0) == 0;
}

namespace {
// The vDSO's clock when there is one (base/vdso.h), else libc's.
ASSAY_INLINE void ReadClock(clockid_t id, struct timespec* ts) {
  if (const vdso::ClockGettimeFn f = vdso::ClockGettime(); ASSAY_LIKELY(f != nullptr)) {
    f(id, ts);
  } else {
    clock_gettime(id, ts);
  }
}
}  // namespace

ASSAY_FIRST_USE uint64_t NowMs() {
  struct timespec ts;
  ReadClock(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

ASSAY_FIRST_USE uint64_t NowNs() {
  struct timespec ts;
  ReadClock(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

int64_t WallNs() {
  ErrnoKeeper keep;
  struct timespec ts;
  ReadClock(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int ProcessId() { return static_cast<int>(getpid()); }

ASSAY_FIRST_USE uint64_t ThreadId() {
  ErrnoKeeper keep;
  return static_cast<uint64_t>(syscall(SYS_gettid));
}

void Yield() { sched_yield(); }

bool SecureExecution() { return getauxval(AT_SECURE) != 0; }

uint64_t RandomU64() {
  ErrnoKeeper keep;
  uint64_t v = 0;
  if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == static_cast<ssize_t>(sizeof(v))) return v;
  // AT_RANDOM: 16 bytes the kernel gave this process (glibc's stack guard
  // uses them as they are: mix them with the clock and our address).
  uint64_t w[2] = {0, 0};
  if (const void* r = reinterpret_cast<const void*>(getauxval(AT_RANDOM))) memcpy(w, r, sizeof(w));
  v = w[0] ^ (w[1] * 0x9e3779b97f4a7c15ull) ^ NowNs() ^ reinterpret_cast<uintptr_t>(&v);
  v ^= v >> 31;
  v *= 0xbf58476d1ce4e5b9ull;
  return v ^ (v >> 29);
}

ASSAY_FIRST_USE const char* GetEnv(const char* name) {
  if (SecureExecution()) return nullptr;  // silent, as glibc is
  // Walk environ directly: getenv() does not allocate in glibc either, but
  // this keeps the contract in our hands and works before libc is set up
  // (environ is then null and nothing is found).
  char** env = environ;
  if (env == nullptr) return nullptr;
  const size_t len = strlen(name);
  for (; *env != nullptr; ++env) {
    if (strncmp(*env, name, len) == 0 && (*env)[len] == '=') return *env + len + 1;
  }
  return nullptr;
}

void WriteStderr(const char* s, size_t n) {
  ErrnoKeeper keep;
  while (n > 0) {
    const ssize_t w = write(2, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= static_cast<size_t>(w);
  }
}

void WriteStderr(const char* s) { WriteStderr(s, strlen(s)); }

void Abort() { abort(); }

int OpenReadOnly(const char* path) { return open(path, O_RDONLY | O_CLOEXEC); }

long ReadSmallFile(const char* path, char* buf, size_t size) {
  if (size == 0) return -1;
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const long n = ReadSome(fd, buf, size - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = '\0';
  return n;
}

bool WriteAll(int fd, const void* p, size_t n) {
  const char* s = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    s += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

long ReadSome(int fd, void* p, size_t n) {
  for (;;) {
    const ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

bool Pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC) == 0; }

void Close(int fd) { close(fd); }

long CloneProcess() { return syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0); }

ASSAY_STARTUP bool AtFork(void (*prepare)(), void (*parent)(), void (*child)()) {
  return __register_atfork(prepare, parent, child, __dso_handle) == 0;
}

namespace {
void CallAtExit(void* fn) { reinterpret_cast<void (*)()>(fn)(); }
}  // namespace

ASSAY_STARTUP bool AtExit(void (*fn)()) {
  return __cxa_atexit(CallAtExit, reinterpret_cast<void*>(fn), __dso_handle) == 0;
}

bool WaitChild(long pid, int* status) {
  for (;;) {
    if (waitpid(static_cast<pid_t>(pid), status, 0) >= 0) return true;
    if (errno != EINTR) return false;
  }
}

void ExitGroup(int status) {
  syscall(SYS_exit_group, status);
  __builtin_unreachable();
}

}  // namespace assay::internal::os
