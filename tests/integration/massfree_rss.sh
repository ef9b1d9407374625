#!/usr/bin/env bash
# Memory pinned after a mass free (issue 17): the mass-free workload
# (tests/bench/workloads/massfree.cc; a key-value store filled, emptied, a
# few small blocks surviving in nearly every span) under LD_PRELOAD=libassay.so
# must hold at most 8 MiB more than before its fill, 3 s after the free:
# the free pages of partly used spans go back to the OS. At half the
# benchmark's scale (150 000 values, ~100 MB at the peak).
# Usage: massfree_rss.sh LIBASSAY MASSFREE
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1"
MASSFREE="$2"
[[ -x "$MASSFREE" ]] || fail "massfree not found at '$MASSFREE'"

env LD_PRELOAD="$ASSAY_LIB" "$MASSFREE" 0.5 1 3 >"$WORK/out" 2>"$WORK/err" ||
  fail "massfree failed: $(cat "$WORK/err")"
line="$(grep '^massfree rss_kib ' "$WORK/err")" || fail "no RSS line: $(cat "$WORK/err")"
echo "$line"
before="$(sed -n 's/.* before=\([0-9]*\).*/\1/p' <<<"$line")"
filled="$(sed -n 's/.* filled=\([0-9]*\).*/\1/p' <<<"$line")"
final="$(sed -n 's/.* final=\([0-9]*\).*/\1/p' <<<"$line")"
[[ -n "$before" && -n "$filled" && -n "$final" ]] || fail "unparsable: $line"
# The fill must have been real for the bound to mean anything.
check "the fill raised RSS by 64 MiB or more ($before -> $filled KiB)" \
  test "$filled" -ge $((before + 64 * 1024))
check "RSS 3 s after the mass free ($final KiB) <= before the fill ($before KiB) + 8 MiB" \
  test "$final" -le $((before + 8 * 1024))
if ((n_fail > 0)); then
  echo "FAIL [massfree_rss]: $n_fail of $((n_pass + n_fail)) checks failed"
  exit 1
fi
echo "PASS: massfree_rss"
