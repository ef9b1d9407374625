// The per-block guard sampler of guard=N: a Bernoulli(1/N) choice for every
// block of the full debug heap, and for blocks above 1 KiB with guard=N alone
// (GuardThisOne, GuardOneInN). Guard points of smaller blocks share the
// profiler's countdown (profiler::EnableGuardSampling, called by init).
#include "debug_heap/debug_internal.h"

namespace assay::internal::debug {
namespace {

// Seeded by the order in which threads first use it, so a run repeats its
// choices.
constinit uint64_t g_guard_threads = 0;
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

bool GuardOneInN() { return GuardThisOne(); }

}  // namespace assay::internal::debug
