// USDT probes (provider `assay`), for bpftrace, perf and SystemTap. Each is a
// single nop plus an ELF note when nobody traces it. Arguments, in order:
//   heap_grow(address, bytes)        a segment or huge block mapped from the OS
//   heap_shrink(address, bytes)      a segment or huge mapping returned to the OS
//   purge(address, bytes)            free pages returned with madvise(MADV_DONTNEED)
//   thread_cache_new(thread_id)      a thread's cache created (its first allocation)
//   thread_cache_exit(thread_id)     a thread's cache given back at its exit
//   lock_wait(lock_address, nanoseconds)  a contended allocator lock, and the time waited
//   sample(address, requested_bytes, n_samples)  the profiler recorded a block
//   profile_dump(kind, path)         a profile file was written (strings)
#pragma once

#include <sys/sdt.h>

#define ASSAY_PROBE1(name, a) DTRACE_PROBE1(assay, name, a)
#define ASSAY_PROBE2(name, a, b) DTRACE_PROBE2(assay, name, a, b)
#define ASSAY_PROBE3(name, a, b, c) DTRACE_PROBE3(assay, name, a, b, c)
