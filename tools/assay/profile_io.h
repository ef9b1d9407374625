// Reading and writing pprof profiles: gzip-compressed protobufs of
// perftools.profiles.Profile (proto/profile.proto). Reading checks what
// pprof checks (string indexes, ids, value counts) so the reports never
// index out of range; every error names the file and what is wrong with it.
#pragma once

#include <string>

#include "proto/profile.pb.h"

namespace assay::cli {

namespace pb = perftools::profiles;

// Reads, gunzips, parses and validates `path`. Throws Failure with a message
// of the form "PATH: what is wrong".
pb::Profile ReadProfile(const std::string& path);

// Parses and validates gzip-compressed bytes; `name` only labels errors.
pb::Profile ParseProfile(const std::string& gz, const std::string& name);

// Checks the cross-references of a parsed profile; throws Failure("NAME: ...").
void ValidateProfile(const pb::Profile& p, const std::string& name);

// Serializes, gzips and writes `p` to `path`, mode 0600, with the
// profile-file writer (pprof/profile_file.h: a temporary file of
// unpredictable name renamed into place). Throws Failure on error.
void WriteProfile(const pb::Profile& p, const std::string& path);

// Gzip helpers (exposed for tests).
std::string Gzip(const std::string& raw);
// Throws Failure("NAME: ...") on corrupt or truncated data.
std::string Gunzip(const std::string& gz, const std::string& name);

}  // namespace assay::cli
