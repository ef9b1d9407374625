// Internal assertions in two tiers, after mimalloc's mi_assert_internal and
// mi_assert_expensive: ASSAY_ASSERT for cheap conditions (debug and checked
// builds) and ASSAY_CHECKED_ONLY / kChecked for walks (checked build only);
// ASSAY_CHECK is the always-on form the walks themselves use.
#pragma once

#include "base/base.h"

// The checked build (CMake option ASSAY_CHECKED) defines ASSAY_CHECKED=1 for
// the library: ASSAY_ASSERT is on, and the structure walks (AssertValid,
// alloc/check.h) run.
#if !defined(ASSAY_CHECKED)
#define ASSAY_CHECKED 0
#endif

#if ASSAY_CHECKED || !defined(NDEBUG)
#define ASSAY_ASSERTS_ON 1
#else
#define ASSAY_ASSERTS_ON 0
#endif

namespace assay::internal {

inline constexpr bool kChecked = ASSAY_CHECKED != 0;
inline constexpr bool kAssertsOn = ASSAY_ASSERTS_ON != 0;

// Writes "assay: assertion failed: <cond> at <file>:<line>" to stderr in one
// write, without allocating, and aborts.
[[noreturn]] ASSAY_NOINLINE __attribute__((cold)) void AssertFail(const char* cond,
                                                                  const char* file, int line);

}  // namespace assay::internal

// Off, the condition is not evaluated (sizeof keeps it compiled, so names
// used only here stay "used").
#if ASSAY_ASSERTS_ON
#define ASSAY_ASSERT(cond)                   \
  (ASSAY_LIKELY(cond) ? static_cast<void>(0) \
                      : ::assay::internal::AssertFail(#cond, __FILE__, __LINE__))
#else
#define ASSAY_ASSERT(cond) static_cast<void>(sizeof((cond) ? 1 : 0))
#endif

// Always evaluated, in every build: for validators that run only when asked
// (Segment::Validate in tests, the checked build's AssertValid walks).
#define ASSAY_CHECK(cond)                    \
  (ASSAY_LIKELY(cond) ? static_cast<void>(0) \
                      : ::assay::internal::AssertFail(#cond, __FILE__, __LINE__))

// Statements that run only in the checked build (the expensive tier: list
// and structure walks).
#if ASSAY_CHECKED
#define ASSAY_CHECKED_ONLY(...) __VA_ARGS__
#else
#define ASSAY_CHECKED_ONLY(...)
#endif
