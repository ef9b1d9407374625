// ParseSize: an integer with an optional one-letter size suffix, as every
// assay option and command-line flag takes it. Header-only and dependency-free
// so that the allocator (before any constructor) and the assay command share it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace assay::internal {

// Parses an integer (optionally negative) with an optional one-letter k/m/g
// (or K/M/G) suffix, multiplying by 2^10, 2^20 or 2^30. Returns false on
// anything else, or when the value would exceed 2^62.
inline bool ParseSize(const char* s, size_t len, int64_t* out) {
  if (len == 0) return false;
  bool negative = false;
  size_t i = 0;
  if (s[0] == '-') {
    negative = true;
    i = 1;
  }
  if (i == len) return false;
  const size_t digits_start = i;
  int64_t v = 0;
  for (; i < len && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (v > (int64_t{1} << 50)) return false;
    v = v * 10 + (s[i] - '0');
  }
  if (i == digits_start) return false;  // no digits (a bare suffix or sign)
  int shift = 0;
  if (i < len) {
    switch (s[i]) {
      case 'k':
      case 'K':
        shift = 10;
        break;
      case 'm':
      case 'M':
        shift = 20;
        break;
      case 'g':
      case 'G':
        shift = 30;
        break;
      default:
        return false;
    }
    if (++i != len) return false;
  }
  if (shift != 0 && v > (int64_t{1} << (62 - shift))) return false;
  v <<= shift;
  *out = negative ? -v : v;
  return true;
}

}  // namespace assay::internal
