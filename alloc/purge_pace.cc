// The purge pace (purge_pace.h): a controller over windows of kWindowMs that
// compares the dense slices purged with the dense slices handed out again
// within the current dense decay of their purge.
#include "alloc/purge_pace.h"

#include "base/os.h"

namespace assay::internal::purge_pace {
namespace {

inline constexpr size_t kPagesPerSlice = kSliceSize / kPageSize;
// Dense: 3/4 of the pages resident. Sparse slices (blocks touched in a few
// places, as on the server workload) keep decay_ms: purging them is what
// keeps a reused slice from collecting the resident pages of every block
// it held, and their reuse faults in only the pages it touches.
inline constexpr size_t kDenseFrom = kPagesPerSlice * 3 / 4;
inline constexpr uint64_t kWindowMs = 50;
// Windows with fewer dense slices purged and reused than this (1 MiB) change
// nothing: the faults a longer decay could save there (~5 000 a second) cost
// less than the memory it would pin. The server workload purges 0-3 dense
// slices a window; sizemix ~40.
inline constexpr uint64_t kMinSlices = 16;
// The dense decay starts at the floor, grows 4x a window and shrinks 2x, and
// stays within [1x, 64x] the floor, at most 1 s (never below the floor).
inline constexpr uint64_t kGrow = 4;
inline constexpr uint64_t kStartFactor = 1;
inline constexpr uint64_t kMaxFactor = 64;
inline constexpr uint64_t kMaxMs = 1000;

struct State {
  uint64_t decay_ms = 0;  // the dense decay; 0 until the first DenseDecay
  uint64_t window_start_ms = 0;
  uint64_t purged = 0;  // dense slices purged in this window
  uint64_t reused = 0;  // dense slices handed out again soon after their purge
};
constinit State g;

uint64_t Clamp(uint64_t v, uint64_t base_ms) {
  uint64_t hi = base_ms * kMaxFactor < kMaxMs ? base_ms * kMaxFactor : kMaxMs;
  if (hi < base_ms) hi = base_ms;
  return v < base_ms ? base_ms : (v > hi ? hi : v);
}

}  // namespace

bool Dense(size_t resident) { return resident >= kDenseFrom; }

uint64_t DenseDecay(uint64_t now_ms, uint64_t base_ms) {
  if (base_ms == 0) return 0;
  if (g.decay_ms == 0) g.decay_ms = base_ms * kStartFactor;
  g.decay_ms = Clamp(g.decay_ms, base_ms);
  if (now_ms - g.window_start_ms < kWindowMs) return g.decay_ms;
  if (g.purged + g.reused >= kMinSlices) {
    if (g.reused * 4 >= g.purged) {
      // A quarter of the dense memory purged came back within a decay: each
      // such purge bought a page fault per page for little RSS. A longer
      // wait would have kept it.
      g.decay_ms = Clamp(g.decay_ms * kGrow, base_ms);
    } else if (g.reused * 16 < g.purged) {
      // Purged dense memory stays unused: the wait only pins RSS.
      g.decay_ms = Clamp(g.decay_ms / 2, base_ms);
    }
  }
  g.window_start_ms = now_ms;
  g.purged = 0;
  g.reused = 0;
  return g.decay_ms;
}

constinit bool g_any_dense = false;

void PurgedDense() {
  g.purged++;
  g_any_dense = true;
}

void Reused(uint64_t stamp) {
  if (!IsDense(stamp)) return;
  // "Soon": within the dense decay in force, at least one window. The clock
  // is read only here, for a slice about to be faulted in again anyway.
  const uint64_t soon = g.decay_ms > kWindowMs ? g.decay_ms : kWindowMs;
  const uint64_t now = os::NowMs();
  if (now >= TimeOf(stamp) && now - TimeOf(stamp) <= soon) g.reused++;
}

uint64_t Current() { return g.decay_ms; }

}  // namespace assay::internal::purge_pace
