// The profile files a run left: PREFIX.<pid>.<seq>.<kind>.pb.gz, as the
// profiler names them (profiler/prof_config.h), found in PREFIX's directory.
#pragma once

#include <time.h>

#include <cstdint>
#include <string>
#include <vector>

namespace assay::cli {

struct ProfileFile {
  std::string path;  // PREFIX followed by ".<pid>.<seq>.<kind>.pb.gz"
  long pid = 0;
  uint64_t seq = 0;
  std::string kind;  // heap, alloc, peak or leak
  timespec mtime{};
};

// Parses a file name (no directory) against the prefix's last component
// `base`; false if it is not a profile file of that prefix.
bool ParseProfileFileName(const std::string& name, const std::string& base, ProfileFile* out);

// The profile files of `prefix` last modified at or after `since`, sorted by
// pid, then sequence number.
std::vector<ProfileFile> FindProfileFiles(const std::string& prefix, const timespec& since);

}  // namespace assay::cli
