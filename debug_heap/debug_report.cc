// Debug-heap reports: one line that names the error in its first words
// ("double free", "invalid free", "overrun", "use after free"), then the
// block, where it was allocated and freed (audit), and where the error was
// detected; and the fault handler that turns a guard-page or quarantine hit
// into the same report. Reports are written while the process is about to
// abort, so they may allocate (the demangler does) but take no allocator lock.
#include <cxxabi.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include "alloc/heap.h"
#include "base/os.h"
#include "debug_heap/debug.h"
#include "profiler/dumper.h"
#include "profiler/stack_capture.h"
#include "profiler/stack_table.h"
#include "profiler/unwinder.h"

// Defined when the static library's pprof objects are linked in
// (pprof/describe.h).
extern "C" int assay_pprof_describe_frame(uintptr_t pc, int index, char* out, size_t outlen)
    __attribute__((weak));

namespace assay::internal::debug {
namespace {

// In a fault handler nothing may be loaded (the fault may have hit inside the
// dynamic loader): only a describer already there is used.
bool g_in_fault = false;

using DescribeFn = int (*)(uintptr_t, int, char*, size_t);
DescribeFn Describer() {
  if (assay_pprof_describe_frame != nullptr) return assay_pprof_describe_frame;
  return reinterpret_cast<DescribeFn>(
      profiler::dumper::PprofSymbol("assay_pprof_describe_frame", !g_in_fault));
}

void Write(const char* s) { os::WriteStderr(s); }

void WriteFrames(const uintptr_t* frames, size_t depth, int max_frames) {
  for (size_t i = 0; i < depth && static_cast<int>(i) < max_frames; ++i) {
    // A return address points after the call: look up the call itself.
    const uintptr_t pc = frames[i];
    const uintptr_t look = pc > 0 ? pc - 1 : pc;
    char described[512];
    DescribeFn describe = Describer();
    const int count = describe != nullptr ? describe(look, 0, described, sizeof(described)) : -1;
    if (count > 0) {
      // Inlined calls at this pc first, each on a line of its own: "#i" once.
      const int width = snprintf(nullptr, 0, "#%zu", i);
      Print("    #%zu 0x%lx %s\n", i, static_cast<unsigned long>(pc), described);
      for (int k = 1; k < count; ++k) {
        if (describe(look, k, described, sizeof(described)) <= 0) break;
        Print("    %*s 0x%lx %s\n", width, "", static_cast<unsigned long>(pc), described);
      }
      continue;
    }
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(look), &info) != 0 && info.dli_fname != nullptr) {
      const char* file = info.dli_fname;
      if (info.dli_sname != nullptr) {
        int status = -1;
        char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
        const char* name = status == 0 && demangled != nullptr ? demangled : info.dli_sname;
        Print("    #%zu 0x%lx %s+0x%lx (%s)\n", i, static_cast<unsigned long>(pc), name,
              static_cast<unsigned long>(pc - reinterpret_cast<uintptr_t>(info.dli_saddr)), file);
        free(demangled);
      } else {
        Print("    #%zu 0x%lx (%s+0x%lx)\n", i, static_cast<unsigned long>(pc), file,
              static_cast<unsigned long>(pc - reinterpret_cast<uintptr_t>(info.dli_fbase)));
      }
    } else {
      Print("    #%zu 0x%lx\n", i, static_cast<unsigned long>(pc));
    }
  }
}

void WriteHere(const char* title) {
  uintptr_t frames[64];
  size_t depth = profiler::CaptureStack(frames, 64, profiler::StackMethod::kUnwind, 0, 0);
  // Reached from an exit handler or a fault, the stack starts in assay's own
  // frames: when assay is a library of its own, drop them.
  size_t skip = 0;
  Dl_info self, exe, frame;
  const void* exe_phdr = reinterpret_cast<const void*>(getauxval(AT_PHDR));
  if (dladdr(reinterpret_cast<void*>(&WriteHere), &self) != 0 && dladdr(exe_phdr, &exe) != 0 &&
      self.dli_fbase != exe.dli_fbase) {
    while (skip < depth && dladdr(reinterpret_cast<void*>(frames[skip]), &frame) != 0 &&
           frame.dli_fbase == self.dli_fbase) {
      ++skip;
    }
  }
  Print("  %s:\n", title);
  WriteFrames(frames + skip, depth - skip, 24);
}

void WriteBlockStacks(const Block& b, bool freed) {
  const Header* h = b.header;
  if (h->alloc_stack != nullptr) {
    Write("  allocated at:\n");
    WriteStack(h->alloc_stack, 24);
  } else if (!GetConfig().audit) {
    Write("  (allocation stack not recorded: run with ASSAY_DEBUG=audit)\n");
  }
  if (freed && h->free_stack != nullptr) {
    Write("  freed at:\n");
    WriteStack(h->free_stack, 24);
  }
}

