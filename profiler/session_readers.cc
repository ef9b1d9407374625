// Session readers and their shards (profiler_state.h: SessionReader,
// ReaderShard): shard ownership, the counted (not plain) enter and leave,
// the sample counters' totals, and NoSessionReaders.
#include "base/os.h"
#include "profiler/profiler_state.h"

namespace assay::profiler {

ReaderShard g_session_readers[kReaderShards];
ASSAY_TLS uint32_t tls_reader_shard = ~0u;
ASSAY_TLS bool tls_shard_owned;
ASSAY_TLS uint32_t tls_reading;
bool g_readers_fenced = false;
ASSAY_TLS uint64_t* tls_plain_count;
namespace {
uint32_t g_reader_threads = 0;  // atomic: threads given a shared shard
uint64_t g_owned_shards = 0;    // atomic: bit i set while a thread owns shard i
static_assert(kOwnedShards == 64, "one bit a shard");

uint32_t SharedShard() {
  return static_cast<uint32_t>(
      kOwnedShards + __atomic_fetch_add(&g_reader_threads, 1, __ATOMIC_RELAXED) % kSharedShards);
}
}  // namespace

ASSAY_STARTUP ReaderShard& AssignShard() {
  uint64_t bits = __atomic_load_n(&g_owned_shards, __ATOMIC_RELAXED);
  while (bits != ~uint64_t{0}) {
    const uint32_t i = static_cast<uint32_t>(__builtin_ctzll(~bits));
    // Acquire: the counters as the shard's last owner left them.
    if (__atomic_compare_exchange_n(&g_owned_shards, &bits, bits | (uint64_t{1} << i), true,
                                    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
      tls_shard_owned = true;
      tls_reader_shard = i;
      return g_session_readers[i];
    }
  }
  tls_reader_shard = SharedShard();
  return g_session_readers[tls_reader_shard];
}

ASSAY_STARTUP void EnterCounted() {
  ReaderShard& r = MyShard();
  if (tls_shard_owned && __atomic_load_n(&g_readers_fenced, __ATOMIC_RELAXED)) {
    tls_plain_count = &r.count;
    __atomic_store_n(&r.count, __atomic_load_n(&r.count, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    return;
  }
  __atomic_fetch_add(&r.count, 1, __ATOMIC_SEQ_CST);
}

ASSAY_STARTUP void LeaveCounted() {
  __atomic_fetch_sub(&g_session_readers[tls_reader_shard].count, 1, __ATOMIC_SEQ_CST);
}

void ReleaseShard() {
  // Inside a reader the count would be dropped from another shard than it
  // was raised in: keep the shard then (it stays owned).
  if (!tls_shard_owned || tls_reading != 0) return;
  tls_shard_owned = false;
  tls_plain_count = nullptr;
  const uint32_t i = tls_reader_shard;
  tls_reader_shard = SharedShard();
  // Release: the next owner continues from these counters.
  __atomic_fetch_and(&g_owned_shards, ~(uint64_t{1} << i), __ATOMIC_RELEASE);
}

void ResetShardsAfterFork() {
  const uint64_t mine = tls_shard_owned ? uint64_t{1} << tls_reader_shard : 0;
  __atomic_store_n(&g_owned_shards, mine, __ATOMIC_RELAXED);
}

uint64_t TotalSamples() {
  uint64_t n = 0;
  for (const ReaderShard& r : g_session_readers) n += __atomic_load_n(&r.samples, __ATOMIC_RELAXED);
  return n;
}

int64_t TotalLiveBytes() {
  int64_t n = 0;
  for (const ReaderShard& r : g_session_readers) {
    n += __atomic_load_n(&r.live_bytes, __ATOMIC_RELAXED);
  }
  return n;
}

ASSAY_STARTUP bool NoSessionReaders() {
  // Readers on owned shards fence nothing (SessionReader): this barrier on
  // every thread is theirs. Refused (it was granted once): assume readers.
  if (__atomic_load_n(&g_readers_fenced, __ATOMIC_RELAXED) && !internal::os::FenceAllThreads()) {
    return false;
  }
  for (const ReaderShard& r : g_session_readers) {
    if (__atomic_load_n(&r.count, __ATOMIC_SEQ_CST) != 0) return false;
  }
  return true;
}

}  // namespace assay::profiler
