// Stopping the world for the leak scan (see stop_world.h). The tracer is a
// clone sharing our memory but not our thread group (a thread cannot ptrace
// its own group), like LeakSanitizer's: it runs with our thread pointer, so it
// makes raw system calls only (libc's wrappers would write errno into the
// scanning thread's TLS) and calls nothing that allocates or locks.
#include "debug_heap/stop_world.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/os.h"

namespace assay::internal::debug::stop_world {
namespace {

#if defined(__x86_64__) || defined(__aarch64__)
constexpr bool kSupported = true;
#else
constexpr bool kSupported = false;
#endif

// A system call that returns -errno on failure and never touches errno.
long Sys(long n, long a = 0, long b = 0, long c = 0, long d = 0, long e = 0) {
#if defined(__x86_64__)
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  __asm__ __volatile__("syscall"
                       : "=a"(ret)
                       : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                       : "rcx", "r11", "memory");
  return ret;
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  __asm__ __volatile__("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
  return x0;
#else
  (void)n, (void)a, (void)b, (void)c, (void)d, (void)e;
  return -ENOSYS;
#endif
}

// The tracer's states, in Shared::state (a futex word).
enum : uint32_t { kInit, kGo, kStopped, kFailed, kResume };

struct Shared {
  uint32_t state;
  long pid;
  long scanner_tid;
  int error;
  size_t count;
  Thread threads[kMaxThreads];
  char dirbuf[4096];
  alignas(64) char stack[64 << 10];  // the tracer's stack
};

void Wait(uint32_t* word, uint32_t expected) {
  Sys(SYS_futex, reinterpret_cast<long>(word), FUTEX_WAIT_PRIVATE, expected, 0);
}
void Wake(uint32_t* word) {
  Sys(SYS_futex, reinterpret_cast<long>(word), FUTEX_WAKE_PRIVATE, 1 << 30);
}
void SetState(Shared* s, uint32_t v) {
  __atomic_store_n(&s->state, v, __ATOMIC_RELEASE);
  Wake(&s->state);
}

// "/proc/PID/task" into buf.
void TaskDir(long pid, char* buf) {
  const char* head = "/proc/";
  char* p = buf;
  while (*head != '\0') *p++ = *head++;
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + pid % 10);
    pid /= 10;
  } while (pid > 0);
  while (n > 0) *p++ = digits[--n];
  const char* tail = "/task";
  while (*tail != '\0') *p++ = *tail++;
  *p = '\0';
}

bool Known(const Shared* s, long tid) {
  for (size_t i = 0; i < s->count; ++i) {
    if (s->threads[i].tid == tid) return true;
  }
  return false;
}

// Seizes and interrupts tid; true once it is stopped (false if it is gone).
// *fatal: ptrace refused (EPERM): the world cannot be stopped.
bool Seize(long tid, bool* fatal, int* error) {
  long r = Sys(SYS_ptrace, PTRACE_SEIZE, tid, 0, 0);
  if (r < 0) {
    if (r != -ESRCH) {
      *fatal = true;
      *error = static_cast<int>(-r);
    }
    return false;
  }
  Sys(SYS_ptrace, PTRACE_INTERRUPT, tid, 0, 0);
  for (;;) {
    int status = 0;
    r = Sys(SYS_wait4, tid, reinterpret_cast<long>(&status), __WALL, 0);
    if (r == -EINTR) continue;
    if (r < 0 || !WIFSTOPPED(status)) return false;  // it exited meanwhile
    if ((status >> 16) == PTRACE_EVENT_STOP) return true;
    // A signal-delivery stop came first: let the signal through, ask again.
    Sys(SYS_ptrace, PTRACE_CONT, tid, 0, WSTOPSIG(status));
    Sys(SYS_ptrace, PTRACE_INTERRUPT, tid, 0, 0);
  }
}

bool ReadRegs(Thread* t) {
#if defined(__x86_64__)
  static_assert(sizeof(user_regs_struct) <= sizeof(t->regs));
  user_regs_struct r;
  if (Sys(SYS_ptrace, PTRACE_GETREGS, t->tid, 0, reinterpret_cast<long>(&r)) < 0) return false;
  __builtin_memcpy(t->regs, &r, sizeof(r));
  t->nregs = sizeof(r) / sizeof(uintptr_t);
  t->sp = r.rsp;
  t->tp = r.fs_base;
  return true;
#elif defined(__aarch64__)
  static_assert(sizeof(user_regs_struct) <= sizeof(t->regs));
  user_regs_struct r;
  iovec io{&r, sizeof(r)};
  if (Sys(SYS_ptrace, PTRACE_GETREGSET, t->tid, NT_PRSTATUS, reinterpret_cast<long>(&io)) < 0) {
    return false;
  }
  __builtin_memcpy(t->regs, &r, sizeof(r));
  t->nregs = sizeof(r) / sizeof(uintptr_t);
  t->sp = r.sp;
  uint64_t tp = 0;
  iovec tio{&tp, sizeof(tp)};
  t->tp = Sys(SYS_ptrace, PTRACE_GETREGSET, t->tid, NT_ARM_TLS, reinterpret_cast<long>(&tio)) < 0
              ? 0
              : tp;
  return true;
#else
  (void)t;
  return false;
#endif
}

void DetachAll(Shared* s) {
  for (size_t i = 0; i < s->count; ++i) Sys(SYS_ptrace, PTRACE_DETACH, s->threads[i].tid, 0, 0);
}

int TracerMain(void* arg) {
  Shared* s = static_cast<Shared*>(arg);
  while (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == kInit) Wait(&s->state, kInit);
  char dir[64];
  TaskDir(s->pid, dir);
  bool fatal = false;
  // Threads may start while we list them: list again until a pass finds none new.
  for (bool added = true; added && !fatal;) {
    added = false;
    const long fd =
        Sys(SYS_openat, AT_FDCWD, reinterpret_cast<long>(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      fatal = true;
      s->error = static_cast<int>(-fd);
      break;
    }
    for (;;) {
      const long n = Sys(SYS_getdents64, fd, reinterpret_cast<long>(s->dirbuf), sizeof(s->dirbuf));
      if (n <= 0) break;
      for (long off = 0; off < n && !fatal;) {
        // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name.
        const char* rec = s->dirbuf + off;
        const unsigned short reclen = *reinterpret_cast<const unsigned short*>(rec + 16);
        const char* name = rec + 19;
        off += reclen;
        if (name[0] < '0' || name[0] > '9') continue;
        long tid = 0;
        for (const char* c = name; *c >= '0' && *c <= '9'; ++c) tid = tid * 10 + (*c - '0');
        if (tid == s->scanner_tid || Known(s, tid)) continue;
        if (s->count == kMaxThreads) {
          fatal = true;
          s->error = ENOMEM;
          break;
        }
        if (Seize(tid, &fatal, &s->error)) {
          Thread& t = s->threads[s->count++];
          t.tid = tid;
          if (!ReadRegs(&t)) t.nregs = 0, t.sp = 0, t.tp = 0;
          added = true;
        }
      }
    }
    Sys(SYS_close, fd);
  }
  if (fatal) {
    DetachAll(s);
    SetState(s, kFailed);
    return 0;
  }
  SetState(s, kStopped);
  while (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != kResume) Wait(&s->state, kStopped);
  DetachAll(s);
  return 0;
}

void Reap(long tracer) {
  int status;
  while (Sys(SYS_wait4, tracer, reinterpret_cast<long>(&status), __WALL, 0) == -EINTR) {
  }
}

}  // namespace

long CountThreads() {
  char buf[4096];
  if (os::ReadSmallFile("/proc/self/status", buf, sizeof(buf)) < 0) return -1;
  for (const char* p = buf; *p != '\0'; ++p) {
    if ((p == buf || p[-1] == '\n') && __builtin_memcmp(p, "Threads:", 8) == 0) {
      p += 8;
      while (*p == ' ' || *p == '\t') ++p;
      long n = 0;
      while (*p >= '0' && *p <= '9') n = n * 10 + (*p++ - '0');
      return n;
    }
  }
  return -1;
}

long SelfTid() { return Sys(SYS_gettid); }

uintptr_t SelfThreadPointer() {
  uintptr_t tp = 0;
#if defined(__x86_64__)
  __asm__("mov %%fs:0, %0" : "=r"(tp));  // the TCB's pointer to itself
#elif defined(__aarch64__)
  __asm__("mrs %0, tpidr_el0" : "=r"(tp));
#endif
  return tp;
}

bool Stop(World* w) {
  if (!kSupported) {
    w->error = ENOSYS;
    return false;
  }
  auto* s = static_cast<Shared*>(os::MapAligned(AlignUp(sizeof(Shared), kPageSize), kPageSize));
  if (s == nullptr) {
    w->error = ENOMEM;
    return false;
  }
  s->pid = Sys(SYS_getpid);
  s->scanner_tid = SelfTid();
  // No exit signal: the program's SIGCHLD handler never hears of the tracer.
  const long tracer = clone(TracerMain, s->stack + sizeof(s->stack),
                            CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_UNTRACED, s);
  if (tracer < 0) {
    w->error = EAGAIN;
    os::Unmap(s, AlignUp(sizeof(Shared), kPageSize));
    return false;
  }
  // Under Yama's ptrace_scope=1 only an ancestor may trace us, unless we say so.
  Sys(SYS_prctl, PR_SET_PTRACER, tracer, 0, 0, 0);
  SetState(s, kGo);
  uint32_t st;
  while ((st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE)) == kGo) Wait(&s->state, kGo);
  if (st == kFailed) {
    w->error = s->error;
    Reap(tracer);
    os::Unmap(s, AlignUp(sizeof(Shared), kPageSize));
    return false;
  }
  w->shared = s;
  w->tracer = tracer;
  w->threads = s->threads;
  w->count = s->count;
  return true;
}

void Resume(World* w) {
  if (w->shared == nullptr) return;
  auto* s = static_cast<Shared*>(w->shared);
  SetState(s, kResume);
  Reap(w->tracer);
  Sys(SYS_prctl, PR_SET_PTRACER, 0, 0, 0, 0);
  os::Unmap(s, AlignUp(sizeof(Shared), kPageSize));
  w->shared = nullptr;
  w->threads = nullptr;
  w->count = 0;
}

void SharedExtent(const World& w, uintptr_t* lo, uintptr_t* hi) {
  *lo = reinterpret_cast<uintptr_t>(w.shared);
  *hi = *lo + (w.shared != nullptr ? AlignUp(sizeof(Shared), kPageSize) : 0);
}

}  // namespace assay::internal::debug::stop_world
