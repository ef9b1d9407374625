// The quarantine (freecheck): a bounded FIFO of freed blocks whose fill is
// checked when they leave it and at exit.
#pragma once

#include "debug_heap/debug_internal.h"

namespace assay::internal::debug {

// Fills b (a small block) or makes it inaccessible (a mapped one) and queues
// it; blocks evicted past quarantine_bytes are checked and released.
void Quarantine(const Block& b);
// Reports the first quarantined block whose fill changed (a use after free).
void CheckQuarantineAtExit();
// Blocks in quarantine and their requested bytes.
void QuarantineCounts(uint64_t* blocks, uint64_t* bytes);

void LockQuarantineForFork();
void UnlockQuarantineAfterFork(bool child);

}  // namespace assay::internal::debug
