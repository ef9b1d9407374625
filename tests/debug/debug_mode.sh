#!/usr/bin/env bash
# ASSAY_DEBUG end to end: each detector on a program that commits its error
# (tests/debug/debug_errors.c), its report's first words, the block, the
# allocating function and the exit status; the same program clean under every
# option; guard=N's sampling rate; a bad option; and real programs (python3,
# sqlite3, bash) under every option printing what they print without assay.
# usage: debug_mode.sh LIBASSAY_SO DEBUG_ERRORS_BINARY
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh" "$1"
PROG="$(realpath "$2")"
require go python3 sqlite3 bash grep
cd "$WORK"

# run_case NAME OPTIONS EXPECTED_STATUS: runs the program's case NAME under
# ASSAY_DEBUG=OPTIONS; its stderr lands in $WORK/NAME.err.
run_case() {
  local name="$1" opts="$2" want="$3" rc=0
  env ASSAY_DEBUG="$opts" LD_PRELOAD="$ASSAY_LIB" "$PROG" "$name" >"$name.out" 2>"$name.err" || rc=$?
  [[ "$rc" -eq "$want" ]] || { cat "$name.err" >&2; fail "$name: exit status $rc, expected $want"; }
}
# expect NAME REGEX WHAT: the report of case NAME matches REGEX (extended).
expect() {
  grep -E -q -- "$2" "$1.err" || { cat "$1.err" >&2; fail "$1: no line matching '$2' ($3)"; }
}
first_line() {
  local line
  line="$(head -n 1 "$1.err")"
  [[ "$line" =~ $2 ]] || { cat "$1.err" >&2; fail "$1: first line '$line' does not match '$2'"; }
}

echo "checking: each detector reports its error"
run_case overrun audit,redzone 134
first_line overrun '^assay: overrun: block 0x[0-9a-f]+ of 24 bytes has a changed byte at offset 24 \(past its end\), detected at free$'
expect overrun 'allocated at:' "the block's allocation stack"
expect overrun '#0 0x[0-9a-f]+ make_buffer' "allocating function"
expect overrun '#1 0x[0-9a-f]+ overrun_by_one' "its caller"
echo "  ok: overrun by one byte"

run_case underrun redzone 134
first_line underrun '^assay: overrun: block 0x[0-9a-f]+ of 40 bytes has a changed byte at offset -1 \(before its start\)'
expect underrun 'run with ASSAY_DEBUG=audit' "says how to get the stack"
echo "  ok: underrun by one byte"

run_case realloc_overrun redzone,audit 134
first_line realloc_overrun '^assay: overrun: .* of 16 bytes .* offset 16 .*detected at realloc$'
echo "  ok: overrun found by realloc"

run_case double_free audit,freecheck 134
first_line double_free '^assay: double free: free\(0x[0-9a-f]+\) of a 32-byte block already freed$'
expect double_free 'allocated at:' "allocation stack"
expect double_free '^  freed at:' "the first free's stack"
grep -A1 '^  freed at:' double_free.err | grep -q 'double_free' || fail "double_free: the first free's stack does not start in double_free()"
expect double_free 'second free at:' "the second free's stack"
echo "  ok: double free, with the first free's stack"

run_case invalid_free freecheck,audit 134
first_line invalid_free '^assay: invalid free: free\(0x[0-9a-f]+\): not a block assay returned \(inside block 0x[0-9a-f]+ of 64 bytes, at offset 16\)$'
expect invalid_free 'make_buffer' "the enclosing block's allocation stack"
echo "  ok: invalid free inside a block"

run_case stack_free freecheck 134
first_line stack_free '^assay: invalid free: free\(0x[0-9a-f]+\): not a block assay returned$'
echo "  ok: invalid free of a stack address"

run_case use_after_free freecheck,audit 134
first_line use_after_free '^assay: use after free: block 0x[0-9a-f]+ of 48 bytes was written at offset 5 after it was freed, detected at exit$'
expect use_after_free '#1 0x[0-9a-f]+ use_after_free' "allocation stack"
grep -q '^done$' use_after_free.out || fail "use_after_free: the program did not run to its end before the exit check"
echo "  ok: use after free, found at exit"

# A small quarantine: the freed block leaves it (and is checked) long before exit.
run_case use_after_free freecheck,quarantine=0 0
[[ ! -s use_after_free.err ]] || { cat use_after_free.err >&2; fail "quarantine=0 reported something"; }
echo "  ok: quarantine=0 recycles at once (nothing to report, by design)"

run_case guard_overrun guard,audit 139
first_line guard_overrun '^assay: overrun: access at offset 10064 of the 10000-byte guarded block 0x[0-9a-f]+ hit its guard page$'
expect guard_overrun 'guard_overrun' "faulting function"
echo "  ok: guard page after a big block faults at the overrun"

