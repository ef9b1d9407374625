// Small debug blocks: one block of the sampled pool each, found from the
// pointer by its span's class (no table), and the per-thread magazines of
// free slots they are taken from and given back to.
#pragma once

#include "alloc/segment.h"
#include "alloc/size_classes.h"
#include "debug_heap/debug_internal.h"

namespace assay::internal::debug {

// The small block whose slot holds a (in span, a sampled-pool span).
inline Block SmallBlockAt(const Span* span, uintptr_t a) {
  const size_t size = kClasses[span->cls].size;
  char* start = SpanStart(span);
  char* inner = start + (a - reinterpret_cast<uintptr_t>(start)) / size * size;
  return {reinterpret_cast<Header*>(inner), inner + kSmallOverhead, inner + size};
}

// The sampled-pool span holding a, or nullptr.
inline const Span* SampledSpanOf(uintptr_t a) {
  if (!segment_map::Contains(a)) return nullptr;
  const auto [seg, e, offset] = Decode(a);
  if (e.cls != 0) return nullptr;
  const Span* span = &seg->spans[e.first];
  if (span->kind != SpanKind::kSampled || span->first != e.first) return nullptr;
  return span;
}

// A free slot of class cls from the calling thread's magazine (refilled from
// the central list), or nullptr.
void* TakeSlot(size_t cls);
// Returns slot p (its state already 0) to the thread's magazine, or to the
// central list when the magazine is full or the thread is exiting.
void GiveSlot(size_t cls, void* p);
// Calls fn for every live small block, walking the sampled spans under the
// page heap's lock. fn must not allocate.
void ForEachLiveSmall(void (*fn)(const Block& b, void* arg), void* arg);
// The same, the page-heap lock held by the caller (the leak scan).
void ForEachLiveSmallLocked(void (*fn)(const Block& b, void* arg), void* arg);

}  // namespace assay::internal::debug
