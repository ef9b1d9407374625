// `assay merge`: several profiles of the same sample types into one.
#include <cstdio>

#include "tools/assay/args.h"
#include "tools/assay/commands.h"
#include "tools/assay/format.h"
#include "tools/assay/merge.h"
#include "tools/assay/profile_io.h"
#include "tools/assay/report.h"

namespace assay::cli {
namespace {

int Merge(const std::vector<std::string>& args) {
  std::string out, v;
  std::vector<std::string> files;
  ArgReader r(args);
  bool options = true;
  while (!r.Done()) {
    if (options && r.Value("-o", &v)) {
      if (!out.empty()) throw UsageError("-o given twice");
      if (v.empty()) throw UsageError("-o needs a file name");
      out = v;
    } else if (options && r.Flag("--")) {
      options = false;
    } else if (options && r.AtOption()) {
      throw UsageError("unknown option '" + r.Peek() + "'");
    } else {
      files.push_back(r.Next());
    }
  }
  if (out.empty()) throw UsageError("no output file (-o OUT)");
  if (files.empty()) throw UsageError("no profiles to merge");

  std::vector<pb::Profile> profiles;
  profiles.reserve(files.size());
  for (const std::string& f : files) profiles.push_back(ReadProfile(f));
  const pb::Profile merged = MergeProfiles(profiles, files);
  ValidateProfile(merged, out + " (merged)");  // a bug here must not write a broken file
  WriteProfile(merged, out);
  const int t = DefaultSampleType(merged);
  printf("wrote %s: %zu profiles merged into %d samples; total %s %s\n", out.c_str(), files.size(),
         merged.sample_size(), StringAt(merged, merged.sample_type(t).type()).c_str(),
         FormatValue(Total(merged, t), StringAt(merged, merged.sample_type(t).unit())).c_str());
  return 0;
}

}  // namespace

const Command kMergeCommand = {
    "merge",
    "merge profiles of the same sample types into one",
    "usage: assay merge -o OUT FILE...",
    "Merges profiles with the same sample types (for example the heap\n"
    "profiles of several processes, or of several runs) into one gzipped\n"
    "pprof profile OUT: values of identical stacks with identical labels are\n"
    "summed; mappings of the same binary (same build id or file) are shared.\n"
    "OUT reads with `assay top` and `go tool pprof`.\n"
    "\n"
    "  -o OUT      the merged profile to write (replaced if it exists)\n"
    "\n"
    "Example:\n"
    "  assay merge -o all.pb.gz ./assay.4242.*.heap.pb.gz ./assay.4250.*.heap.pb.gz\n",
    Merge,
};

}  // namespace assay::cli
