#!/bin/bash
# Where a small process's first code lies in libassay.so (docs/DESIGN.md,
# "Start-up footprint"). The kernel maps a file's text in 64 KiB windows
# (fault-around); a process that runs code from two windows keeps both
# resident. The start-up code (ASSAY_STARTUP), the first-use paths
# (ASSAY_FIRST_USE) and the entry points (malloc_api.cc and new_delete.cc,
# first in the link) must all end below the file's first 64 KiB boundary;
# DT_FINI must be assay_fini there, not crti's _fini at the end of the text;
# libgcc's __popcountdi2 (also at the end of the text) must not be linked.
# Then what runs: STARTUP_TEXT (startup_text.c), preloaded with libassay.so,
# with and without a MALLOC_PROF session (that takes no sample), must find
# none of libassay's code mapped past the file's first 128 KiB (the start-up
# code's 64 KiB and one fault-around chunk).
# usage: text_layout.sh LIBASSAY STARTUP_TEXT
set -u
lib=$1 startup_text=$2
fail=0
addr() { nm "$lib" | awk -v s="$1" '$3 == s {print $1}'; }
for sym in assay_internal_api_end assay_internal_new_end assay_fini; do
  a=$(addr "$sym")
  if [[ -z "$a" ]]; then
    echo "FAIL: $sym not in $lib"
    fail=1
  elif ((16#$a >= 0x10000)); then
    echo "FAIL: $sym at 0x$a, past the first 64 KiB of the file"
    fail=1
  else
    echo "$sym at 0x$a"
  fi
done
fini=$(readelf -dW "$lib" | awk '/\(FINI\)/ {print $3}')
if [[ -z "$fini" || $((fini)) -ne $((16#$(addr assay_fini))) ]]; then
  echo "FAIL: DT_FINI is $fini, not assay_fini"
  fail=1
fi
if nm "$lib" | grep -q __popcountdi2; then
  echo "FAIL: libgcc's __popcountdi2 is linked (std::popcount; use Popcount, base/bits.h)"
  fail=1
fi
for prof in "" "final=0,rate=1024g"; do
  echo "startup_text with MALLOC_PROF='$prof':"
  MALLOC_PROF=$prof LD_PRELOAD=$lib "$startup_text"
  case $? in
    0) ;;
    1) echo "FAIL: code outside the start-up cluster ran (MALLOC_PROF='$prof')"; fail=1 ;;
    *) echo "FAIL: startup_text could not read its mappings"; fail=1 ;;
  esac
done
exit $fail
