#!/usr/bin/env bash
# The gdb heap walker (tools/gdb/assay.py) on gdb_heap_program, a program of
# known heap run under LD_PRELOAD=libassay.so (a copy stripped of everything
# but its dynamic symbols, and the program stripped of debug info: the walker
# needs only the exported assay_layout):
#   - a core file of it without profiling: `heap stats` counts, `heap dump`,
#     `heap analyze`, `heap examine` of single classes;
#   - a core file of it with MALLOC_PROF=rate=1 (every block sampled): the same
#     stats, `heap sampled` names the allocating functions with their block
#     counts, `heap pprof` writes a file `go tool pprof -top` reads;
#   - the live process under gdb (stopped by SIGTRAP): the same stats as its
#     core, and a refusal once its descriptor's version is changed.
# Cores come from the kernel (abort with `ulimit -c unlimited`) when
# core_pattern writes them to the working directory, else from gcore attached
# to the stopped process; the test says which (GDB_HEAP_FORCE_GCORE=1 forces
# gcore).
#
# Usage: gdb_heap.sh LIBASSAY_SO GDB_HEAP_PROGRAM ASSAY_PY PROFILE_PB2_PY
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
shift
[[ $# -eq 3 ]] || fail "usage: gdb_heap.sh LIBASSAY_SO GDB_HEAP_PROGRAM ASSAY_PY PROFILE_PB2_PY"
PROG_BUILT="$(realpath "$1")"
SCRIPT="$(realpath "$2")"
export ASSAY_PROTO_PY="$3"
[[ -x "$PROG_BUILT" ]] || fail "test program not found at '$PROG_BUILT' (build it first: tools/build)"
[[ -f "$SCRIPT" ]] || fail "walker not found at '$SCRIPT'"
[[ -f "$ASSAY_PROTO_PY" ]] || fail "$ASSAY_PROTO_PY not found (CMake generates it: tools/build)"

require gdb gcore go strip timeout grep sed awk
export HOME="$WORK/home" PPROF_TMPDIR="$WORK/pprof-tmp" GOTOOLCHAIN=local GOFLAGS=
mkdir -p "$HOME" "$PPROF_TMPDIR"
if ! gdb -batch -nx -ex 'python import google.protobuf' >"$WORK/pb.err" 2>&1; then
  fail "gdb's python cannot import google.protobuf ($(tail -n 1 "$WORK/pb.err")); run tools/setup (as root), or apt-get install python3-protobuf"
fi

# Only dynamic symbols in the library, no debug info in the program.
LIB="$WORK/libassay.so"
PROG="$WORK/gdb_heap_program"
strip --strip-all -o "$LIB" "$ASSAY_LIB"
strip --strip-debug -o "$PROG" "$PROG_BUILT"

# walk OUT COMMAND...: gdb -batch on "${TARGET[@]}" (program and core, or --args
# program ...), running each COMMAND after sourcing the walker.
TARGET=()
walk() {
  local out="$1" cmds=() c
  shift
  for c in "$@"; do cmds+=(-ex "$c"); done
  timeout 120 gdb -batch -nx -ex "source $SCRIPT" "${cmds[@]}" "${TARGET[@]}" >"$out" 2>"$out.err" </dev/null ||
    fail "gdb exited with status $? ($*); stderr: $(head -n 5 "$out.err")"
  if grep -q 'Python Exception\|Traceback' "$out" "$out.err"; then
    sed 's/^/    /' "$out.err" >&2
    fail "the walker raised a Python exception ($*)"
  fi
}

# count SIZE FILE: the allocs of the `heap stats` line of SIZE-byte blocks (0 if none).
count() {
  awk -v s="$1" '$1 == s && $2 == "bytes" && $3 == "*" { gsub(",", "", $4); print $4; found = 1 }
                 END { if (!found) print 0 }' "$2"
}

expect_eq() {  # expect_eq WHAT GOT WANT
  [[ "$2" -eq "$3" ]] || fail "$1: got $2, want $3"
  echo "  ok: $1 = $2"
}
expect_ge() {  # expect_ge WHAT GOT MIN
  [[ "$2" -ge "$3" ]] || fail "$1: got $2, want at least $3"
  echo "  ok: $1 = $2 (>= $3)"
}

# check_stats FILE LABEL: the known heap of gdb_heap_program.
check_stats() {
  local f="$1" what="$2"
  grep -q '^Heap: [0-9,]* allocs ([0-9,]* bytes)$' "$f" || fail "$what: no 'Heap:' totals line"
  grep -q '^Total VM allocated by heap: [0-9,]* bytes (In-use by application: [0-9,]*)$' "$f" ||
    fail "$what: no 'Total VM allocated by heap' line"
  if grep -q 'warning.* while walking' "$f"; then
    sed -n '/while walking/,$p' "$f" | sed 's/^/    /' >&2
    fail "$what: the walk reported warnings"
  fi
  expect_ge "$what: 32-byte blocks (1000 x 24 B)" "$(count 32 "$f")" 1000
  expect_ge "$what: 112-byte blocks (500 x 100 B)" "$(count 112 "$f")" 500
  expect_ge "$what: 1024-byte blocks (200 x 1000 B)" "$(count 1024 "$f")" 200
  expect_eq "$what: 3072-byte blocks (700 + 77 x 2990 B, 373 freed)" "$(count 3072 "$f")" 777
  expect_eq "$what: 640-byte blocks (600 x 640 B, 400 freed by another thread)" "$(count 640 "$f")" 200
  expect_eq "$what: 208-byte blocks (300 C strings)" "$(count 208 "$f")" 300
  expect_eq "$what: 1536-byte blocks (40 pointer tables)" "$(count 1536 "$f")" 40
  expect_eq "$what: large 327680-byte blocks (10 x 300 KiB)" "$(count 327680 "$f")" 10
  expect_eq "$what: huge 3145728-byte blocks (2 x 3 MiB)" "$(count 3145728 "$f")" 2
}

CORE_HOW=""
# make_core DIR [MALLOC_PROF]: runs the program in DIR until it stops; sets CORE.
make_core() {
  local dir="$1" prof="${2:-}" env_args=(LD_PRELOAD="$LIB")
  [[ -n "$prof" ]] && env_args+=(MALLOC_PROF="$prof")
  mkdir -p "$dir"
  # An inner bash runs it, so that its "Aborted (core dumped)" goes nowhere.
  (cd "$dir" && bash -c 'ulimit -c unlimited 2>/dev/null || ulimit -c "$(ulimit -H -c)"
                       env "$@" abort >ready.txt 2>stderr.txt' gdb_heap "${env_args[@]}" "$PROG") 2>/dev/null || true
  grep -q '^gdb_heap_program: ready pid=' "$dir/ready.txt" ||
    fail "gdb_heap_program did not get ready: $(head -n 3 "$dir/stderr.txt")"
  CORE="$(find "$dir" -maxdepth 1 -name 'core*' -type f | head -n 1)"
  if [[ -n "$CORE" && -z "${GDB_HEAP_FORCE_GCORE:-}" ]]; then
    CORE_HOW="kernel core dump (abort, ulimit -c unlimited)"
    return
  fi
  # core_pattern sends cores elsewhere: gcore, attached to the stopped process.
  (cd "$dir" && exec env "${env_args[@]}" "$PROG" stop >ready2.txt 2>stderr2.txt) &
  local bg=$! pid="" i
  for ((i = 0; i < 200; i++)); do
    pid="$(sed -n 's/^gdb_heap_program: ready pid=//p' "$dir/ready2.txt" 2>/dev/null || true)"
    [[ -n "$pid" ]] && grep -q '^State:.*stopped' "/proc/$pid/status" 2>/dev/null && break
    sleep 0.05
  done
  [[ -n "$pid" ]] || { kill -9 "$bg" 2>/dev/null; fail "gdb_heap_program (stop) did not get ready"; }
  timeout 60 gcore -o "$dir/gcore" "$pid" >"$dir/gcore.log" 2>&1 || true
  kill -9 "$pid" 2>/dev/null || true
  wait "$bg" 2>/dev/null || true
  CORE="$dir/gcore.$pid"
  [[ -f "$CORE" ]] || fail "no core file: core_pattern is '$(cat /proc/sys/kernel/core_pattern)' and gcore failed: $(tail -n 2 "$dir/gcore.log")"
  CORE_HOW="gcore (gdb attached to the process stopped by SIGSTOP)"
}

# ---- 1. Core file, no profiling.
echo "== core file, profiling off"
make_core "$WORK/plain"
PLAIN_CORE="$CORE"
echo "  core: $PLAIN_CORE, from $CORE_HOW"
TARGET=("$PROG" "$PLAIN_CORE")
walk "$WORK/plain.stats" 'heap stats'
check_stats "$WORK/plain.stats" "core"

walk "$WORK/plain.one" 'heap stats 2990'
grep -q '^(blocks of 3,072 bytes serve requests of 2,990 bytes)$' "$WORK/plain.one" ||
  fail "heap stats 2990 does not say it shows the 3072-byte class"
expect_eq "heap stats 2990: table lines" "$(grep -c ' bytes \* ' "$WORK/plain.one")" 1
expect_eq "heap stats 2990: 3072-byte blocks" "$(count 3072 "$WORK/plain.one")" 777

walk "$WORK/plain.sampled" 'heap sampled'
grep -q '^Sampled live blocks (profiler entry table): 0 blocks' "$WORK/plain.sampled" ||
  fail "heap sampled without profiling: $(head -n 3 "$WORK/plain.sampled")"
echo "  ok: heap sampled finds no sampled blocks when profiling is off"

# dump, analyze and examine of single classes.
walk "$WORK/plain.dae" "heap dump 3072 $WORK/dump" 'heap analyze 208' \
  'heap analyze 1536' 'heap analyze 1000' 'heap examine 1536'
grep -q "^Wrote 777 blocks (2,386,944 bytes) to $WORK/dump\$" "$WORK/plain.dae" ||
  fail "heap dump 3072: $(grep '^Wrote' "$WORK/plain.dae")"
expect_eq "heap dump: files in the directory" "$(find "$WORK/dump" -name '0x*.bin' -size 3072c | wc -l)" 777
# Every dumped block is one the program filled: 'C' (main thread) or 'F' (worker) from byte 8 on.
bad=0
for f in "$WORK"/dump/0x*.bin; do
  c=""
  LC_ALL=C IFS= read -r -N 16 c <"$f" || true
  [[ "${c:8}" == CCCCCCCC || "${c:8}" == FFFFFFFF ]] || bad=$((bad + 1))
done
expect_eq "heap dump: blocks not filled by the program" "$bad" 0
n="$(grep -c "): C string: 'gdb-heap-string-[0-9][0-9][0-9]'\$" "$WORK/plain.dae" || true)"
expect_eq "heap analyze 208: the program's C strings" "$n" 300
grep -q "C string: 'gdb-heap-string-042'" "$WORK/plain.dae" || fail "heap analyze 208: string 042 missing"
n="$(grep -c '(1,536 bytes): pointer array (187/192 point into the heap)$' "$WORK/plain.dae" || true)"
expect_eq "heap analyze 1536: pointer tables (187 of 192 words into the heap)" "$n" 40
n="$(grep -c '(1,024 bytes): zeroes$' "$WORK/plain.dae" || true)"
expect_ge "heap analyze 1000: zeroed 1024-byte blocks" "$n" 200
grep -q '^(blocks of 1,024 bytes serve requests of 1,000 bytes)$' "$WORK/plain.dae" ||
  fail "heap analyze 1000 does not name the 1024-byte class"
grep -q '^  C string  *300$' "$WORK/plain.dae" || fail "heap analyze 208: summary does not count 300 C strings"
n="$(grep -c '^0x[0-9a-f]* (1,536 bytes, small):$' "$WORK/plain.dae" || true)"
expect_eq "heap examine 1536: blocks shown" "$n" 40
n="$(grep -o '0x[0-9a-f]* \[heap\]' "$WORK/plain.dae" | wc -l)"
expect_eq "heap examine 1536: words marked [heap] (8 per block)" "$n" 320

# ---- 2. Core file, every block sampled.
echo "== core file, MALLOC_PROF=rate=1"
make_core "$WORK/prof" "rate=1,final=0"
PROF_CORE="$CORE"
echo "  core: $PROF_CORE, from $CORE_HOW"
TARGET=("$PROG" "$PROF_CORE")
walk "$WORK/prof.out" 'heap stats' 'heap sampled 0' "heap pprof $WORK/heap.pb.gz"
check_stats "$WORK/prof.out" "profiled core"
grep -q '^Sampled live blocks (profiler entry table): [0-9,]* blocks from [0-9,]* stacks, sampling rate 1 byte$' \
  "$WORK/prof.out" || fail "heap sampled: no header line with rate 1"

# sampled FUNCTION: sampled blocks of the stacks whose innermost frame is FUNCTION.
sampled() {
  awk -v fn="gdbheap::$1()" '
    /^\[[0-9]+\] .* from [0-9,]+ sampled blocks?/ {
      n = $0; sub(/ sampled block.*/, "", n); sub(/.* from /, "", n); gsub(",", "", n) }
    $1 == "#0" && $3 == fn { total += n }
    END { print total + 0 }' "$WORK/prof.out"
}
for site in SmallBlocks:1000 MediumBlocks:500 KiloBlocks:200 DistinctMain:700 DistinctWorker:77 \
  StringBlocks:300 PointerTables:40 LargeBlocks:10 HugeBlocks:2; do
  expect_eq "heap sampled: blocks allocated by gdbheap::${site%%:*}" "$(sampled "${site%%:*}")" "${site##*:}"
done
grep -q '^    #1  0x[0-9a-f]* gdbheap::WorkerMain(void\*) + [0-9]* in .*gdb_heap_program$' "$WORK/prof.out" ||
  fail "heap sampled: the worker's stack does not show gdbheap::WorkerMain(void*)"
echo "  ok: heap sampled symbolizes the worker thread's stack"

grep -q "^Wrote $WORK/heap.pb.gz: " "$WORK/prof.out" || fail "heap pprof: $(grep -i 'pprof\|error' "$WORK/prof.out" | head -n 3)"
timeout 60 go tool pprof -symbolize=none -top -nodecount=200 -nodefraction=0 -sample_index=inuse_objects \
  "$WORK/heap.pb.gz" >"$WORK/top.txt" 2>&1 || fail "go tool pprof -top: $(head -n 5 "$WORK/top.txt")"
grep -qx 'Type: inuse_objects' "$WORK/top.txt" || fail "go tool pprof -top: no 'Type: inuse_objects' line"
# flat FUNCTION: pprof's flat inuse_objects of FUNCTION.
flat() {
  awk -v fn="gdbheap::$1" '$NF == fn || $NF == fn "()" { print $1; found = 1 } END { if (!found) print -1 }' "$WORK/top.txt"
}
for site in SmallBlocks:1000 DistinctMain:700 DistinctWorker:77 StringBlocks:300 HugeBlocks:2; do
  expect_eq "go tool pprof -top: inuse_objects of gdbheap::${site%%:*}" "$(flat "${site%%:*}")" "${site##*:}"
done
timeout 60 go tool pprof -symbolize=none -top -unit=kB -sample_index=inuse_space "$WORK/heap.pb.gz" >"$WORK/top-space.txt" 2>&1 ||
  fail "go tool pprof -top -sample_index=inuse_space: $(head -n 5 "$WORK/top-space.txt")"
grep -q '6144kB .* gdbheap::HugeBlocks\(()\)\?$' "$WORK/top-space.txt" ||
  fail "go tool pprof -top: HugeBlocks is not 6144kB: $(grep HugeBlocks "$WORK/top-space.txt")"
echo "  ok: go tool pprof -top reads the profile (inuse_space of gdbheap::HugeBlocks = 6144kB)"

# ---- 3. The live process, stopped by SIGTRAP under gdb.
echo "== live process under gdb"
TARGET=(--args "$PROG" trap)
walk "$WORK/live.out" "set environment LD_PRELOAD $LIB" run 'heap stats' \
  'set var *(unsigned long *)((char *)&assay_layout + 8) = 99' 'heap stats' \
  'set var *(unsigned long *)((char *)&assay_layout + 8) = 1' \
  'set var *(unsigned long *)((char *)&assay_layout) = 0x1234' 'heap stats' kill
[[ -s "$WORK/live.out" ]] || fail "no output from the live session"
grep -q 'received signal SIGTRAP' "$WORK/live.out" || fail "the live program did not stop at its SIGTRAP: $(tail -n 5 "$WORK/live.out")"
sed -n '1,/^Total VM allocated/p' "$WORK/live.out" >"$WORK/live.stats"
check_stats "$WORK/live.stats" "live process"
# The same program, the same heap: the live table is the core's, line for line.
diff <(grep ' bytes \* \|^Heap: ' "$WORK/plain.stats") <(grep ' bytes \* \|^Heap: ' "$WORK/live.stats") >"$WORK/live.diff" ||
  { sed 's/^/    /' "$WORK/live.diff" >&2; fail "the live process's heap stats differ from its core's"; }
echo "  ok: the live process's table equals the core file's ($(grep -c ' bytes \* ' "$WORK/live.stats") sizes)"
grep -qE '^assay layout version 99, this walker understands [0-9]+' "$WORK/live.out.err" "$WORK/live.out" ||
  fail "no refusal of layout version 99: $(grep -i 'version' "$WORK/live.out" "$WORK/live.out.err" | head -n 3)"
echo "  ok: a layout of version 99 is refused"
grep -q 'has magic 0x0000000000001234' "$WORK/live.out.err" "$WORK/live.out" || fail "no refusal of a wrong magic"
echo "  ok: a layout with a wrong magic is refused"

echo "PASS: gdb_heap (cores from: $CORE_HOW)"
