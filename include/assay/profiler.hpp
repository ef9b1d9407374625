// assay's sampling heap profiler, C++ API.
//
// Sampling: every requested byte is a sample point with probability
// 1/rate; an allocation holding at least one sample point is recorded with
// its call stack in a tracking entry. A Tracker's callbacks follow each
// recorded block: on_alloc when it is allocated, on_promote once it has
// survived `young_bytes` of later allocation, on_free when it is freed.
//
// Callbacks run at safe points: on the thread that raised the event, just
// before the allocator call that raised it returns, with no allocator or
// profiler lock held, never nested (events raised inside a callback wait
// until it returns), with sampling suspended. Events a thread could not run
// yet wait for its next safe point, Poll(), or its exit. For one block the
// order is always alloc, promote, free, each at most once; when a later
// event of a block is raised while an earlier callback of it is still
// running on another thread, that thread delivers it right after.
//
// A callback must not end its thread (pthread_exit, or cancellation while
// it blocks): it runs inside malloc or free, which are noexcept, so the
// unwind would terminate the process. The profiler's own state is restored
// on such an unwind (no lock or counter stays held).
#ifndef ASSAY_PROFILER_HPP_
#define ASSAY_PROFILER_HPP_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#define ASSAY_API __attribute__((visibility("default")))

namespace assay {

struct SampledAllocation {
  void* address;
  size_t requested_bytes;
  size_t usable_bytes;
  size_t alignment;                  // requested alignment, 0 for plain malloc/new
  uint64_t n_samples;                // sample points in the block (>= 1)
  std::span<const uintptr_t> stack;  // return addresses, innermost (the allocation site) first
  uint32_t batch_index;              // index in its assay_comalloc batch, 0 otherwise
  uint32_t batch_size;               // size of that batch, 1 otherwise
  uint64_t thread_id;                // kernel thread id of the allocating thread
};

using Token = uintptr_t;

struct Tracker {
  // Returns a token to follow the block, or nullopt to stop tracking it.
  std::function<std::optional<Token>(const SampledAllocation&)> on_alloc;
  // Returns the token to keep, or nullopt to stop tracking the block.
  std::function<std::optional<Token>(Token)> on_promote;
  std::function<void(Token)> on_free;
};

enum class StackMethod : int {
  kUnwind = 0,        // libunwind: correct for any code (default)
  kFramePointer = 1,  // frame-pointer walk: cheaper, needs frame pointers everywhere
};

struct ProfilerOptions {
  size_t rate = 512 * 1024;  // mean bytes between sample points; 1 records every allocation
  int max_depth = 64;        // frames kept per stack (at most 256)
  uint64_t young_bytes = 0;  // promotion age in bytes of allocation; 0: 128 * rate
  uint64_t seed = 0;         // sampling seed; 0: a fresh one per run
  StackMethod stack_method = StackMethod::kUnwind;
};

// Starts a profiling session. Returns false if one is running. Profiling
// turned on by MALLOC_PROF gives way to it (the session's options apply) and
// resumes with its own options after Stop; its dumps go on throughout.
ASSAY_API bool Start(const ProfilerOptions& options, Tracker tracker = {});
// Stops the session. After Stop returns, no callback of the session runs
// again (Stop waits for callbacks running on other threads) and its queued
// events are discarded. May be called from inside a callback.
ASSAY_API void Stop();
// Whether a session started with Start runs.
ASSAY_API bool IsRunning();
// Runs the calling thread's pending callbacks (outside any callback).
ASSAY_API void Poll();

struct ProfilerStats {
  uint64_t samples;              // blocks recorded since the process started
  uint64_t live_entries;         // tracking entries of live sampled blocks
  uint64_t stacks;               // distinct stacks held
  uint64_t callback_exceptions;  // exceptions thrown by callbacks (caught)
  uint64_t memory_bytes;         // the profiler's own memory
};
ASSAY_API ProfilerStats GetProfilerStats();

// Writes a pprof profile (gzip-compressed protobuf) of `kind`: "heap" (live
// sampled blocks, with cumulative allocations as alloc_*), "alloc" (the same,
// defaulting to alloc_space), "peak" (same as heap) or "leak" (live blocks
// only). An empty path picks the next MALLOC_PROF file name
// (<prefix>.<pid>.<seq>.<kind>.pb.gz). Returns 0 or an errno value.
ASSAY_API int WriteProfile(const char* kind, const char* path = nullptr);

// The gzipped pprof bytes of a "heap" or "alloc" profile (as WriteProfile
// writes them) into *out, replacing its contents, for a program that serves
// them on a route of its own (assay_profile_to_fd writes them to a
// descriptor). Returns 0, or EINVAL (another kind, or out null), ENOENT
// (nothing is being profiled) or the builder's errno value.
ASSAY_API int ProfileTo(const char* kind, std::string* out);

// Starts the cumulative (alloc) profile afresh.
ASSAY_API void ResetAllocationProfile();

}  // namespace assay

#endif  // ASSAY_PROFILER_HPP_
