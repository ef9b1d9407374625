// The layout descriptor (layout.h): filled once, at initialisation.
#include "base/layout.h"

#include <cstddef>

#include "base/base.h"
#include "alloc/size_classes.h"

extern "C" {
ASSAY_EXPORT AssayLayout assay_layout;
}

namespace assay::internal {

void FillLayout() {
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

}  // namespace assay::internal
