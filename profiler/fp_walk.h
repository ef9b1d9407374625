// The frame-pointer stack walks of stack_capture.cc: the bare walk
// (StackMethod::kFramePointer) and the hybrid walk (kUnwind), which follows
// frame pointers only through code that keeps them (fp_mappings.h) and
// appends the thread's learned root frames. Both step over the profiler's
// and the allocator's own frames (at most kOwnFrames, all in the object
// that holds this code) and write only the program's, starting at the
// frame after the outermost entry frame (base/entry_points.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/base.h"

namespace assay::profiler::fp_walk {

// Room for the profiler's and allocator's own frames above the entry point.
inline constexpr size_t kOwnFrames = 32;

// How a walk ended.
enum class Walk : uint8_t {
  kOk,       // out holds the program's frames
  kFail,     // the caller walks with libunwind (record says where it stopped)
  kStale,    // the table missed a pc or names an object since unloaded
  kNoEntry,  // no entry frame within kOwnFrames: not called through malloc & co.
};

struct Result {
  size_t n;  // program frames written; also kept on failure (LearnRoot compares them)
  Walk walk;
  bool pinned_only;  // (Hybrid) every frame-pointer frame in the program or assay itself
  uintptr_t record;  // where the walk stopped (for learning the root)
  uintptr_t root_pc;
  uint64_t seq;     // the table the walk used
  uintptr_t first;  // the entry frame's record: its return address is out[0] (kOk)
};

// The thread's root, for the hybrid walk. Below the program's outermost
// frame-pointer frame lie a few frames, mostly of code without frame
// pointers, that never change while the thread runs (libc's
// __libc_start_call_main and __libc_start_main, then _start; start_thread
// and clone3): the thread's "root". It is learned once from a libunwind
// walk, with the stack slot of each of its return addresses, and reused
// while the walk ends at the same frame record, holding the same saved %rbp
// and return address, and every slot still holds its address: libunwind
// would find the same frames (each frame's place follows from its pc and
// the one below it), so the stack equals what libunwind gives.
inline constexpr size_t kMaxRoot = 6;
struct Root {
  uintptr_t record;     // frame record whose return address is pcs[0]
  uintptr_t saved_rbp;  // the record's first word
  uint64_t seq;         // the table it was learned with (pcs[0] in code without frame pointers)
  uint32_t n;           // 0: none learned
  uint32_t disabled;    // the walk once disagreed with libunwind: libunwind only
  uintptr_t pcs[kMaxRoot];
  uintptr_t slots[kMaxRoot];
};
extern ASSAY_TLS Root tls_root;
// Raised each time the thread's root is installed (stack_memo.h).
extern ASSAY_TLS uint32_t tls_root_gen;

// Steps from the frame record `record` (of a frame that keeps frame
// pointers; its return address is pcs[0]) with the unwind tables
// (eh_frame.h: RowAt), as libunwind steps: up to max return addresses into
// pcs and, if slots is not null, the stack slot of each, inside the stack
// [lo, hi). ok: the stack ended (a frame whose return address is undefined,
// _start or clone3, or zero) or filled max; not ok: a rule it cannot
// follow, code of an object it does not know (or no longer loaded), or a
// slot outside the stack (the caller asks libunwind then).
struct TableSteps {
  size_t n;
  bool ok;
};
TableSteps StepTables(uintptr_t record, uintptr_t lo, uintptr_t hi, uintptr_t* pcs,
                      uintptr_t* slots, size_t max);

// Learns the thread's root from where a hybrid walk stopped (the frame
// record `record`, whose return address root_pc lies in code without frame
// pointers) with StepTables. Installs it as tls_root and publishes its
// shape; false (nothing changed) where StepTables is not ok, the root would
// pass kMaxRoot frames, or the table (as of seq) was rebuilt meanwhile:
// libunwind learns it then.
bool LearnRootFromTables(uintptr_t record, uintptr_t root_pc, uint64_t seq, uintptr_t lo,
                         uintptr_t hi);

// Offers a root learned with libunwind (LearnRoot) as the shape of other
// threads' roots (fp_walk.cc): threads whose walk stops at the same return
// address then take their root from it.
void PublishRoot(const Root& root);

// The frame-pointer chain from the caller's frame, trusting every frame,
// inside the stack [lo, hi): kOk, or kNoEntry / kFail (no entry frame, a
// broken chain among the own frames).
Result FramePointers(uintptr_t* out, size_t max, uintptr_t lo, uintptr_t hi);

// The hybrid walk with the table as of `seq` (fp_mappings::Current or
// Begin); kOk only if the table stayed valid. Fails (kFail, with the record
// where it stopped for LearnRoot) at code without frame pointers that is not
// the thread's root, kStale at a pc the table does not know.
Result Hybrid(uintptr_t* out, size_t max, uintptr_t lo, uintptr_t hi, uint64_t seq);

// The record of the entry frame (Result::first) of a stack taken from the
// caller, as Hybrid finds it (the own frames stepped over the same way,
// inside the stack [lo, hi)); nullptr where Hybrid would not walk.
// Noinline: its own frame is one of the own frames.
__attribute__((noinline)) const uintptr_t* EntryRecord(uintptr_t lo, uintptr_t hi, uint64_t seq);

// Whether each of root's slots after the first still holds its return
// address (slot 0, the stopping record's, is compared by the caller).
inline bool SlotsHold(const Root& root) {
  for (uint32_t i = 1; i < root.n; ++i) {
    if (*reinterpret_cast<const uintptr_t*>(root.slots[i]) != root.pcs[i]) return false;
  }
  return true;
}

// Whether Hybrid, stopping at `record` with the table as of seq, would
// append the thread's root there (nothing written).
inline bool RootHolds(const uintptr_t* record, uint64_t seq) {
  const Root& root = tls_root;
  // No root learned: record is 0, never a frame's address.
  return root.record == reinterpret_cast<uintptr_t>(record) && root.pcs[0] == record[1] &&
         root.saved_rbp == record[0] && root.seq == seq && SlotsHold(root);
}

}  // namespace assay::profiler::fp_walk
