#!/bin/bash
# The asan_build and tsan_build tests: configure a sanitizer build in
# BUILD_DIR, build it and run its tests (tests/sanitize/CMakeLists.txt).
#   address  (-DASSAY_SANITIZE=address,undefined, on the system malloc): the
#            pprof writer, the assay command, cli_report_test,
#            pprof_builder_test, profile_file_test and, given LIBASSAY (the
#            main tree's libassay.so, which `assay run` preloads), cli.sh.
#   thread   (-DASSAY_SANITIZE=thread): the allocator with prefixed entry
#            points (assay_malloc, ...) and the profiler, driven by
#            tsan_stress; tests/sanitize/tsan.supp lists the benign races.
# Any sanitizer report fails its test.
# Usage: sanitize_build.sh address|thread SOURCE_DIR BUILD_DIR CMAKE CTEST [LIBASSAY]
set -euo pipefail
mode=$1 src=$2 dir=$3 cmake=$4 ctest=$5 lib=${6:-}
case $mode in
  address) sanitize=address,undefined ;;
  thread) sanitize=thread ;;
  *) echo "usage: $0 address|thread SOURCE_DIR BUILD_DIR CMAKE CTEST [LIBASSAY]" >&2; exit 2 ;;
esac
start=$SECONDS
mkdir -p "$dir"
"$cmake" -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DASSAY_SANITIZE="$sanitize" -DASSAY_SANITIZE_LIB="$lib" \
  >"$dir/configure.log" 2>&1 || { cat "$dir/configure.log"; exit 1; }
"$cmake" --build "$dir" -j 2
built=$SECONDS
# Leak checking on (the default on Linux, said here so that it stays so);
# UBSan prints the stack of what it finds and stops.
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
rm -f "$dir"/tests/sanitize/tsan_prof.*  # the last run's MALLOC_PROF dumps
"$ctest" --test-dir "$dir" --output-on-failure -j 2
echo "sanitize_build $mode: build $((built - start)) s, tests $((SECONDS - built)) s"
