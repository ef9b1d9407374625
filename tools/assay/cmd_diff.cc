// `assay diff`: what grew (and what shrank) from one profile to another, by
// the function that allocated and by whole stack.
#include <algorithm>
#include <array>
#include <cstdio>

#include "tools/assay/args.h"
#include "tools/assay/commands.h"
#include "tools/assay/format.h"
#include "tools/assay/profile_io.h"
#include "tools/assay/report.h"

namespace assay::cli {
namespace {

// Frames shown for a stack before it is cut with "...".
constexpr size_t kStackFrames = 8;

std::string StackText(const std::vector<std::string>& frames) {
  std::string s;
  for (size_t i = 0; i < frames.size() && i < kStackFrames; ++i) {
    if (i > 0) s += " < ";
    s += frames[i];
  }
  if (frames.size() > kStackFrames)
    s += " < ... (" + std::to_string(frames.size() - kStackFrames) + " more)";
  return s;
}

// Prints up to n rows (all when n == 0) of `rows` in the given order.
template <typename It>
void PrintRows(const char* title, const char* what, It begin, It end, size_t n,
               const std::string& unit) {
  std::vector<std::array<std::string, 4>> cells;
  for (It it = begin; it != end && (n == 0 || cells.size() < n); ++it) {
    cells.push_back({FormatValue(it->old_value, unit), FormatValue(it->new_value, unit),
                     FormatDelta(it->Delta(), unit),
                     it->frames.size() == 1 && std::string(what) == "function"
                         ? it->frames[0]
                         : StackText(it->frames)});
  }
  printf("\n%s\n", title);
  if (cells.empty()) {
    printf("  (none)\n");
    return;
  }
  const char* const headers[] = {"old", "new", "delta"};
  size_t widths[3];
  for (int c = 0; c < 3; ++c) {
    widths[c] = std::max<size_t>(9, std::string(headers[c]).size());
    for (const auto& row : cells) widths[c] = std::max(widths[c], row[c].size());
  }
  for (int c = 0; c < 3; ++c) printf("%s ", PadLeft(headers[c], widths[c]).c_str());
  printf(" %s\n", what);
  for (const auto& row : cells) {
    for (int c = 0; c < 3; ++c) printf("%s ", PadLeft(row[c], widths[c]).c_str());
    printf(" %s\n", row[3].c_str());
  }
}

int Diff(const std::vector<std::string>& args) {
  ValueChoice choice;
  int64_t n = 10;
  std::vector<std::string> files;
  std::string v;
  ArgReader r(args);
  while (!r.Done()) {
    if (r.Flag("--alloc")) {
      choice.space = Space::kAlloc;
    } else if (r.Flag("--inuse")) {
      choice.space = Space::kInuse;
    } else if (r.Flag("--objects")) {
      choice.objects = true;
    } else if (r.Value("-n", &v)) {
      n = ParseInt("-n", v, 0, 1000000000);
    } else if (r.Flag("--")) {
      continue;
    } else if (r.AtOption()) {
      throw UsageError("unknown option '" + r.Peek() + "'");
    } else {
      files.push_back(r.Next());
    }
  }
  if (files.size() != 2)
    throw UsageError("needs two profiles, OLD and NEW (got " + std::to_string(files.size()) + ")");

  const pb::Profile old_p = ReadProfile(files[0]);
  const pb::Profile new_p = ReadProfile(files[1]);
  // The type is chosen on NEW (its default, unless asked) and must exist in OLD.
  const SampleType new_t = ChooseSampleType(new_p, choice, files[1]);
  const SampleType old_t = MatchSampleType(old_p, new_t, files[0]);
  const DiffReport d = BuildDiff(old_p, old_t.index, new_p, new_t.index);
  const std::string& unit = new_t.unit;

  printf("Old: %s (%s)\n", files[0].c_str(), Comments(old_p).c_str());
  printf("New: %s (%s)\n", files[1].c_str(), Comments(new_p).c_str());
  printf("Type: %s (%s)\n", new_t.type.c_str(), unit.c_str());
  printf("Total: %s -> %s (%s)\n", FormatValue(d.old_total, unit).c_str(),
         FormatValue(d.new_total, unit).c_str(),
         FormatDelta(d.new_total - d.old_total, unit).c_str());

  const size_t limit = static_cast<size_t>(n);
  auto grew = [](const std::vector<DiffRow>& rows) {
    return std::find_if(rows.begin(), rows.end(), [](const DiffRow& r) { return r.Delta() <= 0; });
  };
  auto shrank = [](const std::vector<DiffRow>& rows) {
    return std::find_if(rows.rbegin(), rows.rend(),
                        [](const DiffRow& r) { return r.Delta() >= 0; });
  };
  PrintRows("Grew most, by allocating function (innermost frame):", "function", d.functions.begin(),
            grew(d.functions), limit, unit);
  PrintRows("Grew most, by stack (innermost frame first):", "stack", d.stacks.begin(),
            grew(d.stacks), limit, unit);
  PrintRows("Shrank most, by allocating function:", "function", d.functions.rbegin(),
            shrank(d.functions), limit, unit);
  PrintRows("Shrank most, by stack:", "stack", d.stacks.rbegin(), shrank(d.stacks), limit, unit);
  return 0;
}

}  // namespace

const Command kDiffCommand = {
    "diff",
    "show which allocation sites grew (or shrank) between two profiles",
    "usage: assay diff [--alloc|--inuse] [--objects] [-n N] OLD NEW",
    "Compares two profiles (typically two heap profiles of one run, taken with\n"
    "--period or --interval) and prints the sites whose value grew most from\n"
    "OLD to NEW, first by the function at the top of the stack (the one that\n"
    "called the allocator), then by whole stack, with both values and the\n"
    "delta; then the sites that shrank most. Stacks are matched by function\n"
    "names, so profiles of different runs of one program compare too.\n"
    "\n"
    "  --inuse     live memory (inuse_space)\n"
    "  --alloc     memory allocated since profiling started (alloc_space)\n"
    "  --objects   count blocks instead of bytes\n"
    "  -n N        rows per table (default 10; 0 shows all)\n"
    "\n"
    "Without --alloc or --inuse, NEW's default sample type is compared.\n"
    "\n"
    "Example:\n"
    "  assay diff ./assay.4242.0.heap.pb.gz ./assay.4242.5.heap.pb.gz\n",
    Diff,
};

}  // namespace assay::cli
