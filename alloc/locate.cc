// Locate and UsableOf (locate.h).
#include "alloc/locate.h"

#include "alloc/huge.h"
#include "alloc/size_classes.h"

namespace assay::internal {

Location Locate(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (segment_map::Contains(a)) {
    const auto [seg, e, offset] = Decode(a);
    if (e.cls != 0) {
      if (IsBlockOffset(kClasses[e.cls], offset)) return {Home::kSmall, e.cls, nullptr, false};
      return {Home::kInvalid, 0, nullptr, false};
    }
    Span* span = &seg->spans[e.first];
    if (span->kind == SpanKind::kLarge && SpanStart(span) == p) {
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

size_t UsableOf(const Location& loc, const void* p) {
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
