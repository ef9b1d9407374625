// Stepping with the unwind tables (fp_walk.h: StepTables, LearnRootFromTables):
// the steps libunwind would take, each by the CFA row of its code
// (eh_frame.h: RowAt), for the frames a hybrid walk cannot follow by frame
// pointers (its root) and for checking the frames it followed.
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

TableSteps StepTables(uintptr_t record, uintptr_t lo, uintptr_t hi, uintptr_t* pcs,
                      uintptr_t* slots, size_t max) {
  TableSteps t{0, false};
  uintptr_t rbp, pc;
  if (!StackWord(record, lo, hi, &rbp) || !StackWord(record + sizeof(uintptr_t), lo, hi, &pc))
    return t;
  // The frame that owns record kept frame pointers: its CFA is record + 16,
  // the caller's %rsp once it returned, and the caller's %rbp is the
  // record's first word.
  uintptr_t sp = record + 2 * sizeof(uintptr_t), slot = record + sizeof(uintptr_t);
  while (t.n < max) {
    pcs[t.n] = pc;
    if (slots != nullptr) slots[t.n] = slot;
    ++t.n;
    fp_mappings::Range m;
    if (!fp_mappings::FindUnclassified(pc, &m) || m.eh_frame_hdr == nullptr) return t;
    if (!m.pinned && !fp_mappings::StillLoaded(m, pc)) return t;
    eh_frame::Row row;
    // pc is a return address: the row of the call before it.
    if (!eh_frame::RowAt(static_cast<const uint8_t*>(m.eh_frame_hdr), pc - 1, &row)) return t;
    if (row.ra_undefined) break;  // the outermost frame
    const uintptr_t cfa = (row.cfa_reg == 7 ? sp : rbp) + static_cast<uintptr_t>(row.cfa_offset);
    // The caller's frame lies above this one.
    if (cfa <= sp) return t;
    slot = cfa + static_cast<uintptr_t>(row.ra_offset);
    if (!StackWord(slot, lo, hi, &pc)) return t;
    if (row.rbp_saved && !StackWord(cfa + static_cast<uintptr_t>(row.rbp_offset), lo, hi, &rbp))
      return t;
    if (pc == 0) break;  // libunwind ends the stack at a zero return address too
    sp = cfa;
  }
  t.ok = true;
  return t;
}

bool LearnRootFromTables(uintptr_t record, uintptr_t root_pc, uint64_t seq, uintptr_t lo,
                         uintptr_t hi) {
  Root root{record, 0, seq, 0, 0, {}, {}};
  // One more than a root may hold: a longer one is refused.
  uintptr_t pcs[kMaxRoot + 1], slots[kMaxRoot + 1];
  const TableSteps t = StepTables(record, lo, hi, pcs, slots, kMaxRoot + 1);
  if (!t.ok || t.n > kMaxRoot || pcs[0] != root_pc || !fp_mappings::Valid(seq)) return false;
  root.saved_rbp = *reinterpret_cast<const uintptr_t*>(record);
  root.n = static_cast<uint32_t>(t.n);
  for (size_t i = 0; i < t.n; ++i) {
    root.pcs[i] = pcs[i];
    root.slots[i] = slots[i];
  }
  tls_root = root;
  ++tls_root_gen;
  PublishRoot(root);
  return true;
}

}  // namespace assay::profiler::fp_walk
