#!/usr/bin/env bash
# The preloaded library really gets mapped into programs: a process started
# with LD_PRELOAD=libassay.so has it in /proc/self/maps (and one without
# LD_PRELOAD does not), including processes started by a preloaded shell.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
require cat grep bash

echo "checking: LD_PRELOAD=$ASSAY_LIB maps libassay into the process"
n="$(env LD_PRELOAD="$ASSAY_LIB" cat /proc/self/maps | grep -c libassay || true)"
[[ "$n" -ge 1 ]] || fail "libassay is not mapped in a process started with LD_PRELOAD=$ASSAY_LIB (/proc/self/maps has $n matching lines)"
echo "  ok: cat under LD_PRELOAD has $n mappings of libassay"

grep -q -F "$ASSAY_LIB" <(env LD_PRELOAD="$ASSAY_LIB" cat /proc/self/maps) \
  || fail "/proc/self/maps under LD_PRELOAD does not name $ASSAY_LIB"
echo "  ok: the mapped file is the build tree's $ASSAY_LIB"

n="$(env -u LD_PRELOAD cat /proc/self/maps | grep -c libassay || true)"
[[ "$n" -eq 0 ]] || fail "libassay is mapped ($n lines) in a process started without LD_PRELOAD"
echo "  ok: cat without LD_PRELOAD has no libassay mapping"

# A grandchild started by a preloaded shell inherits the preload.
n="$(env LD_PRELOAD="$ASSAY_LIB" bash --norc --noprofile -c 'cat /proc/self/maps' | grep -c libassay || true)"
[[ "$n" -ge 1 ]] || fail "libassay is not mapped in a process started by a preloaded bash"
echo "  ok: a child of a preloaded bash has libassay mapped too"
echo "PASS: interpose"