[[noreturn]] void Die() {
  Write("assay: aborting\n");
  os::Abort();
}

const char* Kind(const Header* h) {
  if ((h->flags & kGuarded) != 0) return "guarded block";
  return "block";
}

}  // namespace

void Print(const char* fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  const int n = vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (n > 0) os::WriteStderr(line, static_cast<size_t>(n) < sizeof(line) ? n : sizeof(line) - 1);
}

void WriteStack(const profiler::Stack* s, int max_frames) {
  if (s == nullptr) return;
  WriteFrames(s->frames, s->depth, max_frames);
}

void ReportInvalidFree(const char* op, const void* p) {
  Print("assay: invalid free: %s(%p): not a block assay returned", op, p);
  const Block inside = FindContaining(reinterpret_cast<uintptr_t>(p));
  if (inside.header != nullptr) {
    Print(" (inside %s %p of %zu bytes, at offset %zu)\n", Kind(inside.header), inside.user,
          static_cast<size_t>(inside.header->size),
          static_cast<size_t>(static_cast<const char*>(p) - inside.user));
    WriteBlockStacks(inside, false);
  } else {
    Write("\n");
  }
  WriteHere("detected at");
  Die();
}

void ReportDoubleFree(const char* op, const Block& b) {
  Print("assay: double free: %s(%p) of a %zu-byte %s already freed\n", op, b.user,
        static_cast<size_t>(b.header->size), Kind(b.header));
  WriteBlockStacks(b, true);
  if (b.header->free_stack == nullptr && GetConfig().audit && !GetConfig().freecheck) {
    Write("  (first free's stack needs ASSAY_DEBUG=freecheck)\n");
  }
  WriteHere("second free at");
  Die();
}

void ReportOverrun(const char* when, const Block& b, ptrdiff_t offset) {
  Print(
      "assay: overrun: %s %p of %zu bytes has a changed byte at offset %td (%s), detected at %s\n",
      Kind(b.header), b.user, static_cast<size_t>(b.header->size), offset,
      offset < 0 ? "before its start" : "past its end", when);
  WriteBlockStacks(b, false);
  WriteHere("detected at");
  Die();
}

void ReportUseAfterFree(const char* when, const Block& b, size_t offset) {
  Print(
      "assay: use after free: %s %p of %zu bytes was written at offset %zu after it was freed, "
      "detected %s\n",
      Kind(b.header), b.user, static_cast<size_t>(b.header->size), offset, when);
  WriteBlockStacks(b, true);
  WriteHere("detected at");
  Die();
}

// ---- Faults on guard pages and quarantined mappings ----

namespace {

struct sigaction g_previous[2];  // SIGSEGV, SIGBUS

void OnFault(int sig, siginfo_t* info, void* context) {
  g_in_fault = true;
  const uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
  bool in_guard = false;
  const Block b = FindMappedNear(a, &in_guard);
  if (b.header != nullptr) {
    const ptrdiff_t offset = static_cast<ptrdiff_t>(a - reinterpret_cast<uintptr_t>(b.user));
    if (b.header->state == kFreed) {
      Print("assay: use after free: access at offset %td of the %zu-byte %s %p, freed\n", offset,
            static_cast<size_t>(b.header->size), Kind(b.header), b.user);
      WriteBlockStacks(b, true);
    } else if (in_guard) {
      Print("assay: overrun: access at offset %td of the %zu-byte %s %p hit its guard page\n",
            offset, static_cast<size_t>(b.header->size), Kind(b.header), b.user);
      WriteBlockStacks(b, false);
    }
    WriteHere("faulting access at");
  }
  // Let the fault happen again with the handler the program had (by default,
  // the signal's default action: a core dump at the faulting instruction).
  const struct sigaction& prev = g_previous[sig == SIGSEGV ? 0 : 1];
  if ((prev.sa_flags & SA_SIGINFO) != 0 && prev.sa_sigaction != nullptr) {
    prev.sa_sigaction(sig, info, context);
    return;
  }
  if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);
}

}  // namespace

// Before main, not from inside malloc (where the dynamic loader may be the
// caller): with the debug heap on, libunwind, which takes its stacks (until
// then they follow frame pointers), and with a fault handler installed the
// describer, so that fault reports name their frames too. Nothing depends
// on it having run.
__attribute__((constructor)) void PreloadForReports() {
  heap::EnsureInit();  // reads ASSAY_DEBUG (no allocation may have yet)
  if (g_on || g_guard) profiler::unwinder::Load();
  if (g_guard || GetConfig().freecheck) Describer();
}

void InstallFaultHandler() {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = OnFault;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_previous[0]);
  sigaction(SIGBUS, &sa, &g_previous[1]);
}

}  // namespace assay::internal::debug
