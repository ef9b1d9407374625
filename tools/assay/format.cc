#include "tools/assay/format.h"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>

namespace assay::cli {

std::string FormatValue(int64_t v, const std::string& unit) {
  char buf[64];
  if (unit == "bytes") {
    const uint64_t mag = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
    const char* sign = v < 0 ? "-" : "";
    if (mag < 1024) {
      snprintf(buf, sizeof(buf), "%s%" PRIu64 "B", sign, mag);
      return buf;
    }
    static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double x = static_cast<double>(mag) / 1024;
    int u = 0;
    while (x >= 1024 && u < 5) {
      x /= 1024;
      ++u;
    }
    // Three significant digits, as pprof prints them.
    const int decimals = x >= 100 ? 0 : x >= 10 ? 1 : 2;
    snprintf(buf, sizeof(buf), "%s%.*f%s", sign, decimals, x, kUnits[u]);
    return buf;
  }
  snprintf(buf, sizeof(buf), "%" PRId64, v);
  if (unit.empty() || unit == "count") return buf;
  return std::string(buf) + unit;
}

std::string FormatDelta(int64_t v, const std::string& unit) {
  const std::string s = FormatValue(v, unit);
  return v > 0 ? "+" + s : s;
}

std::string FormatPercent(int64_t part, int64_t whole) {
  if (whole == 0) return "-";
  const double pct = 100.0 * static_cast<double>(part) / static_cast<double>(whole);
  if (part == 0) return "0%";
  if (part == whole) return "100%";
  char buf[32];
  snprintf(buf, sizeof(buf), "%.2f%%", pct);
  return buf;
}

std::string PadLeft(const std::string& s, size_t width) {
  return s.size() >= width ? s : std::string(width - s.size(), ' ') + s;
}

}  // namespace assay::cli
