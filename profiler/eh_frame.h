// What an object's unwind tables say about frame pointers: the CFA rules of
// its FDEs, read from its PT_GNU_EH_FRAME section (the .eh_frame_hdr search
// table and the .eh_frame records it points to). fp_mappings classifies
// each loaded object with it. Reads memory only; never allocates.
#pragma once

#include <cstddef>
#include <cstdint>

namespace assay::profiler::eh_frame {

// What an FDE's CFA instructions (its CIE's initial ones, then its own) do
// with the CFA: kCfaOnRbp if they ever define it on %rbp (DWARF register
// 6); kCfaExpression if they define it by an expression (the linker's FDE
// for the PLT: code that jumps and never calls); kCfaMoved if they only
// move it (pushes, stack adjustments); kCfaUntouched if they never do (a
// function that never moves its stack pointer makes no call: it needs no
// frame, with or without -fno-omit-frame-pointer); kCfaUnknown for records
// or instructions this reader does not know.
enum Cfa { kCfaUntouched, kCfaMoved, kCfaOnRbp, kCfaExpression, kCfaUnknown };

// The CFA rule of the FDE covering pc in the object whose .eh_frame_hdr is
// hdr (kCfaUnknown if the header's encodings are not the usual ones).
Cfa CfaAt(const uint8_t* hdr, uintptr_t pc);

// Reads up to 64 of the object's FDEs, evenly spaced over its search table:
// *fdes counts those that move the stack pointer, *fp_fdes those of them
// that put the CFA on %rbp (frameless leaves and the PLT's stubs count for
// neither). False if the header's encodings are not the usual ones
// (version 1, count udata4, table datarel sdata4).
bool Scan(const uint8_t* hdr, size_t* fdes, size_t* fp_fdes);

}  // namespace assay::profiler::eh_frame
