#!/bin/bash
# The fixed footprint of a small program (issue 17): peak RSS of `true` and
# of small_heap (100 KiB in small blocks) under libassay.so, with and without
# MALLOC_PROF (no dump, no sample), against the same programs on glibc's
# malloc, medians of 7 runs. Also: libassay.so maps no shared libstdc++, libm,
# libgcc_s or libunwind (0.9, 0.3, 0.08 and 0.11 MiB of RSS each, with
# libunwind's liblzma; docs/DESIGN.md "Start-up footprint").
# usage: footprint.sh PEAK_RSS SMALL_HEAP LIBASSAY
set -u
peak_rss=$1 small_heap=$2 lib=$3
fail=0

# Budgets over glibc, in KiB. Measured (2-core machine): assay adds
# ~390-410 KiB to either program (libassay.so's text, one 64 KiB chunk of it
# since the start-up code sits together (ASSAY_STARTUP), its read-only data
# and tables; libc text the loader's IFUNC resolution faults in), the
# profiler ~190 KiB more, most of it libunwind and its liblzma, which only
# a process that takes stacks loads (profiler/unwinder.h); the medians of 7
# runs move by less than 60 KiB between runs. The budgets leave ~150 KiB of
# headroom: linking libunwind again (+110 KiB) or mapping libgcc_s (+80 KiB)
# and scattering the start-up code over the text again (+160 KiB), libm
# (+320 KiB) or libstdc++ (+900 KiB) fail the test.
# With MALLOC_PROF the profiler is started but (rate=1024g) takes no sample:
# at the default rate whether a 100 KiB program takes one is a coin the
# random seed flips (about one run in five here), and a first sample brings
# libunwind's first walk and the profiler's tables (+1 000 KiB at rate=1), so
# medians of 7 landed on either side of the budget. This budget is the
# profiler's start-up cost alone.
budget=560
budget_prof=760

needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
echo "NEEDED: $needed"
for unwanted in libstdc++ libm.so libgcc_s libunwind liblzma; do
  if [[ " $needed" == *" $unwanted"* ]]; then
    echo "FAIL: libassay.so needs $unwanted"
    fail=1
  fi
done

for prog in true "$small_heap"; do
  glibc=$("$peak_rss" 7 "" $prog) || exit 1
  assay=$("$peak_rss" 7 "$lib" $prog) || exit 1
  prof=$(MALLOC_PROF=final=0,rate=1024g "$peak_rss" 7 "$lib" $prog) || exit 1
  echo "$(basename "$prog"): glibc $glibc KiB, assay $assay KiB (+$((assay - glibc))," \
    "budget $budget), assay+MALLOC_PROF $prof KiB (+$((prof - glibc)), budget $budget_prof)"
  if ((assay > glibc + budget)); then echo "FAIL: $prog over budget"; fail=1; fi
  if ((prof > glibc + budget_prof)); then echo "FAIL: $prog with MALLOC_PROF over budget"; fail=1; fi
done
exit $fail
