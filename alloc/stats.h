// The allocator's counters: the totals of assay_get_stats and the table of
// live blocks by size that assay_stats_print shows (init/stats_report.cc
// formats them, with the other layers' lines).
#pragma once

#include "alloc/size_classes.h"
#include "assay/assay.h"
#include "base/base.h"

namespace assay::internal::stats {

inline constexpr size_t kMaxLargeSlices = kMaxLargeSize / kSliceSize + 1;
inline constexpr size_t kMaxHugeRows = 64;

struct Row {
  uint64_t size;
  uint64_t count;
};

// Live blocks by size: classes, then large and huge sizes. Read without
// stopping threads (thread-cache counts are racy by a few blocks).
struct Usage {
  Row rows[kNumClasses + kMaxLargeSlices + kMaxHugeRows];
  size_t nrows = 0;
  uint64_t blocks = 0;
  uint64_t bytes = 0;
};

// Fills u, smallest size first.
void CollectUsage(Usage* u);

// The totals of assay_get_stats.
void GetStats(assay_stats* out);

}  // namespace assay::internal::stats
