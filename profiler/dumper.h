// Profile dumps: snapshots of the tracking entries and stack table turned
// into pprof files by the writer, on demand (API), periodically, by bytes
// allocated, at new peaks, on a signal, and at exit, as MALLOC_PROF says.
#pragma once

#include <cstdint>

#include "profiler/profile_data.h"

namespace assay::profiler::dumper {

// Reads MALLOC_PROF once; if it asks for profiling, starts the session, the
// dump thread (when periodic, interval, peak or signal dumps are wanted) and
// the exit dumps. Safe to call more than once (only the first call acts).
void InitFromEnvironment();

// Writes a profile of `kind` to `path` (null or "": the next MALLOC_PROF
// name). Returns 0 or an errno value; a failure is reported on stderr once.
int WriteProfile(const char* kind, const char* path);

// A symbol of libassay_pprof.so (loading it first if may_load), or nullptr
// when it is not loaded or cannot be (the static library links its objects
// in instead: look for them with a weak declaration first).
void* PprofSymbol(const char* name, bool may_load);

// Writes a profile built elsewhere (the debug heap's leak profile) to path;
// returns 0 or an errno value, reported on stderr.
int WriteProfileData(const AssayProfileData* data, const char* path);

// A sample was recorded: the clock and the live estimate moved (interval and
// peak dumps watch them). live_bytes sums per-thread counters: it is called
// only when a peak dump is configured.
void OnRecorded(uint64_t clock, int64_t (*live_bytes)());

}  // namespace assay::profiler::dumper
