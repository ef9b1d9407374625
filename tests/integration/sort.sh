#!/usr/bin/env bash
# GNU sort on ~50 MB of deterministic pseudo-random lines, with the system
# allocator and with libassay.so preloaded: in-memory (2 threads) and external
# (small buffer, temp files, merge) sorts must give identical output.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
require sort awk wc
export LC_ALL=C

input="$WORK/input.txt"
# 1.5M lines (~50 MB): a hex word, a signed number, a word of varying length.
awk 'BEGIN {
  srand(4242)
  for (i = 0; i < 1500000; i++) {
    printf "%08x %d %s-%d\n", int(rand() * 4294967295), int(rand() * 2000000) - 1000000,
      substr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", 1 + int(rand() * 30), 2 + int(rand() * 20)), i % 977
  }
}' >"$input"
echo "checking: sort on $(wc -c <"$input") bytes / $(wc -l <"$input") lines gives identical output under assay"

run_both sort_plain sort --parallel=2 "$input"
run_both sort_numeric_k2 sort --parallel=2 -n -k2 "$input"
mkdir -p "$WORK/tmp.sys" "$WORK/tmp.assay"
run_both sort_external_unique sort -S 4M -T "$WORK/tmp.@MODE@" -u -k3,3 -k1,1r "$input"
echo "PASS: sort"
