#!/bin/bash
# The fixed footprint of a small program (issue 17): peak RSS of `true` and
# of small_heap (100 KiB in small blocks) under libassay.so, with and without
# MALLOC_PROF (no dump, no sample), against the same programs on glibc's
# malloc, medians of 7 runs. Also: libassay.so maps no shared libstdc++, libm or libgcc_s
# (0.9, 0.3 and 0.08 MiB of RSS each, docs/DESIGN.md "Start-up footprint").
# usage: footprint.sh PEAK_RSS SMALL_HEAP LIBASSAY
set -u
peak_rss=$1 small_heap=$2 lib=$3
fail=0

# Budgets over glibc, in KiB. Measured (2-core machine, loaded): assay adds
# 590-620 KiB to either program (libassay.so's text, two 64 KiB chunks of it
# since the start-up code sits together (ASSAY_STARTUP), its read-only data
# and tables; libunwind and its liblzma, ~120 KiB; libc text the loader's
# IFUNC resolution faults in), the profiler 0-130 KiB more; the medians of 7
# runs move by less than 60 KiB between runs. The budgets leave ~150 KiB of
# headroom: mapping libgcc_s again (+80 KiB) and scattering the start-up
# code over the text again (+160 KiB), libm (+320 KiB) or libstdc++
# (+900 KiB) fail the test.
# With MALLOC_PROF the profiler is started but (rate=1024g) takes no sample:
# at the default rate whether a 100 KiB program takes one is a coin the
# random seed flips (about one run in five here), and a first sample brings
# libunwind's first walk and the profiler's tables (+1 000 KiB at rate=1), so
# medians of 7 landed on either side of the budget (+592..+1132 KiB over
# glibc in 20 medians). This budget is the profiler's start-up cost alone.
budget=760
budget_prof=860

needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
echo "NEEDED: $needed"
for unwanted in libstdc++ libm.so libgcc_s; do
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
