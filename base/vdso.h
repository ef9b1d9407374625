// The kernel's clock_gettime in the vDSO, called directly. libc's wrapper
// lies in a 64 KiB window of libc's text that a small program does not
// otherwise touch, so calling it (a freed span's timestamp, the profiler's
// start time) kept 64 KiB more of libc resident in every process; the vDSO
// is mapped and resident anyway.
#pragma once

#include <time.h>

namespace assay::internal::vdso {

using ClockGettimeFn = int (*)(clockid_t, struct timespec*);

// The vDSO's clock_gettime (found once, from the vDSO's own symbol table),
// or nullptr when the process has no vDSO (valgrind hides it) or it exports
// none: then the caller uses libc's.
ClockGettimeFn ClockGettime();

}  // namespace assay::internal::vdso
