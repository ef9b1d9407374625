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
  const void* eh_frame_hdr;  // its object's, to recognise the object
  bool fp;                   // its object keeps frame pointers
  bool pinned;               // the program or assay itself: never unloaded
};

// A consistent view of the table for one walk: Begin() brings the table up
// to date with the loaded objects (dl_iterate_phdr's adds/subs counters) and
// returns its sequence number; Find() looks a pc up; Valid(seq) says no
// rebuild raced with the walk (else the caller must not trust what it found).
// Begin takes the loader's lock: walks call it only when the table misses
// a pc or holds an object no longer loaded, and use Current() otherwise.
uint64_t Begin();
// The sequence number without the probe; 0 until Begin first built the table.
uint64_t Current();
// Whether r's object is still the one loaded at pc (it may have been
// unloaded, and another loaded there, since the table was built): true for
// pinned ranges, else asked of glibc's lock-free _dl_find_object (glibc
// 2.35; without it, false: the walk uses libunwind).
bool StillLoaded(const Range& r, uintptr_t pc);
// Copies the range holding pc into *out; false if no loaded code holds it.
// Classifies its object if no walk met it before (reads 64 of its FDEs:
// ~30 000 instructions).
bool Find(uintptr_t pc, Range* out);
// The same without classifying: out->fp is true only for an object
// classified already as keeping frame pointers (for reading its unwind
// tables, which do not need the answer).
bool FindUnclassified(uintptr_t pc, Range* out);
bool Valid(uint64_t seq);

// In a fork child: a rebuild another thread of the parent had under way is
// dropped (its lock reset, the table emptied and rebuilt by the next Begin).
void ResetAfterFork();

}  // namespace assay::profiler::fp_mappings