run_case guard_aligned guard 139
first_line guard_aligned '^assay: overrun: access at offset -1 of the 8192-byte guarded block'
echo "  ok: guard page before a page-aligned block"

run_case guard_realloc_overrun guard 134
first_line guard_realloc_overrun '^assay: overrun: guarded block 0x[0-9a-f]+ of 7000 bytes has a changed byte at offset 7000 \(past its end\), detected at free$'
echo "  ok: a block grown in place by realloc keeps a redzone up to its guard page"

run_case big_realloc_overrun redzone 134
first_line big_realloc_overrun '^assay: overrun: block 0x[0-9a-f]+ of 310000 bytes has a changed byte at offset 310000 \(past its end\), detected at free$'
echo "  ok: a big block grown in place by realloc keeps its redzone"

run_case guard_small guard=1,redzone 139
first_line guard_small '^assay: overrun: access at offset 64 of the 64-byte guarded block'
echo "  ok: guard=1 guards small blocks too"

echo "checking: leaks"
run_case leak leaks,leak_profile="$WORK/leak.pb.gz" 0
first_line leak '^assay: leaks: 2 blocks \(200 bytes\) not reachable at exit, from 2 allocation sites$'
expect leak '#1 0x[0-9a-f]+ leak_via_freed' "the leak reachable only from a freed block"
expect leak 'leak profile written to' "the profile's path"
expect leak '^assay: leaks: direct 200 bytes in 2 blocks, indirect 0 bytes in 0 blocks' "direct and indirect totals"
expect leak '^  100 bytes in 1 block \(direct 100 bytes in 1, indirect 0 bytes in 0\) allocated at:$' "a site's line"
expect leak '^SUMMARY: assay: 200 byte\(s\) leaked in 2 allocation\(s\)\.$' "the summary line"
top="$(go tool pprof -top -sample_index=inuse_space "$WORK/leak.pb.gz" 2>&1)" || fail "go tool pprof cannot read the leak profile: $top"
grep -q 'make_leak' <<<"$top" || fail "leak profile has no make_leak: $top"
grep -Eq 'Type: inuse_space' <<<"$top" || fail "leak profile type: $top"
grep -Eq '200B' <<<"$top" || fail "leak profile total is not 200 bytes: $top"
echo "  ok: 2 leaks from 2 sites, leak profile read by go tool pprof"
run_case leak leaks=error 23
echo "  ok: leaks=error exits 23"
run_case clean leaks 0
first_line clean '^assay: leaks: none among [0-9]+ live blocks at exit \(scan [0-9.]+ ms\)$'
echo "  ok: no false leak in the clean run"

echo "checking: the same program without its bugs runs clean under every option"
all="audit,redzone,freecheck,guard=3,leaks"
run_case clean "$all" 0
grep -v '^assay: leaks: none' clean.err | grep -q . && { cat clean.err >&2; fail "clean run reported something"; }
grep -q '^done$' clean.out || fail "clean run did not finish"
echo "  ok: ASSAY_DEBUG=$all"

echo "checking: guard=N guards about 1 in N blocks"
# sampled SIZE COUNT OPTIONS LO HI: COUNT blocks of SIZE bytes under
# ASSAY_DEBUG=OPTIONS; the number guarded must lie in [LO, HI]. The choices
# are seeded (thread start order), so each count is fixed; the bounds are
# the binomial mean +- 6 sd.
sampled() {
  local rc=0 n
  env ASSAY_DEBUG="$3" LD_PRELOAD="$ASSAY_LIB" "$PROG" guard_sampling "$1" "$2" >sampled.out 2>sampled.err || rc=$?
  [[ "$rc" -eq 0 ]] || { cat sampled.err >&2; fail "guard_sampling $1 $2 under $3 exited $rc"; }
  n="$(sed -n "s/^guarded \([0-9]*\) of $2\$/\1/p" sampled.out)"
  [[ -n "$n" && "$n" -ge "$4" && "$n" -le "$5" ]] || fail "$3: guarded '$n' of $2 blocks of $1 bytes (expected $4..$5)"
  echo "  ok: $3, $1-byte blocks: $n of $2 guarded (expected $4..$5)"
}
# Full debug heap: each block with probability 1/100: Binomial(1e5, 0.01), mean 1000, sd 31.5.
sampled 64 100000 guard=100,audit 811 1189
# guard=N alone (the allocator's fast path, a guard point every 64*100 bytes):
# q = 1 - (1 - 1/6400)^64 = 0.009950; mean 995.0, sd 31.4.
sampled 64 100000 guard=100 807 1184
# guard=N alone, blocks above 1 KiB (slow path, 1 in N each): Binomial(2e4, 0.01), mean 200, sd 14.1.
sampled 8192 20000 guard=100 116 284
# guard guards every block of a page or more (the test program adds a few of its own).
sampled 8192 2000 guard 2000 2010  # and the program's own few big blocks

