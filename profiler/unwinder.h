// libunwind, loaded at run time instead of linked: a NEEDED libunwind (and
// the liblzma it brings) cost every process ~110 KiB of RSS and their
// relocations at start-up, though most never take a stack. Loaded (dlopen,
// RTLD_LOCAL) only from places where the dynamic loader cannot be the
// caller: the profiler's session start (MALLOC_PROF's runs in a
// constructor, before main), the debug heap's constructor, its exit checks.
// Until then, or where it cannot be loaded, stacks are frame-pointer walks
// (stack_capture.cc). x86_64: the names are libunwind's local-only ones.
#pragma once

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "base/base.h"

namespace assay::profiler::unwinder {

struct Functions {
  int (*getcontext)(unw_context_t*);
  int (*init_local)(unw_cursor_t*, unw_context_t*);
  int (*step)(unw_cursor_t*);
  int (*get_reg)(unw_cursor_t*, unw_regnum_t, unw_word_t*);
  int (*get_proc_info)(unw_cursor_t*, unw_proc_info_t*);
  int (*backtrace)(void**, int);
};

// Loads libunwind once (libunwind.so.8, else libunwind.so); true if it is
// loaded. A failure prints one line (stacks walk frame pointers only) and
// is not retried. Never call it inside malloc: dlopen allocates and takes
// the loader's lock, which the thread may hold already. Start-up code: a
// MALLOC_PROF process runs it before main.
ASSAY_STARTUP bool Load();

// &functions once Load succeeded, else nullptr.
extern const Functions* g_ready;

// libunwind's functions once Load succeeded, else nullptr. Lock-free.
ASSAY_INLINE const Functions* Get() { return __atomic_load_n(&g_ready, __ATOMIC_ACQUIRE); }

}  // namespace assay::profiler::unwinder
