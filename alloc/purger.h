// The purger: returns free memory to the OS after the decay time
// (ASSAY_OPTIONS decay_ms) without waiting for a malloc call to come along.
// A background thread does it (started on first need, never while a lock of
// the allocator is held); with background_thread=0, or if the thread cannot
// start, the allocator's slow paths do it instead.
#pragma once

#include "base/base.h"

namespace assay::internal::purger {

// Called from slow paths with no allocator lock held, after memory became
// free: starts or wakes the background thread, or purges inline.
void OnFreed();

// Called after a slice run went into a thread's cache (large_cache.h): as
// OnFreed, but with no fence and no clock while the thread is awake.
void OnCached();

// Whether the background thread is running (for tests and stats).
bool ThreadRunning();

void AfterForkChild();

}  // namespace assay::internal::purger
