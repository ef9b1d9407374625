// Aggregation of a profile's samples for the reports: which sample type to
// show, each sample's stack as function names (after pprof's drop_frames
// pruning), per-function flat and cumulative values (`assay top`) and the
// per-function and per-stack differences of two profiles (`assay diff`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proto/profile.pb.h"

namespace assay::cli {

namespace pb = perftools::profiles;

// Which values the user asked for: --alloc / --inuse (or the profile's
// default), and --objects (counts instead of bytes).
enum class Space { kDefault, kAlloc, kInuse };
struct ValueChoice {
  Space space = Space::kDefault;
  bool objects = false;
};

struct SampleType {
  int index = -1;
  std::string type;  // e.g. "inuse_space"
  std::string unit;  // e.g. "bytes"
};

// The string at `index`, or "" when out of range.
const std::string& StringAt(const pb::Profile& p, int64_t index);
// The index of the sample type named `type`, or -1.
int FindSampleType(const pb::Profile& p, const std::string& type);
// The default sample type: the one default_sample_type names, else the last (as pprof).
int DefaultSampleType(const pb::Profile& p);
// Applies `choice` to the profile's sample types. Throws Failure("NAME: ...")
// when the profile has no such type.
SampleType ChooseSampleType(const pb::Profile& p, const ValueChoice& choice,
                            const std::string& name);
// The sample type of `p` with the same name as `t`; throws Failure("NAME: ...") if none.
SampleType MatchSampleType(const pb::Profile& p, const SampleType& t, const std::string& name);
// The profile's comments joined with "; ".
std::string Comments(const pb::Profile& p);
// Sum of sample values of type `index`.
int64_t Total(const pb::Profile& p, int index);

// What makes two frames the same row of a report.
enum class FrameKey {
  kFunction,      // the function's name ("f")
  kFunctionFile,  // its name and where it starts, when the profile knows ("f src/a.c:12")
  kLine,          // its name and the frame's line ("f src/a.c:15"), as `pprof -lines`
};

// Every sample's stack as indexes into a table of frame names, innermost
// first (inlined frames before their caller), after drop_frames/keep_frames
// pruning (which match the function names). A location without function
// information is named after its mapping ("[libfoo.so]") or its address.
class StackNames {
 public:
  explicit StackNames(const pb::Profile& p, FrameKey key = FrameKey::kFunction);
  const std::vector<uint32_t>& Stack(int sample) const { return stacks_[sample]; }
  const std::string& Name(uint32_t i) const { return names_[i]; }

 private:
  std::vector<std::string> names_;
  std::vector<std::string> functions_;  // per name: the function's name alone
  std::vector<std::vector<uint32_t>> stacks_;
};

// "NAME FILE:LINE" (or "NAME FILE" for line 0, "NAME" without a file).
std::string NameWithSource(const std::string& name, const std::string& file, int64_t line);

// pprof's simplification of a function name before matching drop_frames:
// cut at the argument list's '(' (keeping "(anonymous namespace)" and "operator()").
std::string SimplifyFunctionName(const std::string& name);

struct FunctionRow {
  std::string name;
  int64_t flat = 0;  // samples whose innermost frame is this function
  int64_t cum = 0;   // samples with this function anywhere on the stack
};

struct TopReport {
  int64_t total = 0;              // sum over all samples
  int64_t samples = 0;            // samples with a non-zero value
  std::vector<FunctionRow> rows;  // every function, sorted by flat (or cum)
};

TopReport BuildTop(const pb::Profile& p, int type_index, bool by_cum,
                   FrameKey key = FrameKey::kFunction);

struct DiffRow {
  std::vector<std::string> frames;  // one function, or a stack innermost first
  int64_t old_value = 0;
  int64_t new_value = 0;
  int64_t Delta() const { return new_value - old_value; }
};

struct DiffReport {
  int64_t old_total = 0;
  int64_t new_total = 0;
  std::vector<DiffRow> functions;  // by innermost function, sorted by delta (largest first)
  std::vector<DiffRow> stacks;     // by whole stack, sorted the same way
};

DiffReport BuildDiff(const pb::Profile& old_p, int old_index, const pb::Profile& new_p,
                     int new_index);

}  // namespace assay::cli
