// Tracking entries: one per sampled block that is live (or whose callbacks
// are still being delivered), and the address-keyed table of the live ones.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/layout.h"
#include "profiler/stack_table.h"

namespace assay::profiler {

// Callback progress of an entry (Entry::cb). The bits only accumulate,
// except kBusy, which one thread holds while it runs a callback for the
// entry; a thread that raises an event sets its request bit and then drives
// the entry, and the thread finishing a callback re-checks the requests, so
// callbacks of one entry never overlap and run in the order alloc, promote,
// free.
enum EntryBits : uint32_t {
  kAllocDone = 1 << 0,   // the alloc callback ran (or was skipped)
  kBusy = 1 << 1,        // a callback of this entry is running
  kPromoteReq = 1 << 2,  // the block survived young_bytes
  kPromoteDone = 1 << 3,
  kFreeReq = 1 << 4,  // the block was freed
  kFreeDone = 1 << 5,
  kDropped = 1 << 6,  // the tracker does not follow this entry (no more callbacks)
};

// Two cache lines (128 bytes, the arena's 128-byte class: one entry for
// every live block in audit mode, where 192 bytes in the 256-byte class had
// doubled the cache misses of a table of a million entries). The first
// holds what a sampled free touches (the table's lookup and unlink, the live
// estimate, the callback state, the release of the stack): at rate=1 the
// free of a long-lived block found the entry cold, and took a miss for the
// address, another for the link, a third for the state.
struct alignas(64) Entry {
  // Hot on free:
  uintptr_t address;
  Entry* table_next;    // in its address-table bucket
  Stack* stack;         // interned, referenced
  double weight_bytes;  // requested / q(requested): unbiased bytes estimate
  uint32_t cb;          // EntryBits, atomic
  uint32_t refs;        // atomic: table + queued events + young list
  uintptr_t token;      // the tracker's, from its alloc callback
  // The tracker session that receives callbacks, by the low 32 bits of its
  // id (never 0: StartSession skips such ids); 0: none.
  uint32_t session_id;
  uint32_t alloc_gen;   // alloc-profile generation at birth (ResetAllocationProfile)
  uint32_t thread_id;   // kernel thread id of the allocating thread (pid_max <= 2^22)
  bool in_young;        // written under g_young_mu; read unlocked with a relaxed atomic load
  uint8_t stack_slot;   // the stack's slot in the threads' stack caches (stack_cache::Release)
  uint8_t align_shift;  // alignment asked for: 1 << align_shift, or 0 (the default) when 0
  // Fixed once recorded:
  uint64_t requested;     // bytes asked for
  uint64_t usable;        // bytes the block really has
  uint64_t points;        // sample points in the block (n_samples >= 1)
  uint64_t birth_clock;   // allocation clock (bytes) when recorded
  double weight_objects;  // 1 / q(requested): unbiased count estimate
  uint32_t batch_index;   // index in its comalloc batch (0 otherwise)
  uint32_t batch_size;    // size of that batch (1 otherwise)
  // The young list (entries waiting for promotion):
  Entry* young_prev;
  Entry* young_next;
};
static_assert(offsetof(Entry, stack_slot) < 64, "a free's fields share one cache line");
static_assert(sizeof(Entry) == 128, "an entry fills the arena's 128-byte class");

// The alignment an entry records: 0 (the default), else a power of two
// (every aligned entry point takes or rounds to one), kept as its log2.
inline uint8_t AlignShiftOf(uint64_t alignment) {
  return alignment == 0 ? 0 : static_cast<uint8_t>(63 - __builtin_clzll(alignment));
}
inline uint64_t AlignmentOf(const Entry& e) {
  return e.align_shift == 0 ? 0 : uint64_t{1} << e.align_shift;
}

namespace entry_table {

// Adds a live entry (its address must not be in the table); false when the
// table has no memory to grow into.
bool Insert(Entry* e);
// Removes and returns the entry of address p, or nullptr.
Entry* Remove(uintptr_t p);
// Whether address p has an entry (only a stable answer while the caller
// keeps p's entry from being inserted or removed).
bool Contains(uintptr_t p);
// Number of live entries.
size_t Count();
// Calls fn(entry, arg) for every live entry, each shard under its lock; fn
// must only read the entry (and must not allocate through the profiler).
void ForEach(void (*fn)(const Entry* e, void* arg), void* arg);

void LockForFork();
void UnlockAfterFork(bool child);

// Aborts with a message unless every entry is in the shard and bucket its
// address hashes to and every shard's count is right (for tests).
void AssertValid();

// Fills the entry and stack fields of the layout descriptor (base/layout.h).
void DescribeLayout(AssayLayout* l);

}  // namespace entry_table
}  // namespace assay::profiler
