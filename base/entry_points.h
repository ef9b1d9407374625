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

inline bool IsEntryFrame(uintptr_t pc) {
  const auto in = [pc](void (*b)(), void (*e)()) {
    return pc >= reinterpret_cast<uintptr_t>(b) && pc <= reinterpret_cast<uintptr_t>(e);
  };
  return in(assay_internal_api_begin, assay_internal_api_end) ||
         in(assay_internal_new_begin, assay_internal_new_end);
}

}  // namespace assay::internal
