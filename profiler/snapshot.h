// Profile snapshots: the live entries and the stack table's cumulative
// counts copied and aggregated by stack and labels (Take), and the pprof
// writer's input built from a snapshot (Build). AddEntry, AddStack and Build
// are pure (no lock, no process state), so they are tested alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "profiler/entry.h"
#include "profiler/profile_data.h"
#include "profiler/profiler.h"
#include "profiler/stack_table.h"

namespace assay::profiler::snapshot {

struct Key {
  uint32_t frame_offset;
  uint32_t depth;
  int64_t requested;
  int64_t alignment;
  int64_t thread;
  int64_t batch_index;
  int32_t generation;
  const char* cache;  // interned object-cache name (compared by address), or null
  bool operator==(const Key& o) const {
    return frame_offset == o.frame_offset && depth == o.depth && requested == o.requested &&
           alignment == o.alignment && thread == o.thread && batch_index == o.batch_index &&
           generation == o.generation && cache == o.cache;
  }
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = k.frame_offset * 0x9E3779B97F4A7C15ull;
    for (int64_t v : {k.requested, k.alignment, k.thread, k.batch_index, int64_t{k.generation},
                      static_cast<int64_t>(reinterpret_cast<uintptr_t>(k.cache))}) {
      h = (h ^ static_cast<uint64_t>(v)) * 0xff51afd7ed558ccdull;
    }
    return h ^ (h >> 29);
  }
};

struct Weights {
  double objects = 0;
  double bytes = 0;
};

struct Snapshot {
  std::vector<uintptr_t> frames;
  std::unordered_map<const Stack*, std::pair<uint32_t, uint32_t>> stack_slot;  // offset, depth
  std::unordered_map<Key, Weights, KeyHash> live;          // live blocks, with labels
  std::unordered_map<uint32_t, Weights> live_since_reset;  // per stack slot
  struct Cumulative {
    Weights w;
    uint32_t depth;
    const char* cache;  // the stack's object cache, or null
  };
  std::unordered_map<uint32_t, Cumulative> cumulative;  // per stack slot
  ClockState clock{};
  uint64_t taken_ns = 0;  // monotonic clock when Take began
  size_t live_blocks = 0;
};

// Adds live entry e to s (labels: requested size, alignment, thread,
// batch index, young or old by s->clock, cache).
void AddEntry(Snapshot* s, const Entry& e);
// Adds the cumulative (alloc profile) counts of stack st to s.
void AddStack(Snapshot* s, const Stack& st);

// Copies the live tables into s (each shard under its lock): the live
// entries, and with cumulative the stack table's alloc counts.
void Take(Snapshot* s, bool cumulative);

// The writer's input for a profile of `kind` ("heap", "alloc", "peak",
// "leak"): live samples carry all four values, allocations since the last
// reset that are no longer live only alloc_*. data's pointers point into
// this struct, so it must not be copied or moved while data is used.
struct Built {
  std::vector<AssayProfileSample> samples;
  std::vector<uintptr_t> frames;  // BuildDelta's frames (Build points into the snapshot's)
  char comment[160];
  AssayProfileData data;
};
// wall_ns: the profile's time; now_ns: the monotonic clock now (duration).
void Build(const Snapshot& s, const char* kind, int64_t wall_ns, uint64_t now_ns, Built* out);

// The change from `before` to `after`, as Go's ?seconds=N profiles: one
// sample per stack (frames and object cache; no other label), alloc_* =
// cumulative allocations of the stack in after minus in before (after alone
// when the alloc profile was reset in between), inuse_* = its live blocks in
// after minus in before (negative where the live heap shrank). Samples whose
// four values all round to 0 are left out. duration_ns: between the two.
void BuildDelta(const Snapshot& before, const Snapshot& after, const char* kind, int64_t wall_ns,
                uint64_t duration_ns, Built* out);

}  // namespace assay::profiler::snapshot
