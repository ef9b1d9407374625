// Where a pointer lives: the slow paths' decode of a block pointer into its
// home (a small or sampled span, a large span, a huge mapping, or nowhere
// assay put a block), with the metadata each home needs.
#pragma once

#include "alloc/huge.h"
#include "alloc/segment.h"
#include "alloc/size_classes.h"

namespace assay::internal {

enum class Home { kSmall, kSampled, kLarge, kHuge, kInvalid };

struct Location {
  Home home;
  size_t cls;    // kSmall, kSampled
  Span* span;    // kLarge
  bool sampled;  // the block carries a sample point (kSampled always)
};

// Decodes p; kInvalid for a pointer that is not the start of a live block
// of ours (an interior pointer, a free slice, an address outside segments
// and the huge table). Inline: free's, realloc's and usable size's slow
// paths each decode once (out of line it cost strbuild 1.4% instructions).
ASSAY_INLINE Location Locate(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (segment_map::Contains(a)) {
    const auto [seg, e, offset] = Decode(a);
    if (e.cls != 0) {
      if (IsBlockOffset(kClasses[e.cls], offset)) return {Home::kSmall, e.cls, nullptr, false};
      return {Home::kInvalid, 0, nullptr, false};
    }
    Span* span = &seg->spans[e.first];
    // A cached run (large_cache.h) is free: freeing it again is invalid.
    if (span->kind == SpanKind::kLarge && SpanStart(span) == p && span->cached == 0) {
      return {Home::kLarge, 0, span, span->sampled != 0};
    }
    if (span->kind == SpanKind::kSampled && span->first == e.first &&
        IsBlockOffset(kClasses[span->cls], offset)) {
      return {Home::kSampled, span->cls, span, true};
    }
    return {Home::kInvalid, 0, nullptr, false};
  }
  bool sampled = false;
  if (p != nullptr && huge::UsableSize(p, &sampled) != 0) {
    return {Home::kHuge, 0, nullptr, sampled};
  }
  return {Home::kInvalid, 0, nullptr, false};
}

// The usable size of the block loc describes.
ASSAY_INLINE size_t UsableOf(const Location& loc, const void* p) {
  switch (loc.home) {
    case Home::kSmall:
    case Home::kSampled:
      return kClasses[loc.cls].size;
    case Home::kLarge:
      return loc.span->slices * kSliceSize;
    case Home::kHuge:
      return huge::UsableSize(p);
    case Home::kInvalid:
      break;
  }
  return 0;
}

}  // namespace assay::internal
