// eh_frame::RowAt (profiler/cfa_row.cc): the CFA row at a pc of code whose
// CFI is known, written here in assembly: a frame-pointer prologue and
// epilogue, a frameless function with remember/restore_state around an
// early return, and _start's undefined return address.
#include <dlfcn.h>
#include <link.h>

#include <cstdint>

#include "gtest/gtest.h"
#include "profiler/eh_frame.h"

extern "C" {
void CfaProbeFp();
extern const char CfaProbeFpPushed[], CfaProbeFpBody[], CfaProbeFpLeft[];
void CfaProbeFrameless();
extern const char CfaProbeFramelessBody[], CfaProbeFramelessEarly[], CfaProbeFramelessLate[];
extern const char CfaProbeEnd[];
void _start();
}

asm(R"(
  .text
  .globl CfaProbeFp, CfaProbeFpPushed, CfaProbeFpBody, CfaProbeFpLeft
  .type CfaProbeFp, @function
CfaProbeFp:
  .cfi_startproc
  push %rbp
CfaProbeFpPushed:
  .cfi_def_cfa_offset 16
  .cfi_offset %rbp, -16
  mov %rsp, %rbp
  .cfi_def_cfa_register %rbp
  sub $32, %rsp
CfaProbeFpBody:
  nop
  leave
CfaProbeFpLeft:
  .cfi_def_cfa %rsp, 8
  ret
  .cfi_endproc
  .size CfaProbeFp, .-CfaProbeFp

  .globl CfaProbeFrameless, CfaProbeFramelessBody, CfaProbeFramelessEarly, CfaProbeFramelessLate
  .globl CfaProbeEnd
  .type CfaProbeFrameless, @function
CfaProbeFrameless:
  .cfi_startproc
  sub $40, %rsp
CfaProbeFramelessBody:
  .cfi_def_cfa_offset 48
  test %rdi, %rdi
  .cfi_remember_state
  je 1f
  add $40, %rsp
CfaProbeFramelessEarly:
  .cfi_def_cfa_offset 8
  ret
1:
  .cfi_restore_state
  nop
CfaProbeFramelessLate:
  nop
  add $40, %rsp
  .cfi_def_cfa_offset 8
  ret
  .cfi_endproc
  .size CfaProbeFrameless, .-CfaProbeFrameless
  nop
CfaProbeEnd:
  nop
)");

namespace {

namespace eh = assay::profiler::eh_frame;

// The .eh_frame_hdr of the object holding pc.
const uint8_t* HeaderOf(uintptr_t pc) {
  struct Find {
    uintptr_t pc;
    const uint8_t* hdr;
  } f{pc, nullptr};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* arg) {
        auto* f = static_cast<Find*>(arg);
        const uint8_t* hdr = nullptr;
        bool holds = false;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          const uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
          if (ph.p_type == PT_GNU_EH_FRAME) hdr = reinterpret_cast<const uint8_t*>(lo);
          if (ph.p_type == PT_LOAD && f->pc - lo < ph.p_memsz) holds = true;
        }
        if (!holds) return 0;
        f->hdr = hdr;
        return 1;
      },
      &f);
  return f.hdr;
}

eh::Row RowOf(const void* code) {
  const auto pc = reinterpret_cast<uintptr_t>(code);
  const uint8_t* hdr = HeaderOf(pc);
  EXPECT_NE(hdr, nullptr);
  eh::Row row{};
  EXPECT_TRUE(hdr != nullptr && eh::RowAt(hdr, pc, &row)) << "no row at " << code;
  return row;
}

void ExpectRow(const eh::Row& r, int reg, int64_t cfa, bool rbp_saved) {
  EXPECT_EQ(r.cfa_reg, reg);
  EXPECT_EQ(r.cfa_offset, cfa);
  EXPECT_FALSE(r.ra_undefined);
  EXPECT_EQ(r.ra_offset, -8);
  EXPECT_EQ(r.rbp_saved, rbp_saved);
  if (rbp_saved) {
    EXPECT_EQ(r.rbp_offset, -16);
  }
}

TEST(CfaRow, FramePointerPrologueAndEpilogue) {
  ExpectRow(RowOf(reinterpret_cast<const void*>(&CfaProbeFp)), 7, 8, false);
  ExpectRow(RowOf(CfaProbeFpPushed), 7, 16, true);
  ExpectRow(RowOf(CfaProbeFpBody), 6, 16, true);
  // After leave the CFA is back on %rsp; %rbp's rule stays where the CFI put it.
  ExpectRow(RowOf(CfaProbeFpLeft), 7, 8, true);
}

TEST(CfaRow, RememberAndRestoreState) {
  ExpectRow(RowOf(reinterpret_cast<const void*>(&CfaProbeFrameless)), 7, 8, false);
  ExpectRow(RowOf(CfaProbeFramelessBody), 7, 48, false);
  ExpectRow(RowOf(CfaProbeFramelessEarly), 7, 8, false);
  // restore_state brings back the row remembered before the early return.
  ExpectRow(RowOf(CfaProbeFramelessLate), 7, 48, false);
}

TEST(CfaRow, OutermostFrameHasNoReturnAddress) {
  const eh::Row r = RowOf(reinterpret_cast<const void*>(&_start));
  EXPECT_TRUE(r.ra_undefined);
}

TEST(CfaRow, NoRowOutsideEveryFde) {
  const auto pc = reinterpret_cast<uintptr_t>(CfaProbeEnd);
  const uint8_t* hdr = HeaderOf(pc);
  ASSERT_NE(hdr, nullptr);
  eh::Row row{};
  EXPECT_FALSE(eh::RowAt(hdr, pc, &row));
}

}  // namespace
