// The stack memo: a thread's recent stacks by the frame records they were
// walked through. A stack that the hybrid walk took through frame-pointer
// code of the program and assay itself alone (stack_capture.h:
// LastStackWalked) is fixed by its chain of frame records: each record's
// address and return address, from the entry frame's record to the record
// where the walk ended (the thread's root, the outermost frame, or the depth
// limit). When a later sample's chain is the same record for record, so is
// its stack: the walk would read the same return addresses from the same
// places, in code it classifies the same way (same table), and end the same
// way. Comparing the chain costs about half a walk, and the memo holds
// references to the stack already interned (a bundle, handed out one a
// sample, as a stack cache slot does), so neither the walk nor the interning
// runs again: the server workload's samples come from a few call sites at
// fixed depths.
#pragma once

#include <cstddef>
#include <cstdint>

#include "profiler/stack_table.h"

namespace assay::profiler::stack_memo {

// The stack of the calling thread's allocation if the memo holds its chain
// (max frames at most, cache label `label`, inside the stack [lo, hi)): one
// more reference to it and its cumulative counts raised by (objects,
// bytes), as stack_cache::Intern; *slot its stack-cache slot. nullptr: take
// the stack (CaptureStack, Intern) and Remember it (which keeps it only if
// this lookup was made: after kMisses lookups without a hit the memo rests).
Stack* Find(uintptr_t lo, uintptr_t hi, size_t max, const char* label, double objects, double bytes,
            uint8_t* slot);

// After CaptureStack and stack_cache::Intern gave (frames, depth) and stack
// in `slot`: remembers the walk's chain if the walk allows (LastStackWalked).
void Remember(const uintptr_t* frames, size_t depth, size_t max, const char* label, Stack* stack,
              uint8_t slot, uintptr_t lo, uintptr_t hi);

// The thread is exiting: the memos' references and memory go back; later
// calls find nothing and remember nothing.
void FlushThread();

// Stacks the calling thread took from the memo, and the lookups it made
// (not counting samples the memo rested for: a thread whose stacks do not
// repeat looks up one sample in 32): for tests.
uint64_t ThreadHits();
uint64_t ThreadLookups();

}  // namespace assay::profiler::stack_memo
