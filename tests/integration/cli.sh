#!/usr/bin/env bash
# The assay command end to end: `assay run` profiles python3 and sqlite3,
# `assay top` reads the heap profiles (the table's total matches the Python
# workload's live size within a factor of 3 and names CPython functions),
# `go tool pprof -top` reads them too, `assay diff` shows the growth between
# two profiles of one run, `assay merge` writes a profile pprof reads, and
# files that are not profiles give one clear error line and exit status 1.
#   bash cli.sh /path/to/libassay.so /path/to/assay
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
require sqlite3 seq awk gzip grep sh

# (lib.sh took the first argument, but a sourced script's shift does not reach here.)
[[ $# -ge 2 && -x "$2" ]] || fail "usage: bash $0 /path/to/libassay.so /path/to/assay (the assay binary, built by the assay_cli target)"
ASSAY="$(realpath "$2")"
[[ -x /usr/bin/python3 ]] || fail "/usr/bin/python3 (Debian's python3) is missing; run tools/setup"
[[ -x /usr/bin/go ]] || fail "/usr/bin/go (Debian's golang-go, for 'go tool pprof') is missing; run tools/setup (as root) to install it"
# go tool pprof wants a writable HOME (and go its build cache).
export HOME="$WORK/home"
export GOCACHE="$WORK/home/gocache"
mkdir -p "$HOME"
# assay run preloads the libassay.so under test (lib.sh's ASSAY_LIB).
export ASSAY_LIB

# Bytes of a size as assay prints it: 512B, 40.0KiB, 49.3MiB, 1.21GiB.
to_bytes() {
  awk -v s="$1" 'BEGIN {
    n = s + 0; u = s; sub(/^-?[0-9.]+/, "", u)
    m = (u == "B") ? 1 : (u == "KiB") ? 1024 : (u == "MiB") ? 1048576 : (u == "GiB") ? 1073741824 : -1
    if (m < 0) { print "bad"; exit }
    printf "%d\n", n * m
  }'
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
# The total `assay top` prints for a profile, in bytes.
top_total() {
  local t
  t="$("$ASSAY" top "$@" | awk '/^Total:/ { print $2; exit }')"
  [[ -n "$t" ]] || fail "assay top $* printed no Total: line"
  to_bytes "$t"
}
# Rows of the table `assay top` printed (the lines after the header).
top_rows() { awk 'found { print } /^ *flat +flat%/ { found = 1 }' "$1"; }

# ---- assay run on python3, with a heap profile every second.
cat >"$WORK/workload.py" <<'PY'
import sys
import time

def size(objs):
    return sum(sys.getsizeof(o) for o in objs)

# Phase 1: ~8 MB of lists held for 2.5 s.
small = [[0] * 1000 for _ in range(1000)]
time.sleep(2.5)
# Phase 2: ~40 MB more in lists and a dict, held for 2.5 s.
big = [[0] * 1000 for _ in range(4000)]
table = {i: None for i in range(200000)}
live = size(small) + size(big) + sys.getsizeof(table) + sys.getsizeof(small) + sys.getsizeof(big)
print("live", live, flush=True)
time.sleep(2.5)
PY
echo "checking: assay run --rate 64k --period 1 -- python3 (a workload holding ~8 MB, then ~50 MB)"
rc=0
(cd "$WORK" && "$ASSAY" run --rate 64k --period 1 --prefix "$WORK/py/p" -- \
  /usr/bin/python3 -I "$WORK/workload.py") >"$WORK/run.out" 2>"$WORK/run.err" || rc=$?
if [[ $rc -ne 0 ]]; then
  sed 's/^/    /' "$WORK/run.err" >&2
  fail "assay run -- python3 exited with status $rc"
fi
live="$(awk '/^live / { print $2 }' "$WORK/run.out")"
[[ -n "$live" ]] || fail "the python workload did not print its live size (stdout: $(head -c 300 "$WORK/run.out"))"
grep -q "go tool pprof -http=: $WORK/py/p\.[0-9]*\.[0-9]*\.heap\.pb\.gz" "$WORK/run.err" \
  || { sed 's/^/    /' "$WORK/run.err" >&2; fail "assay run did not print the 'go tool pprof -http=:' line for a heap profile"; }
# In order of their sequence numbers (…/p.<pid>.<seq>.heap.pb.gz).
mapfile -t heaps < <(ls "$WORK"/py/p.*.heap.pb.gz 2>/dev/null | awk -F. '{ print $(NF - 3), $0 }' | sort -n | cut -d' ' -f2-)
[[ ${#heaps[@]} -ge 2 ]] || fail "expected heap profiles under $WORK/py (every second and at exit), found ${#heaps[@]}"
for h in "${heaps[@]}"; do
  grep -qF "$h" "$WORK/run.err" || fail "assay run's report does not list $h"
done
echo "  ok: ${#heaps[@]} heap profiles written and listed; the workload reports $(mib "$live") live"

# The profile taken while the most was live (the one at exit comes after
# Python freed everything), and the first one (phase 1).
best="" best_total=0
for h in "${heaps[@]}"; do
  t="$(top_total "$h")"
  if [[ "$t" -gt "$best_total" ]]; then best="$h" best_total="$t"; fi
done
first="${heaps[0]}"
first_total="$(top_total "$first")"

echo "checking: assay top on the largest heap profile"
"$ASSAY" top "$best" >"$WORK/top.txt" || fail "assay top $best failed"
sed 's/^/    /' "$WORK/top.txt" | head -n 16
top_rows "$WORK/top.txt" >"$WORK/top.rows"
[[ -s "$WORK/top.rows" ]] || fail "assay top printed no table rows"
min=$((10 * 1024 * 1024))
[[ "$best_total" -gt "$min" ]] || fail "assay top total $(mib "$best_total") is not above 10 MiB (the workload holds $(mib "$live"))"
[[ $((best_total * 3)) -ge "$live" && "$best_total" -le $((live * 3)) ]] \
  || fail "assay top total $(mib "$best_total") is not within a factor of 3 of the workload's $(mib "$live")"
grep -Eq 'Py|_Py|list|dict' "$WORK/top.rows" || fail "assay top names no CPython function (no match for Py|_Py|list|dict)"
grep -q '^Type: inuse_space' "$WORK/top.txt" || fail "assay top did not default to the profile's inuse_space"
echo "  ok: total $(mib "$best_total") for $(mib "$live") live; CPython functions named"

"$ASSAY" top --alloc --objects -n 5 "$best" >"$WORK/top_alloc.txt" || fail "assay top --alloc --objects failed"
grep -q '^Type: alloc_objects (count)' "$WORK/top_alloc.txt" || fail "assay top --alloc --objects did not show alloc_objects"
[[ "$(top_rows "$WORK/top_alloc.txt" | wc -l)" -eq 5 ]] || fail "assay top -n 5 did not print 5 rows"
echo "  ok: --alloc --objects -n 5"

echo "checking: go tool pprof -top reads the profile"
/usr/bin/go tool pprof -top "$best" >"$WORK/pprof.txt" 2>"$WORK/pprof.err" \
  || { sed 's/^/    /' "$WORK/pprof.err" >&2; fail "go tool pprof -top $best failed"; }
grep -q 'Type: inuse_space' "$WORK/pprof.txt" || fail "go tool pprof -top printed no 'Type: inuse_space' (output: $(head -c 400 "$WORK/pprof.txt"))"
grep -Eq 'Py|_Py' "$WORK/pprof.txt" || fail "go tool pprof -top names no CPython function"
echo "  ok: go tool pprof -top agrees it is an inuse_space profile naming CPython functions"

echo "checking: assay diff between the first heap profile ($(mib "$first_total")) and the largest"
[[ "$first_total" -lt "$best_total" ]] || fail "the first heap profile ($(mib "$first_total")) is not smaller than the largest ($(mib "$best_total")): the periodic dumps did not catch the growth"
"$ASSAY" diff "$first" "$best" >"$WORK/diff.txt" || fail "assay diff failed"
sed 's/^/    /' "$WORK/diff.txt" | head -n 12
# The first row of each "Grew most" table: a positive delta of at least 10 MiB.
for table in "Grew most, by allocating function" "Grew most, by stack"; do
  row="$(awk -v t="$table" 'index($0, t) == 1 { getline; getline; print; exit }' "$WORK/diff.txt")"
  delta="$(awk '{ print $3 }' <<<"$row")"
  [[ "$delta" == +* ]] || fail "assay diff: the first row of '$table' has no positive delta: '$row'"
  [[ "$(to_bytes "${delta#+}")" -gt "$min" ]] || fail "assay diff: the growth in '$table' is only $delta"
done
grep -q '^Total: .* -> .* (+' "$WORK/diff.txt" || fail "assay diff: the Total line shows no growth"
echo "  ok: positive deltas above 10 MiB by function and by stack"

echo "checking: assay merge of two profiles reads with go tool pprof"
"$ASSAY" merge -o "$WORK/merged.pb.gz" "$first" "$best" >"$WORK/merge.out" || fail "assay merge failed"
/usr/bin/go tool pprof -top "$WORK/merged.pb.gz" >"$WORK/merged_pprof.txt" 2>"$WORK/merged_pprof.err" \
  || { sed 's/^/    /' "$WORK/merged_pprof.err" >&2; fail "go tool pprof -top on the merged profile failed"; }
grep -q 'Type: inuse_space' "$WORK/merged_pprof.txt" || fail "go tool pprof -top on the merged profile shows no inuse_space"
merged_total="$(top_total "$WORK/merged.pb.gz")"
sum=$((first_total + best_total))
# Totals print with three significant digits: allow 2% for rounding.
[[ $((merged_total * 100)) -ge $((sum * 98)) && $((merged_total * 100)) -le $((sum * 102)) ]] \
  || fail "merged total $(mib "$merged_total") is not the sum of $(mib "$first_total") and $(mib "$best_total")"
echo "  ok: merged total $(mib "$merged_total") = sum of the two; pprof reads it"

echo "checking: files that are not profiles give one clear error line and status 1"
echo "just text" >"$WORK/text.txt"
echo "garbage" | gzip >"$WORK/garbage.gz"
for f in "$WORK/text.txt" "$WORK/garbage.gz" "$WORK/missing.pb.gz"; do
  rc=0
  "$ASSAY" top "$f" >"$WORK/bad.out" 2>"$WORK/bad.err" || rc=$?
  [[ $rc -eq 1 ]] || fail "assay top $f exited with $rc, not 1"
  [[ "$(wc -l <"$WORK/bad.err")" -eq 1 ]] || fail "assay top $f printed more than one error line: $(cat "$WORK/bad.err")"
  grep -qF "$f: " "$WORK/bad.err" || fail "assay top's error does not name $f: $(cat "$WORK/bad.err")"
  grep -Eq 'not gzip|not a pprof profile|No such file' "$WORK/bad.err" || fail "unclear error for $f: $(cat "$WORK/bad.err")"
  echo "  ok: $(cat "$WORK/bad.err")"
done
rc=0
"$ASSAY" top --no-such-option "$best" 2>"$WORK/usage.err" || rc=$?
[[ $rc -eq 2 ]] || fail "a bad option gave status $rc, not 2"
grep -q '^usage: assay top' "$WORK/usage.err" || fail "a bad option printed no usage"
echo "  ok: a bad option exits 2 with the usage"

echo "checking: assay run forwards the exit status"
rc=0
"$ASSAY" run --prefix "$WORK/st/p" -- sh -c 'exit 7' 2>/dev/null || rc=$?
[[ $rc -eq 7 ]] || fail "assay run -- sh -c 'exit 7' exited with $rc"
echo "  ok: status 7 forwarded"

# ---- assay run on sqlite3.
echo "checking: assay run -- sqlite3 (4000 rows) writes a readable heap profile"
{
  echo "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT NOT NULL, val REAL);"
  echo "BEGIN;"
  seq 1 4000 | awk '{ printf "INSERT INTO item VALUES(%d, %cname-%05d-lorem-ipsum-dolor%c, %d.5);\n", $1, 39, $1, 39, $1 }'
  echo "COMMIT;"
  echo "CREATE INDEX item_name ON item(name);"
  echo "SELECT count(*), sum(val), max(name) FROM item;"
} >"$WORK/rows.sql"
rc=0
(cd "$WORK" && "$ASSAY" run --rate 16k --prefix "$WORK/sq/s" -- sqlite3 -batch "$WORK/rows.db" ".read $WORK/rows.sql") \
  >"$WORK/sq.out" 2>"$WORK/sq.err" || rc=$?
[[ $rc -eq 0 ]] || { sed 's/^/    /' "$WORK/sq.err" >&2; fail "assay run -- sqlite3 exited with status $rc"; }
grep -q '^4000|' "$WORK/sq.out" || fail "sqlite3 under assay run printed '$(head -c 200 "$WORK/sq.out")', not the row count"
mapfile -t sq < <(ls "$WORK"/sq/s.*.heap.pb.gz 2>/dev/null)
[[ ${#sq[@]} -ge 1 ]] || fail "no heap profile from sqlite3 under $WORK/sq"
# What is live at exit may be too little to be sampled; what was allocated is not.
"$ASSAY" top "${sq[-1]}" >"$WORK/sq_top.txt" || fail "assay top ${sq[-1]} failed"
"$ASSAY" top --alloc "${sq[-1]}" >"$WORK/sq_alloc.txt" || fail "assay top --alloc ${sq[-1]} failed"
top_rows "$WORK/sq_alloc.txt" >"$WORK/sq.rows"
[[ -s "$WORK/sq.rows" ]] || fail "assay top --alloc on sqlite3's profile printed no rows"
grep -q 'sqlite3' "$WORK/sq.rows" || fail "assay top --alloc on sqlite3's profile names no sqlite3 function"
sq_alloc="$(top_total --alloc "${sq[-1]}")"
[[ "$sq_alloc" -gt 100000 ]] || fail "sqlite3's profile shows only $sq_alloc bytes allocated"
echo "  ok: $(wc -l <"$WORK/sq.rows") functions, sqlite3's among them; $(mib "$sq_alloc") allocated in all"

echo "PASS: cli"
