// `assay top`: the functions of one profile by flat (or cumulative) value,
// as `go tool pprof -top` prints them, with the file and line of each when
// the profile has them (or by source line with --lines, as `pprof -lines`).
#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>

#include "tools/assay/args.h"
#include "tools/assay/commands.h"
#include "tools/assay/format.h"
#include "tools/assay/profile_io.h"
#include "tools/assay/report.h"

namespace assay::cli {
namespace {

std::string FormatTime(int64_t nanos) {
  if (nanos <= 0) return "";
  const time_t t = static_cast<time_t>(nanos / 1000000000);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

int Top(const std::vector<std::string>& args) {
  ValueChoice choice;
  int64_t n = 20;
  bool by_cum = false;
  bool by_line = false;
  std::string file, v;
  ArgReader r(args);
  while (!r.Done()) {
    if (r.Flag("--alloc")) {
      choice.space = Space::kAlloc;
    } else if (r.Flag("--inuse")) {
      choice.space = Space::kInuse;
    } else if (r.Flag("--objects")) {
      choice.objects = true;
    } else if (r.Flag("--cum")) {
      by_cum = true;
    } else if (r.Flag("--lines")) {
      by_line = true;
    } else if (r.Value("-n", &v)) {
      n = ParseInt("-n", v, 0, 1000000000);
    } else if (r.Flag("--")) {
      continue;
    } else if (r.AtOption()) {
      throw UsageError("unknown option '" + r.Peek() + "'");
    } else if (file.empty()) {
      file = r.Next();
    } else {
      throw UsageError("one profile only (got '" + file + "' and '" + r.Peek() + "')");
    }
  }
  if (file.empty()) throw UsageError("no profile given");

  const pb::Profile p = ReadProfile(file);
  const SampleType type = ChooseSampleType(p, choice, file);
  const TopReport report =
      BuildTop(p, type.index, by_cum, by_line ? FrameKey::kLine : FrameKey::kFunctionFile);

  printf("File: %s\n", file.c_str());
  const std::string comments = Comments(p);
  if (!comments.empty()) printf("Kind: %s\n", comments.c_str());
  printf("Type: %s (%s)\n", type.type.c_str(), type.unit.c_str());
  const std::string when = FormatTime(p.time_nanos());
  if (!when.empty()) {
    printf("Time: %s; Duration: %.2fs\n", when.c_str(),
           static_cast<double>(p.duration_nanos()) / 1e9);
  }
  printf("Total: %s in %lld of the profile's %d samples (stacks with their labels)\n",
         FormatValue(report.total, type.unit).c_str(), static_cast<long long>(report.samples),
         p.sample_size());
  if (report.rows.empty()) {
    printf("(no samples of %s)\n", type.type.c_str());
    return 0;
  }
  const size_t shown =
      n == 0 ? report.rows.size() : std::min(report.rows.size(), static_cast<size_t>(n));
  int64_t shown_flat = 0;
  for (size_t i = 0; i < shown; ++i) shown_flat += report.rows[i].flat;
  printf("Showing top %zu of %zu %s by %s, accounting for %s (%s of total)\n", shown,
         report.rows.size(), by_line ? "lines" : "functions", by_cum ? "cum" : "flat",
         FormatValue(shown_flat, type.unit).c_str(),
         FormatPercent(shown_flat, report.total).c_str());

  const char* const headers[] = {"flat", "flat%", "sum%", "cum", "cum%"};
  std::vector<std::array<std::string, 5>> cells;
  size_t widths[5] = {};
  for (int c = 0; c < 5; ++c) widths[c] = std::max<size_t>(std::string(headers[c]).size(), 6);
  int64_t sum = 0;
  for (size_t i = 0; i < shown; ++i) {
    const FunctionRow& row = report.rows[i];
    sum += row.flat;
    cells.push_back({FormatValue(row.flat, type.unit), FormatPercent(row.flat, report.total),
                     FormatPercent(sum, report.total), FormatValue(row.cum, type.unit),
                     FormatPercent(row.cum, report.total)});
    for (int c = 0; c < 5; ++c) widths[c] = std::max(widths[c], cells.back()[c].size());
  }
  for (int c = 0; c < 5; ++c) printf("%s ", PadLeft(headers[c], widths[c]).c_str());
  printf(" %s\n", by_line ? "function and line" : "function");
  for (size_t i = 0; i < shown; ++i) {
    for (int c = 0; c < 5; ++c) printf("%s ", PadLeft(cells[i][c], widths[c]).c_str());
    printf(" %s\n", report.rows[i].name.c_str());
  }
  return 0;
}

}  // namespace

const Command kTopCommand = {
    "top",
    "print the functions holding (or allocating) the most memory in a profile",
    "usage: assay top [--alloc|--inuse] [--objects] [-n N] [--cum] [--lines] FILE",
    "Reads a profile (FILE, a gzipped pprof protobuf such as assay writes) and\n"
    "prints its top functions like `go tool pprof -top`, without Go: flat (the\n"
    "function allocated the memory itself), cum (it or a function it called\n"
    "did), each with its share of the total, and sum% (running total of flat%).\n"
    "A function the profile has source lines for is shown with the file and line\n"
    "where it starts (profiles of programs built with -g, or with their -dbgsym\n"
    "packages installed).\n"
    "\n"
    "  --inuse     memory live when the profile was taken (inuse_space)\n"
    "  --alloc     all memory allocated since profiling started (alloc_space)\n"
    "  --objects   count blocks instead of bytes (inuse_objects, alloc_objects)\n"
    "  -n N        show the top N functions (default 20; 0 shows all)\n"
    "  --cum       sort by cum instead of flat\n"
    "  --lines     one row per source line (function file:line) instead of per\n"
    "              function, as `pprof -lines`; inlined calls are rows of their own\n"
    "\n"
    "Without --alloc or --inuse, the profile's default sample type is shown:\n"
    "inuse_space for heap, peak and leak profiles, alloc_space for alloc ones.\n"
    "\n"
    "Example:\n"
    "  assay top -n 10 ./assay.4242.3.heap.pb.gz\n",
    Top,
};

}  // namespace assay::cli
