// The guard samplers of guard=N: the byte sampler of guard points that the
// allocator's countdown runs (guard=N alone, DrawGuardGap) and the per-block
// Bernoulli(1/N) choice (GuardThisOne, GuardOneInN).
#include "debug_heap/debug_internal.h"
#include "profiler/sampler.h"

namespace assay::internal::debug {
namespace {

// Both guard samplers are seeded by the order in which threads first use
// them, so a run repeats its choices.
constinit uint64_t g_guard_threads = 0;

// guard=N alone: the byte sampler of guard points.
constinit profiler::SamplingRate g_guard_rate;
ASSAY_TLS profiler::Rng tls_guard_bytes_rng;
ASSAY_TLS bool tls_guard_seeded = false;

// guard=N, block by block: a per-thread Bernoulli(1/N) choice.
ASSAY_TLS uint64_t tls_guard_rng = 0;

}  // namespace

bool GuardThisOne() {
  if (g_config.guard_every == 0) return false;
  uint64_t x = tls_guard_rng;
  if (x == 0) {
    const uint64_t index = __atomic_fetch_add(&g_guard_threads, 1, __ATOMIC_RELAXED);
    x = 0x9E3779B97F4A7C15ull ^ ((index + 1) * 0xff51afd7ed558ccdull);
  }
  x ^= x << 13;  // xorshift64
  x ^= x >> 7;
  x ^= x << 17;
  tls_guard_rng = x;
  return (x >> 11) % g_config.guard_every == 0;
}

void SetGuardRate(uint64_t bytes) { g_guard_rate.Set(bytes); }

bool GuardOneInN() { return GuardThisOne(); }

int64_t DrawGuardGap() {
  if (!tls_guard_seeded) {
    const uint64_t index = __atomic_fetch_add(&g_guard_threads, 1, __ATOMIC_RELAXED);
    tls_guard_bytes_rng.Seed(0x6173736179677264ull + index * 0x9E3779B97F4A7C15ull);
    tls_guard_seeded = true;
  }
  return g_guard_rate.DrawGap(tls_guard_bytes_rng);
}

}  // namespace assay::internal::debug
