// Which loaded code keeps frame pointers: a table of the executable segments
// of every loaded object, each marked by reading its .eh_frame once (an
// object built with -fno-omit-frame-pointer has nearly every FDE move its
// CFA to %rbp after the prologue). The hybrid stack walk (stack_capture.cc)
// follows %rbp only while each return address lies in such a segment.
#pragma once

#include <cstddef>
#include <cstdint>

namespace assay::profiler::fp_mappings {

struct Range {
  uintptr_t lo;  // [lo, hi): an executable PT_LOAD segment
  uintptr_t hi;
  bool fp;  // its object keeps frame pointers
};

// A consistent view of the table for one walk: Begin() brings the table up
// to date with the loaded objects (dl_iterate_phdr's adds/subs counters) and
// returns its sequence number; Find() looks a pc up; Valid(seq) says no
// rebuild raced with the walk (else the caller must not trust what it found).
uint64_t Begin();
// The sequence number without the probe (Begin's dl_iterate_phdr call costs
// about 260 instructions): a walk may go first and probe only if it succeeds.
// 0 until Begin first built the table.
uint64_t Current();
// Copies the range holding pc into *out; false if no loaded code holds it.
bool Find(uintptr_t pc, Range* out);
bool Valid(uint64_t seq);

// The share of an object's FDEs whose CFA is %rbp: exposed for tests.
// eh_frame_hdr is the object's PT_GNU_EH_FRAME section in memory. Returns
// false if the header's encodings are not the usual ones.
bool ScanEhFrameHdr(const uint8_t* eh_frame_hdr, size_t* fdes, size_t* fp_fdes);

}  // namespace assay::profiler::fp_mappings
