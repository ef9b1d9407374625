// The leak scan of the debug heap (ASSAY_DEBUG=leaks), run at exit from an
// atexit handler: a conservative mark, as LeakSanitizer takes its roots, then
// valgrind's split of the unreached blocks into direct and indirect leaks.
//
// Roots: the writable PT_LOAD segments of every loaded object; every live
// thread's registers, its stack from its stack pointer up (the other threads,
// stopped with ptrace by stop_world.cc, also the 128-byte x86-64 red zone
// below it) and its static TLS; anonymous read-write mappings the program
// made itself (valgrind scans them too; LSan does not, which would make every
// pointer held in, say, CPython's arenas look leaked); and, as LSan does, the
// blocks the dynamic linker allocated (DTVs, dynamic TLS blocks, link maps).
// Not roots: the dead area below each stack pointer, the cached stacks of
// exited threads (free memory: their stale frames must not hide leaks), the
// allocator's segments and mapped blocks, and the scan's own memory. A word
// reaching anywhere inside a block (an interior pointer) counts; freed blocks
// are not scanned. Uses no malloc until the report. The marking is
// leak_scan.cc, the roots other than threads leak_roots.cc, the report
// leak_report.cc.
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>

#include "base/os.h"
#include "debug_heap/debug.h"
#include "debug_heap/leak_report.h"
#include "debug_heap/leak_roots.h"
#include "debug_heap/leak_scan.h"
#include "debug_heap/stop_world.h"
#include "profiler/stack_table.h"
#include "profiler/unwinder.h"

