// Helpers shared by the stress programs (tests/stress/*_stress.cc):
// failure reports, the verifiable pattern written into blocks, and the heap
// validation they run at quiescent points. Header-only; nothing here allocates.
#ifndef ASSAY_TESTS_STRESS_STRESS_UTIL_H_
#define ASSAY_TESTS_STRESS_STRESS_UTIL_H_

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/check_heap.h"
#include "tests/test_util.h"

namespace assay_test {

// Writes "<program>: FAIL: <printf-formatted message>\n" to stderr in one
// write (formatted into a stack buffer, so that reports from several
// threads do not interleave).
inline void VReportFailure(const char* program, const char* format, va_list args) {
  char buf[1024];
  int len = snprintf(buf, sizeof(buf), "%s: FAIL: ", program);
  if (len < 0) len = 0;
  if (static_cast<size_t>(len) < sizeof(buf) - 1) {
    vsnprintf(buf + len, sizeof(buf) - 1 - static_cast<size_t>(len), format, args);
  }
  len = static_cast<int>(strlen(buf));
  buf[len++] = '\n';
  (void)!write(2, buf, static_cast<size_t>(len));
}

[[gnu::format(printf, 2, 3)]] inline void ReportFailure(const char* program, const char* format,
                                                        ...) {
  va_list args;
  va_start(args, format);
  VReportFailure(program, format, args);
  va_end(args);
}

// ReportFailure, then _exit(1).
[[noreturn, gnu::format(printf, 2, 3)]] inline void Fail(const char* program, const char* format,
                                                         ...) {
  va_list args;
  va_start(args, format);
  VReportFailure(program, format, args);
  va_end(args);
  _exit(1);
}

// Writes "<program>: FAIL: <what>\n" with write(2) alone and _exits with
// `code`: async-signal-safe, for a forked child of a threaded process.
[[noreturn]] inline void FailSignalSafe(const char* program, const char* what, int code) {
  (void)!write(2, program, strlen(program));
  (void)!write(2, ": FAIL: ", 8);
  (void)!write(2, what, strlen(what));
  (void)!write(2, "\n", 1);
  _exit(code);
}

enum class HeapScope { kOwnThread, kAllThreads };

// Validates the heap's structures (tests/check_heap.h): a no-op unless the
// library is the checked build. kAllThreads only where every other thread
// is quiescent (joined, or in a fork child before it starts threads). With
// ASSAY_REQUIRE_CHECKED=1 in the environment (the checked_build test), a
// library without the checks is a failure rather than a silent pass.
inline void CheckHeap(const char* program, HeapScope scope) {
  if (assay_check_heap(scope == HeapScope::kAllThreads ? 1 : 0) != 0) return;
  const char* require = getenv("ASSAY_REQUIRE_CHECKED");
  if (require != nullptr && require[0] == '1') {
    FailSignalSafe(program, "ASSAY_REQUIRE_CHECKED=1 but the library has no heap checks", 1);
  }
}

// The verifiable contents of a block of n bytes: 64-bit pattern words at
// word offsets chosen by the coverage below, and, if tail_byte is set, the
// n % 8 bytes after the last whole word.
struct Pattern {
  // Blocks of at most this many bytes have every whole word written.
  size_t whole_max_bytes;
  // Larger blocks: this many words at each end, and every stride_words-th
  // word in between. whole_max_bytes must be at least 16 * edge_words.
  size_t edge_words;
  size_t stride_words;
  // Value of the tail byte at offset i; nullptr leaves the tail unwritten.
  uint8_t (*tail_byte)(uint64_t seed, size_t i);
};

// The whole_max_bytes of "blocks of at most `words` whole words" (the
// partial word at the end does not count).
constexpr size_t WholeWords(size_t words) { return 8 * words + 7; }

inline uint64_t PatternWord(size_t k, uint64_t seed) {
  return (k + 1) * 0x9E3779B97F4A7C15ull ^ (seed + 1) * 0xD1B54A32D192ED03ull;
}

// Calls fn(k) for each pattern word index k of an n-byte block, ascending.
template <typename Fn>
void ForEachPatternWord(const Pattern& pattern, size_t n, Fn fn) {
  const size_t words = n / 8;
  if (n <= pattern.whole_max_bytes) {
    for (size_t k = 0; k < words; ++k) fn(k);
    return;
  }
  const size_t edge = pattern.edge_words;
  for (size_t k = 0; k < edge; ++k) fn(k);
  for (size_t k = edge; k + edge < words; k += pattern.stride_words) fn(k);
  for (size_t k = words - edge; k < words; ++k) fn(k);
}

inline void StampPattern(const Pattern& pattern, void* p, size_t n, uint64_t seed) {
  uint8_t* b = static_cast<uint8_t*>(p);
  ForEachPatternWord(pattern, n, [&](size_t k) {
    const uint64_t w = PatternWord(k, seed);
    memcpy(b + 8 * k, &w, 8);
  });
  if (pattern.tail_byte == nullptr) return;
  for (size_t i = n & ~size_t{7}; i < n; ++i) b[i] = pattern.tail_byte(seed, i);
}

constexpr size_t kPatternIntact = SIZE_MAX;

// Checks the pattern StampPattern wrote into an n-byte block, over its first
// `keep` bytes only (a word counts if it lies wholly inside them). Returns
// the byte offset of the first wrong pattern word or, if all are right, of
// the first wrong tail byte; kPatternIntact if nothing is wrong.
inline size_t FindPatternMismatch(const Pattern& pattern, const void* p, size_t n, size_t keep,
                                  uint64_t seed) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  size_t bad = kPatternIntact;
  ForEachPatternWord(pattern, n, [&](size_t k) {
    if (bad != kPatternIntact || 8 * k + 8 > keep) return;
    uint64_t w;
    memcpy(&w, b + 8 * k, 8);
    if (w != PatternWord(k, seed)) bad = 8 * k;
  });
  if (bad != kPatternIntact || pattern.tail_byte == nullptr) return bad;
  for (size_t i = n & ~size_t{7}; i < n && i < keep; ++i) {
    if (b[i] != pattern.tail_byte(seed, i)) return i;
  }
  return kPatternIntact;
}

}  // namespace assay_test

#endif  // ASSAY_TESTS_STRESS_STRESS_UTIL_H_
