// What dumper.cc (the dump thread, MALLOC_PROF's triggers and exit dumps)
// shares with profile_output.cc (one dump, to a file or to bytes).
#pragma once

#include <string>

#include "base/lock.h"
#include "profiler/dumper.h"
#include "profiler/prof_config.h"

namespace assay::profiler::dumper {

// MALLOC_PROF's configuration, set once by InitFromEnvironment before any
// dump (all zero but the defaults when MALLOC_PROF is not set).
extern ProfConfig g_cfg;
// One dump at a time; fork waits for a dump in progress (dumper.cc).
extern internal::Mutex g_dump_mu;

// Writes a profile of `kind` to path_or_null (null or "": the next
// MALLOC_PROF name, prefix.pid.seq.kind.pb.gz) from a snapshot taken now,
// or from `taken` if given; *written (if given) receives the path. Takes
// g_dump_mu and suspends sampling. Returns 0 or an errno value; the first
// failure of the process is reported on stderr.
int Dump(const char* kind, const char* path_or_null, std::string* written,
         const snapshot::Snapshot* taken = nullptr);

// In a fork child: its files are numbered from 0.
void RestartFileNumbers();

}  // namespace assay::profiler::dumper
