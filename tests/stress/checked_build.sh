#!/bin/bash
# The checked_build test: configures a checked build of the library and the
# stress programs (ASSAY_CHECKED=ON, ASSAY_STRESS_ONLY=ON) in <build>/checked,
# builds it, and runs its tests: every stress program with --smoke (plain and
# profiled), validating the heap at quiescent points, heap_check_test, and
# the fault-injection tests of tests/fault (ASSAY_FAULT_INJECTION=ON).
# Usage: checked_build.sh SOURCE_DIR BUILD_DIR CMAKE CTEST
set -euo pipefail
src=$1 dir=$2 cmake=$3 ctest=$4
start=$SECONDS
mkdir -p "$dir"
"$cmake" -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DASSAY_CHECKED=ON \
  -DASSAY_STRESS_ONLY=ON -DASSAY_FAULT_INJECTION=ON >"$dir/configure.log" 2>&1 || { cat "$dir/configure.log"; exit 1; }
"$cmake" --build "$dir" --target assay_stress_tests -j 2
built=$SECONDS
# A stress program linked to a library without the checks fails instead of
# passing unchecked (tests/stress/stress_util.h).
ASSAY_REQUIRE_CHECKED=1 "$ctest" --test-dir "$dir" --output-on-failure -j 2
echo "checked_build: build $((built - start)) s, tests $((SECONDS - built)) s"