namespace assay::internal::debug {
namespace {

using leak::Drain;
using leak::kAnon;
using leak::kFile;
using leak::Mapping;
using leak::MappingOf;
using leak::MarkWord;
using leak::Objects;
using leak::OnObject;
using leak::Range;
using leak::RawArray;
using leak::Reach;
using leak::ReadMappings;
using leak::Report;
using leak::Scan;
using leak::ScanOutsideSegments;
using leak::ScanRoot;
using leak::SplitDirectIndirect;
using leak::TcbIn;

struct LiveThread {
  uintptr_t sp, tp;
  size_t redzone;  // bytes below sp that are live (the x86-64 red zone)
};

// The callee-saved registers (the ones that may still hold the program's
// values when its exit handlers run), read at the scan's entry.
constexpr size_t kSavedRegs = 12;
__attribute__((always_inline)) inline void SpillCalleeSaved(uintptr_t* r) {
#if defined(__x86_64__)
  __asm__ __volatile__(
      "mov %%rbx, 0(%0)\n\tmov %%rbp, 8(%0)\n\tmov %%r12, 16(%0)\n\t"
      "mov %%r13, 24(%0)\n\tmov %%r14, 32(%0)\n\tmov %%r15, 40(%0)"
      :
      : "r"(r)
      : "memory");
#elif defined(__aarch64__)
  __asm__ __volatile__(
      "stp x19, x20, [%0]\n\tstp x21, x22, [%0, #16]\n\tstp x23, x24, [%0, #32]\n\t"
      "stp x25, x26, [%0, #48]\n\tstp x27, x28, [%0, #64]\n\tstp x29, x30, [%0, #80]"
      :
      : "r"(r)
      : "memory");
#else
  __builtin_memset(r, 0, kSavedRegs * sizeof(uintptr_t));
#endif
}

using TlsInfoFn = void (*)(size_t* size, size_t* align);

// The scan proper; returns the time it took (ns).
uint64_t MarkAndSplit(Scan& s, uintptr_t self_sp, const uintptr_t* self_regs, size_t* nthreads,
                      bool* stopped_out) {
  const uint64_t t0 = os::NowNs();
  // Before any lock: dlsym and dl_iterate_phdr take the loader's locks (a
  // thread stopped inside dlopen holds them).
  static TlsInfoFn tls_info =
      reinterpret_cast<TlsInfoFn>(dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info"));
  size_t tls_size = 0, tls_align = 0;
  if (tls_info != nullptr) tls_info(&tls_size, &tls_align);
  Objects objects;
  RawArray<Mapping> maps;
  RawArray<LiveThread> live;
  if (!objects.data.Reserve(4096) || !maps.Reserve(1 << 16) ||
      !live.Reserve(stop_world::kMaxThreads + 1)) {
    s.out_of_memory = true;
  }
  dl_iterate_phdr(OnObject, &objects);

  // The locks ForEachLive needs, then the other threads (none may be stopped
  // holding one of them).
  LockForLeakScan();
  stop_world::World world;
  const long threads = stop_world::CountThreads();
  const bool alone = threads == 1;
  const bool stopped = !alone && stop_world::Stop(&world);
  ForEachLiveLocked(
      [](const Block& b, void* arg) {
        Scan& sc = *static_cast<Scan*>(arg);
        if (!sc.blocks.Push(b)) sc.out_of_memory = true;
      },
      &s);
  std::sort(s.blocks.data, s.blocks.data + s.blocks.size,
            [](const Block& a, const Block& b) { return a.user < b.user; });
  if (s.blocks.size > 0) {
    s.min_user = reinterpret_cast<uintptr_t>(s.blocks.data[0].user);
    for (size_t i = 0; i < s.blocks.size; ++i) {
      const uintptr_t end =
          reinterpret_cast<uintptr_t>(s.blocks.data[i].user) + s.blocks.data[i].header->size;
      if (end > s.max_end) s.max_end = end;
    }
  }
  // Sized now, so that they never move during the scan (they are excluded).
  if (!s.state.Reserve(s.blocks.size + 1) || !s.work.Reserve(s.blocks.size + 1) ||
      !s.excluded.Reserve(s.blocks.size + 16)) {
    s.out_of_memory = true;
  }
  s.state.size = s.blocks.size;  // zeroed by the mapping: all kUnreached
  for (size_t i = 0; i < s.blocks.size; ++i) {
    uintptr_t lo, hi;
    if (MappedExtent(s.blocks.data[i].header, &lo, &hi)) s.excluded.Push(Range{lo, hi});
  }
  uintptr_t tracer_lo, tracer_hi;
  stop_world::SharedExtent(world, &tracer_lo, &tracer_hi);
  for (const Range r : {Range{s.blocks.Lo(), s.blocks.Hi()}, Range{s.state.Lo(), s.state.Hi()},
                        Range{s.work.Lo(), s.work.Hi()}, Range{s.excluded.Lo(), s.excluded.Hi()},
                        Range{maps.Lo(), maps.Hi()}, Range{live.Lo(), live.Hi()},
                        Range{objects.data.Lo(), objects.data.Hi()}, Range{tracer_lo, tracer_hi}}) {
    if (r.lo < r.hi) s.excluded.Push(r);
  }
  std::sort(s.excluded.data, s.excluded.data + s.excluded.size,
            [](const Range& a, const Range& b) { return a.lo < b.lo; });
  ReadMappings(s, maps);

  // The live threads: this one (its stack from CheckLeaks' frame up: the
  // scan's own frames hold only its own data) and the stopped ones (registers scanned here, red
  // zone included: a leaf function may keep a pointer there without moving sp).
  live.Push(LiveThread{self_sp, stop_world::SelfThreadPointer(), 0});
  for (size_t r = 0; r < kSavedRegs; ++r) MarkWord(s, self_regs[r]);
#if defined(__x86_64__)
  constexpr size_t kRedZone = 128;
#else
  constexpr size_t kRedZone = 0;
#endif
  bool threads_known = alone || stopped;
  for (size_t i = 0; i < world.count; ++i) {
    const stop_world::Thread& t = world.threads[i];
    for (size_t r = 0; r < t.nregs; ++r) MarkWord(s, t.regs[r]);
    if (t.sp == 0) {
      threads_known = false;  // its registers could not be read
      continue;
    }
    live.Push(LiveThread{t.sp, t.tp, kRedZone});
  }
  *nthreads = live.size;
  *stopped_out = stopped;

  if (s.blocks.size > 0) {
    for (size_t i = 0; i < objects.data.size; ++i) {
      ScanRoot(s, objects.data.data[i].lo, objects.data.data[i].hi);
    }
    for (size_t i = 0; i < live.size; ++i) {
      const LiveThread& t = live.data[i];
      if (const Mapping* m = MappingOf(maps, t.sp); m != nullptr) {
        ScanRoot(s, t.sp - t.redzone > m->lo ? t.sp - t.redzone : m->lo, m->hi);
      }
      // Static TLS and the TCB lie within tls_size of the thread pointer (below
      // it on x86-64, above on aarch64): take both sides, within its mapping.
      if (const Mapping* m = MappingOf(maps, t.tp); m != nullptr && tls_size > 0) {
        const uintptr_t lo = t.tp - m->lo > tls_size ? t.tp - tls_size : m->lo;
        const uintptr_t hi = m->hi - t.tp > tls_size ? t.tp + tls_size : m->hi;
        ScanRoot(s, lo, hi);
      }
    }
    // The program's own anonymous memory, but thread stacks: a live one was
    // scanned from its sp; a dead one (a TCB no live thread owns: a cached
    // stack) is free memory.
    for (size_t i = 0; i < maps.size; ++i) {
      const Mapping& m = maps.data[i];
      if (m.kind == kFile) continue;
      bool holds_sp = false;
      for (size_t t = 0; t < live.size && !holds_sp; ++t) {
        holds_sp = live.data[t].sp >= m.lo && live.data[t].sp < m.hi;
      }
      if (holds_sp) continue;
      if (threads_known && m.kind == kAnon) {
        const uintptr_t tcb = TcbIn(m);
        bool owned = false;
        for (size_t t = 0; t < live.size && !owned; ++t) owned = live.data[t].tp == tcb;
        if (tcb != 0 && !owned) continue;
      }
      ScanOutsideSegments(s, m.lo, m.hi);
    }
    // Blocks the dynamic linker allocated are roots, as in LSan: a thread's
    // DTV and dynamic TLS blocks (also those of exited threads, whose stacks
    // glibc caches and whose DTVs it frees on reuse), link maps.
    const Range ld = objects.ldso_text;
    for (size_t i = 0; i < s.blocks.size && ld.lo < ld.hi; ++i) {
      const profiler::Stack* st = s.blocks.data[i].header->alloc_stack;
      if (st != nullptr && st->depth > 0 && st->frames[0] > ld.lo && st->frames[0] <= ld.hi) {
        Reach(s, i);
      }
    }
    Drain(s);
  }
  if (stopped) stop_world::Resume(&world);
  UnlockAfterLeakScan();
  if (!alone && !stopped) {
    Print(
        "assay: leaks: could not stop the other threads (%s): their stacks are scanned whole, "
        "so leaks may be missed\n",
        strerror(world.error));
  }
  // The unreached blocks: only this thread can reach them now.
  SplitDirectIndirect(s);
  objects.data.Free();
  maps.Free();
  live.Free();
  return os::NowNs() - t0;
}

// The scan, below CheckLeaks' frame.
ASSAY_NOINLINE size_t CheckLeaksFrom(uintptr_t sp, const uintptr_t* regs) {
  const int saved_errno = errno;
  Scan s;
  size_t threads = 0;
  bool stopped = false;
  const uint64_t ns = MarkAndSplit(s, sp, regs, &threads, &stopped);
  if (s.out_of_memory) {
    os::WriteStderr("assay: leaks: out of memory during the scan; the report may be incomplete\n");
  }
  const size_t leaked = Report(s, ns, threads, stopped);
  s.blocks.Free();
  s.state.Free();
  s.work.Free();
  s.excluded.Free();
  errno = saved_errno;
  return leaked;
}

}  // namespace

namespace {

// The frame that called exit(): its stack pointer and its callee-saved
// registers as they were at the call (recovered by libunwind from where
// exit's frames saved them). The frames of exit and of its handlers lie
// below: they overlay the dead frames of the program (main's callees) and
// keep stale pointers in their padding, which would hide leaks (LSan's and
// valgrind's exit paths happen to overwrite them). False if exit is not on
// the stack (the scan then starts at CheckLeaks' frame).
bool ExitCaller(uintptr_t* sp, uintptr_t* regs) {
#if defined(__x86_64__)
  // An exit handler: the loader is not the caller (it is loaded already
  // when the debug heap was on before main).
  if (!profiler::unwinder::Load()) return false;
  const profiler::unwinder::Functions& u = *profiler::unwinder::Get();
  unw_context_t context;
  unw_cursor_t cursor;
  if (u.getcontext(&context) != 0 || u.init_local(&cursor, &context) != 0) return false;
  const auto exit_fn = reinterpret_cast<unw_word_t>(&exit);
  for (int depth = 0; depth < 32 && u.step(&cursor) > 0; ++depth) {
    unw_proc_info_t info;
    if (u.get_proc_info(&cursor, &info) != 0 || info.start_ip != exit_fn) continue;
    if (u.step(&cursor) <= 0) return false;
    unw_word_t v = 0;
    if (u.get_reg(&cursor, UNW_REG_SP, &v) != 0) return false;
    *sp = v;
    const int saved[] = {UNW_X86_64_RBX, UNW_X86_64_RBP, UNW_X86_64_R12,
                         UNW_X86_64_R13, UNW_X86_64_R14, UNW_X86_64_R15};
    size_t n = 0;
    for (const int r : saved) regs[n++] = u.get_reg(&cursor, r, &v) == 0 ? v : 0;
    while (n < kSavedRegs) regs[n++] = 0;
    return true;
  }
#else
  (void)sp, (void)regs;
#endif
  return false;
}

}  // namespace

// This thread's registers and stack as the program left them at its call to
// exit (else as CheckLeaks' caller left them, from this frame up).
size_t CheckLeaks() {
  uintptr_t regs[kSavedRegs] = {};
  SpillCalleeSaved(regs);
  uintptr_t sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  uintptr_t caller_regs[kSavedRegs];
  if (ExitCaller(&sp, caller_regs)) memcpy(regs, caller_regs, sizeof(regs));
  return CheckLeaksFrom(sp, regs);
}

}  // namespace assay::internal::debug
