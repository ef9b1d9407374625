// Learning a thread's root from the unwind tables (fp_walk.h:
// LearnRootFromTables): the steps libunwind would take out of the root's
// frames, each by the CFA row of its code (eh_frame.h: RowAt).
#include "base/base.h"
#include "profiler/eh_frame.h"
#include "profiler/fp_mappings.h"
#include "profiler/fp_walk.h"

namespace assay::profiler::fp_walk {
namespace {

// The word at addr if it lies inside the stack [lo, hi).
bool StackWord(uintptr_t addr, uintptr_t lo, uintptr_t hi, uintptr_t* out) {
  if (addr < lo || addr > hi - sizeof(uintptr_t) || addr % sizeof(uintptr_t) != 0) return false;
  *out = *reinterpret_cast<const uintptr_t*>(addr);
  return true;
}

}  // namespace

bool LearnRootFromTables(uintptr_t record, uintptr_t root_pc, uint64_t seq, uintptr_t lo,
                         uintptr_t hi) {
  uintptr_t rbp;
  if (!StackWord(record, lo, hi, &rbp)) return false;
  Root root{record, rbp, seq, 0, 0, {}, {}};
  // The frame that returns to root_pc kept frame pointers: its CFA is its
  // record + 16, the caller's %rsp once it returned, and the caller's %rbp
  // is the record's first word.
  uintptr_t pc = root_pc, sp = record + 2 * sizeof(uintptr_t), slot = record + sizeof(uintptr_t);
  for (;;) {
    if (root.n == kMaxRoot) return false;
    root.pcs[root.n] = pc;
    root.slots[root.n] = slot;
    ++root.n;
    fp_mappings::Range m;
    if (!fp_mappings::FindUnclassified(pc, &m) || m.eh_frame_hdr == nullptr) return false;
    if (!m.pinned && !fp_mappings::StillLoaded(m, pc)) return false;
    eh_frame::Row row;
    // pc is a return address: the row of the call before it.
    if (!eh_frame::RowAt(static_cast<const uint8_t*>(m.eh_frame_hdr), pc - 1, &row)) return false;
    if (row.ra_undefined) break;  // the outermost frame
    const uintptr_t cfa = (row.cfa_reg == 7 ? sp : rbp) + static_cast<uintptr_t>(row.cfa_offset);
    // The caller's frame lies above this one.
    if (cfa <= sp) return false;
    slot = cfa + static_cast<uintptr_t>(row.ra_offset);
    uintptr_t next_pc;
    if (!StackWord(slot, lo, hi, &next_pc)) return false;
    if (row.rbp_saved && !StackWord(cfa + static_cast<uintptr_t>(row.rbp_offset), lo, hi, &rbp))
      return false;
    if (next_pc == 0) break;  // libunwind ends the stack at a zero return address too
    pc = next_pc;
    sp = cfa;
  }
  if (!fp_mappings::Valid(seq)) return false;
  tls_root = root;
  PublishRoot(root);
  return true;
}

}  // namespace assay::profiler::fp_walk
