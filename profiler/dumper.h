// Profile dumps: snapshots of the tracking entries and stack table turned
// into pprof files by the writer, on demand (API), periodically, by bytes
// allocated, at new peaks, on a signal, and at exit, as MALLOC_PROF says.
#pragma once

#include <cstdint>
#include <string>

#include "profiler/profile_data.h"

namespace assay::profiler::snapshot {
struct Snapshot;
}

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

// ---- Profiles served instead of written (http_server.cc, assay_profile_to_fd) ----

// A snapshot of the live entries and cumulative counts taken now, for a
// later delta (ProfileBytes); FreeSnapshot(nullptr) is a no-op.
snapshot::Snapshot* TakeSnapshot();
void FreeSnapshot(snapshot::Snapshot* s);

// The gzipped pprof bytes of `kind` ("heap" or "alloc") into *out: a profile
// of now, or with `before` the change since that snapshot
// (snapshot::BuildDelta). Runs with recording suspended, under the dump lock
// (one build at a time); ESHUTDOWN without building when *closed (read under
// that lock) is non-zero, ENOENT when nothing was ever profiled; else 0 or an
// errno value with the reason in *error.
int ProfileBytes(const char* kind, const snapshot::Snapshot* before, const uint32_t* closed,
                 std::string* out, std::string* error);

// Returns once no build or dump is running (takes and drops the dump lock):
// a caller that set a `closed` flag first knows no build of its runs after.
void Quiesce();

// A sample was recorded: the clock and the live estimate moved (interval and
// peak dumps watch them). live_bytes sums per-thread counters: it is called
// only when a peak dump is configured. Inline: without a dump thread to wake
// (MALLOC_PROF with no period, interval, peak or signal; a tracker session)
// a sample pays one load here.
extern bool g_watch_samples;  // atomic: set once MALLOC_PROF's configuration is read
void OnRecordedSlow(uint64_t clock, int64_t (*live_bytes)());
inline void OnRecorded(uint64_t clock, int64_t (*live_bytes)()) {
  if (__atomic_load_n(&g_watch_samples, __ATOMIC_RELAXED)) OnRecordedSlow(clock, live_bytes);
}

}  // namespace assay::profiler::dumper
