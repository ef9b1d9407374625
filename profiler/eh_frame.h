// What an object's unwind tables say: the CFA rules of its FDEs, read from
// its PT_GNU_EH_FRAME section (the .eh_frame_hdr search table and the
// .eh_frame records it points to). fp_mappings classifies each loaded object
// by them (eh_frame.cc); the hybrid walk steps out of a thread's root frames
// with RowAt (cfa_row.cc). Reads memory only; never allocates.
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
// neither). It stops once whether fp_fdes reach `permille` thousandths of
// fdes is decided whatever the unread ones hold: the counts then give the
// answer all 64 would. False if the header's encodings are not the usual
// ones (version 1, count udata4, table datarel sdata4).
bool Scan(const uint8_t* hdr, size_t permille, size_t* fdes, size_t* fp_fdes);

// How to step out of a function at one pc: the row of its FDE's CFA table
// there, for the columns a step needs (DWARF registers 6, %rbp; 7, %rsp;
// and the return address's).
struct Row {
  uint8_t cfa_reg;    // 6 or 7: the CFA is that register + cfa_offset
  bool ra_undefined;  // no caller: the outermost frame (_start, clone3)
  bool rbp_saved;     // the caller's %rbp is at CFA + rbp_offset, else unchanged
  int64_t cfa_offset;
  int64_t ra_offset;  // the return address is at CFA + ra_offset
  int64_t rbp_offset;
};

// The row at pc of the FDE covering pc in the object whose .eh_frame_hdr is
// hdr. False if no FDE covers pc, or its rules are ones a step here cannot
// follow (a CFA on another register or by an expression, a return address
// or %rbp kept in a register or by an expression, set_loc, instructions
// this reader does not know): the caller unwinds with libunwind then. For a
// return address, ask at the address less one (the call, not what follows).
bool RowAt(const uint8_t* hdr, uintptr_t pc, Row* row);

}  // namespace assay::profiler::eh_frame