echo "checking: guard=N and the profiler share one countdown, each at its own rate"
# The countdown runs over the union of both point processes and tells each
# point's kind (profiler/sampler.h CombinedLaw): the guard's count keeps the
# bounds above, and the profiler's estimate of the bytes allocated stays
# unbiased. 100000 blocks of 64 B at rate=4096: q(64) = 0.01550, so
# Binomial(1e5, q) sampled blocks (mean 1550, sd 39) of weight 64/q = 4129 B:
# 6.40 MB, sd 0.16 MB; plus the 800000-byte array (always sampled, exact) and
# a few KiB of the program's own. Bounds: 5 sd.
rc=0
env ASSAY_DEBUG=guard=100 MALLOC_PROF=rate=4096,final=0,seed=7 PROFILE_OUT="$PWD/combined.alloc.pb.gz" \
  LD_PRELOAD="$ASSAY_LIB" "$PROG" guard_sampling 64 100000 >combined.out 2>combined.err || rc=$?
[[ "$rc" -eq 0 ]] || { cat combined.err >&2; fail "guard_sampling with MALLOC_PROF exited $rc"; }
n="$(sed -n 's/^guarded \([0-9]*\) of 100000$/\1/p' combined.out)"
[[ -n "$n" && "$n" -ge 807 && "$n" -le 1184 ]] || fail "guard=100 with the profiler on: guarded '$n' (expected 807..1184)"
total="$(go tool pprof -sample_index=alloc_space -unit=B -top combined.alloc.pb.gz 2>/dev/null |
  sed -n 's/.* of \([0-9.]*\)B total.*/\1/p' | head -1)"
[[ -n "$total" ]] || fail "no alloc_space total in the combined profile"
awk -v t="$total" 'BEGIN { exit !(t >= 6400000 && t <= 8000000) }' ||
  fail "profiler estimate with guard=100 on: $total B allocated (expected 6.4..8.0 MB)"
echo "  ok: $n of 100000 guarded; profiler estimate $total B (expected 6.4..8.0 MB)"

echo "checking: a bad option is named and the rest applies"
run_case overrun redzone,bogus,audit=999 134
first_line overrun "^assay: ASSAY_DEBUG: bad option 'bogus'"
expect overrun "bad option 'audit=999'" "the bad depth named"
expect overrun '^assay: overrun:' "redzone still applies"
echo "  ok"

echo "checking: real programs under ASSAY_DEBUG=$all print what they print without assay"
py='import json
d = {str(i): [i, str(i) * 3, {"k": i}] for i in range(30000)}
s = json.dumps(d)
e = json.loads(s)
print(len(s), sum(len(v[1]) for v in e.values()))'
sql="create table t(a, b); with recursive c(x) as (select 1 union all select x + 1 from c where x < 20000) insert into t select x, hex(x * 7919 % 100003) || 'abc' from c; select count(*), sum(length(b)) from t; create index i on t(b); select count(*) from t where b > 'A';"
sh='x=; for i in $(seq 1 3000); do x="$x$i"; done; echo ${#x}; echo $(printf "%s\n" {1..500} | sort -n | tail -1)'
check_program() {
  local name="$1"
  shift
  local want got rc=0
  want="$(env -u LD_PRELOAD "$@" 2>&1)"
  got="$(env ASSAY_DEBUG="$all" LD_PRELOAD="$ASSAY_LIB" "$@" 2>"$name.err")" || rc=$?
  [[ "$rc" -eq 0 ]] || { cat "$name.err" >&2; fail "$name exited $rc under ASSAY_DEBUG=$all"; }
  [[ "$got" == "$want" ]] || fail "$name printed '$got' under ASSAY_DEBUG, '$want' without"
  if grep -E -q '^assay: (overrun|double free|invalid free|use after free)' "$name.err"; then
    cat "$name.err" >&2
    fail "$name: a report in a correct program"
  fi
  echo "  ok: $name ($(grep -c '^assay: leaks' "$name.err" || true) leak summary line(s))"
}
check_program python3 python3 -c "$py"
check_program sqlite3 sqlite3 :memory: "$sql"
check_program bash bash --norc --noprofile -c "$sh"
all="guard=20"  # the production guard alone: the allocator's own fast paths
check_program debug_errors-guard "$PROG" clean
all="guard"
check_program debug_errors-guard-big "$PROG" clean
all="guard=20"
check_program python3-guard python3 -c "$py"
check_program sqlite3-guard sqlite3 :memory: "$sql"
echo "PASS: debug_mode"
