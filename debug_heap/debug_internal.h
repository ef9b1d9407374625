// State shared by the debug heap's own files (debug_heap/ only; the rest of
// assay sees debug.h and alloc/debug_hooks.h): the options in force, the
// small-block geometry, and the glue calls between the parts.
#pragma once

#include "debug_heap/debug.h"

namespace assay::internal::debug {

// The options in force (debug.cc): set by Init before any block is handed
// out, read-only after.
extern Config g_config;

inline constexpr size_t kSmallOverhead = sizeof(Header);

// Bytes of tail redzone a block is given at least (with `redzone`).
inline size_t TailRedzone() { return g_config.redzone ? 16 : 0; }

// Whether a request of n bytes fits a small block (header and redzone included).
inline bool FitsSmall(size_t n) { return n <= kMaxSmallSize - kSmallOverhead - TailRedzone(); }

// Gives a block's memory back (debug.cc): drops its stacks, then a mapped
// block leaves the table, a small one returns to the thread's magazine.
void Release(const Block& b);

// ---- The guard sampler (guard_sampler.cc) ----

// guard=N, block by block: a per-thread Bernoulli(1/N) choice (false without
// guard=N).
bool GuardThisOne();
// guard=N alone: sets the byte sampler's mean gap between guard points.

}  // namespace assay::internal::debug
