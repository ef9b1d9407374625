#!/bin/bash
# sample_cost_bound.sh SAMPLE_COST LIBASSAY.so PROGRAM: the instructions of a
# sampled malloc(64)+free at 10 program frames (callgrind counts, which load
# does not move) stay under a bound that tells the frame-pointer walk from
# libunwind, and catches a walk that grows again. Measured: ~1 740 with the
# hybrid walk (capture ~610, the rest ~1 130); ~3 000 when every stack goes
# through libunwind (as happened when libassay.so's private libstdc++ made
# the object look built without frame pointers); ~1 900 before the walk
# stepped over the library's own frames in one pass. The bound sits 15%
# above the measure.
set -euo pipefail
command -v valgrind >/dev/null || { echo "FAIL: valgrind is not installed (tools/setup installs it)"; exit 1; }
bound=2000
out=$(bash "$1" "$2" "$3")
echo "$out"
n=$(echo "$out" | awk '/sampled pair:/ {print $3}')
[[ "$n" =~ ^[0-9]+$ ]] || { echo "FAIL: no count in: $out"; exit 1; }
if ((n > bound)); then
  echo "FAIL: a sampled pair costs $n instructions, over $bound"
  exit 1
fi
echo "PASS: $n <= $bound instructions per sampled pair"
