// Where a pointer lives: the slow paths' decode of a block pointer into its
// home (a small or sampled span, a large span, a huge mapping, or nowhere
// assay put a block), with the metadata each home needs.
#pragma once

#include "alloc/segment.h"

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
// and the huge table).
Location Locate(const void* p);

// The usable size of the block loc describes.
size_t UsableOf(const Location& loc, const void* p);

}  // namespace assay::internal
