// Number formatting for the reports: bytes in binary units (KiB, MiB, GiB),
// counts as integers, percentages, and right-aligned table columns.
#pragma once

#include <cstdint>
#include <string>

namespace assay::cli {

// `v` in `unit`: "bytes" gives "512B", "40.0KiB", "49.3MiB"; "count" and
// anything else give the integer (with the unit appended unless it is "count").
std::string FormatValue(int64_t v, const std::string& unit);
// As FormatValue, with a leading '+' for positive values.
std::string FormatDelta(int64_t v, const std::string& unit);
// 100 * part / whole as "12.34%" ("0%" and "100%" plain; "-" when whole is 0).
std::string FormatPercent(int64_t part, int64_t whole);
// `s` right-aligned in `width` columns (never truncated).
std::string PadLeft(const std::string& s, size_t width);

}  // namespace assay::cli
