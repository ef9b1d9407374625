// Initialisation: the one file that names every layer. Lazy init (options,
// the debug heap, the thread-exit key, the layout descriptor, fork handlers),
// the fork handler table (every lock, in the documented order), and the
// layout descriptor that heap walkers read (base/layout.h).
#include <pthread.h>
#include <stdlib.h>

#include <cstddef>

#include "alloc/central.h"
#include "alloc/heap.h"
#include "alloc/huge.h"
#include "alloc/large_cache.h"
#include "alloc/page_heap.h"
#include "alloc/purger.h"
#include "alloc/size_classes.h"
#include "alloc/thread_cache.h"
#include "assay/assay.h"
#include "base/layout.h"
#include "base/meta.h"
#include "base/options.h"
#include "base/os.h"
#include "debug_heap/debug.h"
#include "profiler/profiler.h"

extern "C" {
ASSAY_EXPORT AssayLayout assay_layout;

// libassay.so's DT_FINI (-Wl,-fini in CMakeLists.txt). The default, crti's
// _fini, does nothing but sits at the very end of the text: calling it at
// exit faulted in the text's last 64 KiB (fault-around) in every process.
__attribute__((visibility("hidden"), used)) ASSAY_FIRST_USE void assay_fini() {}
}

namespace assay::internal {
namespace {

enum : uint32_t { kUninitialised = 0, kInitialising, kReady };
constinit uint32_t g_init_state = kUninitialised;
constinit uint64_t g_init_thread = 0;

// ---- The fork handler table: every lock, outermost first. ----

void ForkPrepare() {
  debug::LockForFork();
  profiler::LockForFork();
  thread_cache::LockForFork();
  large_cache::LockForFork();
  central::LockForFork();
  page_heap::LockForFork();
  huge::LockForFork();
  meta::LockForFork();
}

void ForkParent() {
  meta::UnlockAfterFork(false);
  huge::UnlockAfterFork(false);
  page_heap::UnlockAfterFork(false);
  central::UnlockAfterFork(false);
  large_cache::UnlockAfterFork(false);
  thread_cache::UnlockAfterFork(false);
  profiler::UnlockAfterFork(false);
  debug::UnlockAfterFork(false);
}

void ForkChild() {
  meta::UnlockAfterFork(true);
  huge::UnlockAfterFork(true);
  page_heap::UnlockAfterFork(true);
  central::UnlockAfterFork(true);
  large_cache::UnlockAfterFork(true);  // frees the other threads' runs into the page heap
  thread_cache::UnlockAfterFork(true);
  profiler::UnlockAfterFork(true);
  debug::UnlockAfterFork(true);
  purger::AfterForkChild();
}

ASSAY_STARTUP void FillLayout() {
  AssayLayout* l = &assay_layout;
  l->version = ASSAY_LAYOUT_VERSION;
  l->size = sizeof(AssayLayout);
  l->segment_size = kSegmentSize;
  l->slice_size = kSliceSize;
  l->slices_per_segment = kSlicesPerSegment;
  l->page_size = kPageSize;
  l->num_classes = kNumClasses;
  l->max_small_size = kMaxSmallSize;
  l->max_large_size = kMaxLargeSize;
  l->classes_addr = reinterpret_cast<uint64_t>(kClasses.data());
  l->class_record_size = sizeof(SizeClassInfo);
  l->class_size_off = offsetof(SizeClassInfo, size);
  page_heap::DescribeLayout(l);
  central::DescribeLayout(l);
  thread_cache::DescribeLayout(l);
  huge::DescribeLayout(l);
  profiler::DescribeLayout(l);
  __atomic_store_n(&l->magic, ASSAY_LAYOUT_MAGIC, __ATOMIC_RELEASE);
}

}  // namespace

namespace heap {

void LockAll() { ForkPrepare(); }
void UnlockAll(bool child) {
  if (child) {
    ForkChild();
  } else {
    ForkParent();
  }
}

ASSAY_STARTUP void EnsureInit() {
  if (ASSAY_LIKELY(__atomic_load_n(&g_init_state, __ATOMIC_ACQUIRE) == kReady)) return;
  uint32_t expected = kUninitialised;
  if (__atomic_compare_exchange_n(&g_init_state, &expected, kInitialising, false, __ATOMIC_ACQ_REL,
                                  __ATOMIC_ACQUIRE)) {
    g_init_thread = os::ThreadId();
    InitOptions(os::GetEnv("ASSAY_OPTIONS"));
    if (GetOptions().harden != 0) link::Enable();  // before any block is linked
    debug::Init(os::GetEnv("ASSAY_DEBUG"));
    if (debug::g_guard_sampling) {  // guard points share the profiler's countdown
      profiler::EnableGuardSampling(debug::kGuardSampleBytes * debug::GetConfig().guard_every);
    }
    thread_cache::InitKey();
    FillLayout();
    __atomic_store_n(&g_init_state, kReady, __ATOMIC_RELEASE);
    // May allocate: the state is kReady, so that allocation proceeds.
    os::AtFork(ForkPrepare, ForkParent, ForkChild);
    if (GetOptions().stats_at_exit != 0) os::AtExit([] { assay_stats_print(nullptr); });
    if (debug::g_on || debug::g_guard) debug::InitLate();
    return;
  }
  while (__atomic_load_n(&g_init_state, __ATOMIC_ACQUIRE) != kReady) {
    if (g_init_thread == os::ThreadId()) return;  // re-entered from our own initialisation
    os::Yield();
  }
}

}  // namespace heap
}  // namespace assay::internal
