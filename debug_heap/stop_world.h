// Stopping the other threads for the leak scan, as LeakSanitizer does: a
// tracer task (sharing our memory) PTRACE_SEIZEs and interrupts every other
// thread of the process and reads its registers, then holds them until the
// scan is done. The scan's only system calls outside base/os.h live here
// (ptrace, clone, wait4, getdents64): they are scan-only, so this is the
// scan's private part of the OS seam.
#pragma once

#include "base/base.h"

namespace assay::internal::debug::stop_world {

inline constexpr size_t kMaxThreads = 8192;
inline constexpr size_t kMaxRegs = 32;

// One stopped thread.
struct Thread {
  long tid;
  uintptr_t sp;  // stack pointer
  uintptr_t tp;  // thread pointer (x86-64: fs base = the glibc TCB), 0 if unknown
  size_t nregs;
  uintptr_t regs[kMaxRegs];  // the general-purpose registers
};

struct World {
  Thread* threads = nullptr;  // `count` threads, the caller excluded
  size_t count = 0;
  int error = 0;           // errno of the failure when Stop returned false
  void* shared = nullptr;  // the tracer's state and stack (mapped)
  long tracer = -1;
};

// The number of threads the process has (/proc/self/task), or -1.
long CountThreads();
// The calling thread's id and thread pointer.
long SelfTid();
uintptr_t SelfThreadPointer();

// Stops every thread but the caller; false if they could not be stopped
// (ptrace refused, no memory): then none is stopped. The caller must hold no
// lock a stopped thread could need before Resume... and nothing it needs
// while they are stopped may be held by them (it takes those locks first).
bool Stop(World* w);
// Lets them run again and reaps the tracer.
void Resume(World* w);
// The tracer's own memory (not a root).
void SharedExtent(const World& w, uintptr_t* lo, uintptr_t* hi);

}  // namespace assay::internal::debug::stop_world
