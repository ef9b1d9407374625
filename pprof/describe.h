/* Naming code addresses for humans: the functions of libassay_pprof.so (or
   of libassay.a, which contains them) that the debug heap's reports call to
   print a frame. C ABI; look them up with dlsym in libassay_pprof.so
   (profiler::dumper::PprofSymbol) or declare them weak when linked statically.
   Both may allocate and take a lock of their own: never call them from inside
   malloc. Thread-safe; a call from a thread already inside one of them (or
   inside a profile write) returns -1. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Describes frame `index` of the code at `pc` (an instruction's address: for
   a return address, pass it minus 1) into `out` (NUL-terminated, truncated
   to `outlen`). A pc holds several frames when calls were inlined there:
   index 0 is the innermost (the inlined function whose code it is), the last
   is the function that holds the code in the object. The last frame reads
       make_buffer+0x18 (/tmp/app) at /src/app.c:12
   and an inlined one
       fill_block (/tmp/app) at /src/app.c:5 (inlined)
   where " at FILE:LINE" appears only with DWARF line information and the
   name only when known (else "(/tmp/app+0x1234)", the offset from the
   object's load address).
   Returns the number of frames at pc (>= 1) when frame `index` was written,
   0 when `index` is past the last frame (out untouched), -1 when pc lies in no
   loaded object or on error. Usage:
       for (int i = 0, n = 1; i < n; ++i)
         if ((n = assay_pprof_describe_frame(pc, i, buf, sizeof buf)) > 0) puts(buf);
*/
int assay_pprof_describe_frame(uintptr_t pc, int index, char* out, size_t outlen);

/* Version 1: the last frame of pc (as assay_pprof_describe_frame describes
   it). Returns 0, or -1 as above. */
int assay_pprof_describe_pc(uintptr_t pc, char* out, size_t outlen);

#ifdef __cplusplus
}
#endif
