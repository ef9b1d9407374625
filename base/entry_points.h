// The address ranges of the allocator's exported entry points (malloc_api.cc
// and new_delete.cc). Those two files are compiled with their functions kept
// in source order, one section, no hot/cold split (see CMakeLists.txt), and
// bracketed by marker functions; a return address inside a range belongs to
// an entry point. The profiler uses this to cut its own and the allocator's
// frames off a captured stack: the frame after the outermost entry frame is
// the program's allocation site.
#pragma once

#include <cstdint>

// Hidden (as every definition of the library is): their addresses are
// link-time constants, not loaded from the GOT.
extern "C" {
__attribute__((visibility("hidden"))) void assay_internal_api_begin();
__attribute__((visibility("hidden"))) void assay_internal_api_end();
__attribute__((visibility("hidden"))) void assay_internal_new_begin();
__attribute__((visibility("hidden"))) void assay_internal_new_end();
}

namespace assay::internal {

// The two ranges, [lo, lo + size) each; a walk reads them once.
struct EntryRanges {
  uintptr_t api_lo, api_size, new_lo, new_size;
  EntryRanges()
      : api_lo(reinterpret_cast<uintptr_t>(assay_internal_api_begin)),
        api_size(reinterpret_cast<uintptr_t>(assay_internal_api_end) - api_lo + 1),
        new_lo(reinterpret_cast<uintptr_t>(assay_internal_new_begin)),
        new_size(reinterpret_cast<uintptr_t>(assay_internal_new_end) - new_lo + 1) {}
  bool Holds(uintptr_t pc) const { return pc - api_lo < api_size || pc - new_lo < new_size; }
};

inline bool IsEntryFrame(uintptr_t pc) { return EntryRanges().Holds(pc); }

}  // namespace assay::internal
