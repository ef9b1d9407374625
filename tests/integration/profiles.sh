#!/usr/bin/env bash
# Heap profiles and MALLOC_PROF, end to end: the programs of profile_programs/
# run under LD_PRELOAD=libassay.so with MALLOC_PROF set, and their pprof files
# are read back with `go tool pprof` (-raw, -top, -sample_index). Checks:
#   - three_sites: file names, the four sample types and the default one,
#     each site's inuse_space (and inuse_objects) within 5 standard deviations
#     of the truth, demangled names, churn in alloc_space but not inuse_space,
#     the leak profile and its stderr line, the alloc kind through
#     assay_write_profile, mappings with the program's build id, seed, depth,
#     stack=fp, peak profiles
#   - every MALLOC_PROF key accepted, MALLOC_PROF=1; bad values: one stderr
#     line naming the key, the program runs on unprofiled
#   - final=0, unwritable prefixes (one "assay: cannot write" line), periodic
#     and interval dumps, signal dumps, fork (file names and numbering, and
#     forks while a dump runs), exit from a thread, exit inside a tracker
#     callback, _exit, fork+exec
#   - object caches: the label cache=NAME on the cache's sampled blocks (and
#     on no ordinary malloc) in the final heap, leak and peak profiles
#   - the cost of one dump of 100 000 sampled blocks (printed, not asserted)
# Every check runs; the test fails at the end if any failed.
#
# Usage: bash profiles.sh /path/to/libassay.so /dir/with/the/profile/programs
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
[[ $# -ge 2 && -d "$2" ]] || fail "usage: bash $0 /path/to/libassay.so /dir/of/profile/programs"
PROGS="$(realpath "$2")"
for p in three_sites prof_modes tracker_exit dump_overhead; do
  [[ -x "$PROGS/$p" ]] || fail "$PROGS/$p is missing (build the tree first: tools/build)"
done
require go awk grep sed sort wc stat date readelf timeout mkfifo
# go tool pprof keeps state under $HOME; give it a writable one of its own.
export HOME="$WORK/home" PPROF_TMPDIR="$WORK/pprof-tmp" GOTOOLCHAIN=local GOFLAGS=
mkdir -p "$HOME" "$PPROF_TMPDIR"
export LC_ALL=C
if ! timeout 60 go tool pprof -h >"$WORK/pprof-help.txt" 2>&1 && ! grep -q -- '-raw' "$WORK/pprof-help.txt"; then
  fail "'go tool pprof' does not run ($(head -n 3 "$WORK/pprof-help.txt")); run tools/setup (as root) to install golang-go"
fi

# ---- Bookkeeping: every check runs, failures are collected. ----
# pass, flunk, check and section: lib.sh.
show() {  # NAME: the last lines of a run's stdout and stderr, for a failure
  echo "    --- stdout of $1:"
  tail -n 8 "$WORK/$1.out" | sed 's/^/    /'
  echo "    --- stderr of $1:"
  tail -n 8 "$WORK/$1.err" | sed 's/^/    /'
}

# prun NAME SECONDS MALLOC_PROF PROGRAM ARGS...: runs the program with
# libassay.so preloaded and MALLOC_PROF set (none if "-"), in its own
# directory $WORK/NAME (the default prefix ./assay lands there), stdin from
# /dev/null, stdout/stderr to $WORK/NAME.out/.err; sets RC (124: timed out)
# and MS (wall milliseconds). PRUN_WRAP (an array) runs the whole under a
# wrapper, outside the preload (setpriv).
RC=0
MS=0
PRUN_WRAP=()
prun() {
  local name="$1" secs="$2" prof="$3"
  shift 3
  mkdir -p "$WORK/$name"
  local envs=(LD_PRELOAD="$ASSAY_LIB")
  [[ "$prof" != - ]] && envs+=(MALLOC_PROF="$prof")
  local t0=${EPOCHREALTIME/./}
  RC=0
  (cd "$WORK/$name" && exec timeout -k 5 "$secs" "${PRUN_WRAP[@]}" env "${envs[@]}" "$@") \
    >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null || RC=$?
  MS=$(((${EPOCHREALTIME/./} - t0) / 1000))
}

pprof() { timeout 60 go tool pprof -symbolize=none "$@"; }

# raw FILE: `go tool pprof -raw` of FILE into FILE.raw; false if it fails.
raw() {
  pprof -raw "$1" >"$1.raw" 2>"$1.raw.err" || {
    echo "    go tool pprof -raw $1 failed: $(head -n 3 "$1.raw.err")"
    return 1
  }
}

# site_value RAWFILE FUNCTION COLUMN: sum of value COLUMN (1 alloc_objects,
# 2 alloc_space, 3 inuse_objects, 4 inuse_space) over the samples whose stack
# has a frame of FUNCTION (its demangled name, as -raw prints it).
site_value() {
  awk -v fn="$2" -v col="$3" '
    /^Samples:/ { sec = 1; next }
    /^Locations/ { sec = 2; next }
    /^Mappings/ { sec = 3; next }
    sec == 1 && /^ *-?[0-9]+( +-?[0-9]+)*:/ {
      i = index($0, ":"); split(substr($0, 1, i - 1), v, " ")
      n++; val[n] = v[col]; stk[n] = substr($0, i + 1); next
    }
    sec == 2 && index($0, " " fn " ") > 0 { id = $1; sub(":", "", id); want[id] = 1 }
    END {
      s = 0
      for (i = 1; i <= n; i++) {
        k = split(stk[i], L, " ")
        for (j = 1; j <= k; j++) if (L[j] in want) { s += val[i]; break }
      }
      printf "%.0f\n", s
    }' "$1"
}

# stack_depths RAWFILE: "min max" number of frames over the samples.
stack_depths() {
  awk '
    /^Samples:/ { sec = 1; next }
    /^Locations/ { sec = 2 }
    sec == 1 && /^ *-?[0-9]+( +-?[0-9]+)*:/ {
      i = index($0, ":"); k = split(substr($0, i + 1), L, " ")
      if (min == "" || k < min) min = k; if (k > max) max = k
    }
    END { print (min == "" ? 0 : min), (max == "" ? 0 : max) }' "$1"
}

# bound N SIZE RATE WHAT: 5 standard deviations of the estimate of N blocks
# of SIZE bytes at RATE (WHAT: bytes or objects), plus 1024 (bytes) or 2
# (objects) for the rounding of each sample's value to an integer.
#   q = 1 - (1 - 1/RATE)^SIZE, var(bytes) = N SIZE^2 (1 - q) / q,
#   var(objects) = N (1 - q) / q
bound() {
  awk -v N="$1" -v n="$2" -v R="$3" -v what="$4" 'BEGIN {
    q = (R == 1) ? 1 : 1 - exp(n * log(1 - 1 / R))
    v = N * (1 - q) / q
    if (what == "bytes") v *= n * n
    printf "%.0f\n", 5 * sqrt(v) + (what == "bytes" ? 1024 : 2)
  }'
}

# within WHAT VALUE TRUTH BOUND: checks |VALUE - TRUTH| <= BOUND.
within() {
  local what="$1" value="$2" truth="$3" b="$4"
  local dev=$((value - truth))
  if ((dev <= b && -dev <= b)); then
    pass "$what = $value, truth $truth, deviation $dev within 5 sd bound $b"
  else
    flunk "$what = $value, truth $truth, deviation $dev OUTSIDE 5 sd bound $b"
  fi
}

files_in() { (cd "$1" && find . -maxdepth 1 -type f -name '*.pb.gz*' -printf '%f\n' | sort); }
count_files() { files_in "$1" | grep -Ec "$2" || true; }

# The sites of three_sites (blocks, bytes each) and the rate of the main run.
RATE=65536
declare -A SITE_N=([SmallObjects]=200000 [MediumBuffers]=3000 [BigBlocks]=40 [Churn]=102400)
declare -A SITE_SIZE=([SmallObjects]=48 [MediumBuffers]=4000 [BigBlocks]=1048576 [Churn]=2048)
SEED=$((RANDOM * 32768 + RANDOM + 1))

# ======================================================================
section "three_sites at rate=64k with leak=1 (seed $SEED), alloc kind via assay_write_profile"
D="$WORK/main"
prun main 60 "prefix=$D/p,rate=64k,leak=1,seed=$SEED" "$PROGS/three_sites" write alloc "$D/explicit.alloc.pb.gz"
if [[ $RC -ne 0 ]] || ! grep -qx 'three_sites: done' "$WORK/main.out" || ! grep -qx 'write alloc: 0' "$WORK/main.out"; then
  flunk "three_sites ran: status $RC (want 0), with 'write alloc: 0' and 'three_sites: done'"
  show main
else
  pass "three_sites ran (status 0, ${MS} ms), assay_write_profile(\"alloc\", path) returned 0"
fi
PID=$(sed -n 's/^three_sites: pid=\([0-9]*\)$/\1/p' "$WORK/main.out")
HEAP="$D/p.$PID.0.heap.pb.gz"
LEAK="$D/p.$PID.1.leak.pb.gz"
ALLOC="$D/explicit.alloc.pb.gz"
want_files=$(printf '%s\n' explicit.alloc.pb.gz "p.$PID.0.heap.pb.gz" "p.$PID.1.leak.pb.gz" | sort)
got_files=$(files_in "$D")
if [[ -n "$PID" && "$got_files" == "$want_files" ]]; then
  pass "files are exactly <prefix>.$PID.0.heap.pb.gz, <prefix>.$PID.1.leak.pb.gz and the explicit path (no temporaries left)"
else
  flunk "files: want [$(echo $want_files)], got [$(echo $got_files)] (pid '$PID')"
fi

if raw "$HEAP"; then
  pass "go tool pprof -raw reads the heap profile"
  header=$(sed -n '/^Samples:/{n;p;q}' "$HEAP.raw")
  check "heap profile: the four sample types, inuse_space the default ('$header')" \
    test "$header" == "alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes[dflt]"
  check "heap profile: period is the rate ($RATE)" grep -qx "Period: $RATE" "$HEAP.raw"
  for s in SmallObjects MediumBuffers BigBlocks; do
    N=${SITE_N[$s]} n=${SITE_SIZE[$s]}
    within "heap inuse_space of sites::$s() ($N x $n B)" "$(site_value "$HEAP.raw" "sites::$s()" 4)" \
      $((N * n)) "$(bound "$N" "$n" $RATE bytes)"
    within "heap inuse_objects of sites::$s()" "$(site_value "$HEAP.raw" "sites::$s()" 3)" \
      "$N" "$(bound "$N" "$n" $RATE objects)"
    within "heap alloc_space of sites::$s() (never freed: same as allocated)" \
      "$(site_value "$HEAP.raw" "sites::$s()" 2)" $((N * n)) "$(bound "$N" "$n" $RATE bytes)"
  done
  N=${SITE_N[Churn]} n=${SITE_SIZE[Churn]}
  within "heap alloc_space of sites::Churn() (all freed)" "$(site_value "$HEAP.raw" "sites::Churn()" 2)" \
    $((N * n)) "$(bound "$N" "$n" $RATE bytes)"
  within "heap inuse_space of sites::Churn() (all freed)" "$(site_value "$HEAP.raw" "sites::Churn()" 4)" 0 0
  read -r dmin dmax < <(stack_depths "$HEAP.raw")
  check "default depth: stacks reach main and beyond ($dmin..$dmax frames, want max >= 4)" test "$dmax" -ge 4

  # Mappings: the program first, with its build id.
  build_id=$(readelf -n "$PROGS/three_sites" | awk '/Build ID:/ { print $3; exit }')
  map_line=$(sed -n '/^Mappings/,$p' "$HEAP.raw" | grep -F " $PROGS/three_sites " | head -n 1 || true)
  if [[ -n "$build_id" && "$map_line" == *" $PROGS/three_sites $build_id"* ]]; then
    pass "mappings: the program with its build id ($build_id)"
  else
    flunk "mappings: want '$PROGS/three_sites $build_id', got '${map_line:-no mapping of the program}'"
    sed -n '/^Mappings/,$p' "$HEAP.raw" | head -n 5 | sed 's/^/    /'
  fi
else
  flunk "go tool pprof -raw reads the heap profile"
fi

if pprof -top -sample_index=inuse_space "$HEAP" >"$HEAP.top" 2>&1; then
  check "-top: Type inuse_space by default" grep -qx 'Type: inuse_space' <(pprof -top "$HEAP" 2>/dev/null)
  for s in SmallObjects MediumBuffers BigBlocks; do
    check "-top inuse_space: demangled 'sites::$s()'" grep -qF " sites::$s()" "$HEAP.top"
  done
  check "-top inuse_space: no sites::Churn (all its blocks were freed)" \
    bash -c '! grep -qF "sites::Churn" "$1"' _ "$HEAP.top"
  pprof -top -sample_index=alloc_space "$HEAP" >"$HEAP.alloc.top" 2>&1 || true
  check "-top -sample_index=alloc_space: sites::Churn() listed" grep -qF " sites::Churn()" "$HEAP.alloc.top"
  check "-top: no mangled names" bash -c '! grep -qE " _Z[A-Za-z0-9_]+" "$1"' _ "$HEAP.top"
else
  flunk "go tool pprof -top of the heap profile: $(head -n 3 "$HEAP.top")"
fi

# The alloc kind, written through assay_write_profile.
if raw "$ALLOC"; then
  header=$(sed -n '/^Samples:/{n;p;q}' "$ALLOC.raw")
  check "alloc profile: alloc_space is the default ('$header')" \
    test "$header" == "alloc_objects/count alloc_space/bytes[dflt] inuse_objects/count inuse_space/bytes"
  check "alloc profile: -top says Type: alloc_space" grep -qx 'Type: alloc_space' <(pprof -top "$ALLOC" 2>/dev/null)
  N=${SITE_N[Churn]} n=${SITE_SIZE[Churn]}
  within "alloc profile: alloc_space of sites::Churn()" "$(site_value "$ALLOC.raw" "sites::Churn()" 2)" \
    $((N * n)) "$(bound "$N" "$n" $RATE bytes)"
  check "alloc profile: comment names the kind" grep -qx 'Comment: assay alloc profile' "$ALLOC.raw"
else
  flunk "go tool pprof -raw reads the alloc profile"
fi

# The leak profile and its summary line.
leak_line=$(grep '^assay: leak check: ' "$WORK/main.err" || true)
if [[ $(grep -c '^assay: leak check: ' "$WORK/main.err" || true) -eq 1 && "$leak_line" == *"(rate $RATE); profile: $LEAK" ]]; then
  pass "stderr: one leak summary line naming the leak file"
else
  flunk "stderr: want one 'assay: leak check: ... (rate $RATE); profile: $LEAK' line, got: $(cat "$WORK/main.err")"
fi
total=0
var_total=0
for s in SmallObjects MediumBuffers BigBlocks; do total=$((total + SITE_N[$s] * SITE_SIZE[$s])); done
kib=$(sed -n 's/.*about \([0-9.]*\) KiB estimated.*/\1/p' <<<"$leak_line")
if [[ -n "$kib" ]]; then
  b=$(awk -v a="$(bound 200000 48 $RATE bytes)" -v b="$(bound 3000 4000 $RATE bytes)" 'BEGIN { printf "%.0f", sqrt(a * a + b * b) + 1048576 }')
  within "leak line: estimated live bytes (three sites + up to 1 MiB of the rest)" \
    "$(awk -v k="$kib" 'BEGIN { printf "%.0f", k * 1024 }')" "$total" "$b"
fi
if raw "$LEAK"; then
  check "leak profile: comment names the kind" grep -qx 'Comment: assay leak profile' "$LEAK.raw"
  within "leak profile: inuse_space of sites::BigBlocks()" "$(site_value "$LEAK.raw" "sites::BigBlocks()" 4)" \
    $((40 * 1048576)) "$(bound 40 1048576 $RATE bytes)"
  check "leak profile: no sites::Churn() (only blocks never freed)" \
    bash -c '! grep -qF "sites::Churn" "$1"' _ "$LEAK.raw"
else
  flunk "go tool pprof -raw reads the leak profile"
fi

# ======================================================================
section "seed, depth, stack=fp, peak on three_sites"
prun seed_a 60 "prefix=$WORK/seed_a/p,rate=64k,final=1,seed=$SEED" "$PROGS/three_sites"
prun seed_b 60 "prefix=$WORK/seed_b/p,rate=64k,final=1,seed=$SEED" "$PROGS/three_sites"
fa=$(ls "$WORK"/seed_a/p.*.0.heap.pb.gz 2>/dev/null | head -n 1 || true)
fb=$(ls "$WORK"/seed_b/p.*.0.heap.pb.gz 2>/dev/null | head -n 1 || true)
if [[ -n "$fa" && -n "$fb" ]] && raw "$fa" && raw "$fb"; then
  va="" vb=""
  for s in SmallObjects MediumBuffers Churn; do
    va+="$(site_value "$fa.raw" "sites::$s()" 2) "
    vb+="$(site_value "$fb.raw" "sites::$s()" 2) "
  done
  check "seed=$SEED: two runs sample the same (alloc_space per site: $va/ $vb)" test "$va" == "$vb"
else
  flunk "seed=$SEED runs wrote no heap profile (status $RC)"
fi

prun depth3 60 "prefix=$WORK/depth3/p,rate=64k,depth=3" "$PROGS/three_sites"
f=$(ls "$WORK"/depth3/p.*.0.heap.pb.gz 2>/dev/null | head -n 1 || true)
if [[ $RC -eq 0 && -n "$f" ]] && raw "$f"; then
  read -r dmin dmax < <(stack_depths "$f.raw")
  check "depth=3: every stack has at most 3 frames, some exactly 3 ($dmin..$dmax)" test "$dmax" -eq 3
  check "depth=3: the innermost frame is still the site (sites::BigBlocks() inuse_space > 0)" \
    test "$(site_value "$f.raw" "sites::BigBlocks()" 4)" -gt 0
  pprof -traces "$f" >"$f.traces" 2>&1 || true
  check "depth=3: -traces shows no frame below main" bash -c '! grep -qE "^ +_start$" "$1"' _ "$f.traces"
else
  flunk "depth=3 run: status $RC, heap file '${f:-none}'"
fi

prun stackfp 60 "prefix=$WORK/stackfp/p,rate=64k,stack=fp" "$PROGS/three_sites"
f=$(ls "$WORK"/stackfp/p.*.0.heap.pb.gz 2>/dev/null | head -n 1 || true)
if [[ $RC -eq 0 && -n "$f" ]] && raw "$f"; then
  within "stack=fp: inuse_space of sites::BigBlocks()" "$(site_value "$f.raw" "sites::BigBlocks()" 4)" \
    $((40 * 1048576)) "$(bound 40 1048576 $RATE bytes)"
  check "stack=fp: the sites' callers are main" test "$(site_value "$f.raw" "main" 4)" -gt $((40 * 1048576))
else
  flunk "stack=fp run: status $RC, heap file '${f:-none}'"
fi

prun peak 60 "prefix=$WORK/peak/p,rate=64k,peak=1,final=0" "$PROGS/three_sites"
npeak=$(count_files "$WORK/peak" '^p\.[0-9]+\.[0-9]+\.peak\.pb\.gz$')
nother=$(files_in "$WORK/peak" | grep -vEc '^p\.[0-9]+\.[0-9]+\.peak\.pb\.gz$' || true)
check "peak=1: the growing heap produced peak profiles ($npeak), nothing else ($nother other files), status $RC" \
  test "$npeak" -ge 1 -a "$nother" -eq 0 -a "$RC" -eq 0
f=$(ls "$WORK"/peak/p.*.0.peak.pb.gz 2>/dev/null | head -n 1 || true)
[[ -n "$f" ]] && check "peak=1: go tool pprof -raw reads the first peak profile" raw "$f"
# The dumper limits peak profiles to one a second (dumper.cc, ThreadMain).
max_peaks=$((MS / 1000 + 2))
check "peak=1: at most one peak profile a second ($npeak files in a ${MS} ms run, want <= $max_peaks)" \
  test "$npeak" -le "$max_peaks"

# ======================================================================
section "MALLOC_PROF: every key accepted"
accepted=(
  "rate=1m" "rate=300000" "interval=4m" "interval=0" "period=30" "period=0" "final=1" "peak=1"
  "peak=0" "leak=0" "depth=1" "depth=256" "seed=12345" "young=1m" "signal=USR1" "signal=SIGHUP"
  "signal=12" "stack=fp" "stack=unwind"
  "rate=128k,interval=64m,period=60,final=1,peak=1,leak=1,depth=32,seed=7,young=4m,signal=USR2,stack=fp"
)
i=0
for kv in "${accepted[@]}"; do
  i=$((i + 1))
  prun "acc$i" 20 "prefix=$WORK/acc$i/p,$kv" "$PROGS/prof_modes" basic
  errs=$(grep -v '^assay: leak check: ' "$WORK/acc$i.err" || true)
  nheap=$(count_files "$WORK/acc$i" '^p\.[0-9]+\.[0-9]+\.heap\.pb\.gz$')  # (a peak file may come first)
  # One heap file, at exit; an interval may add one: `basic` allocates ~2.2
  # MiB, and its estimate (512 KiB a sample point, Poisson(4.4) points)
  # reaches 4 MiB in about one run in twelve.
  want_heap=1
  [[ "$kv" == interval=4m ]] && want_heap=2
  if [[ $RC -eq 0 && "$(cat "$WORK/acc$i.out")" == "basic: done" && -z "$errs" && $nheap -ge 1 &&
        $nheap -le $want_heap ]]; then
    pass "MALLOC_PROF=prefix=...,$kv: accepted, profiling on (heap file at exit)"
  else
    flunk "MALLOC_PROF=prefix=...,$kv: status $RC, heap files $nheap, stderr: ${errs:-none}"
  fi
done
prun one 20 "1" "$PROGS/prof_modes" basic
f=$(ls "$WORK"/one/assay.*.0.heap.pb.gz 2>/dev/null | head -n 1 || true)
if [[ $RC -eq 0 && -n "$f" && ! -s "$WORK/one.err" ]] && raw "$f" && grep -qx 'Period: 524288' "$f.raw"; then
  pass "MALLOC_PROF=1: ./assay.<pid>.0.heap.pb.gz at exit, rate 512k"
else
  flunk "MALLOC_PROF=1: status $RC, files [$(files_in "$WORK/one" | tr '\n' ' ')], stderr: $(cat "$WORK/one.err")"
fi

# ======================================================================
section "MALLOC_PROF: bad values (one stderr line naming the key; runs on, unprofiled)"
prun plain 20 - "$PROGS/prof_modes" basic
plain_rc=$RC
declare -A bad_values=(
  [rate=0]=rate [rate=abc]=rate [period=-1]=period [depth=0]=depth [depth=999]=depth
  [signal=NOPE]=signal [stack=x]=stack [foo=1]=foo [leak=2]=leak [rate=64k,leak=1,depth=0]=depth
  [rate]=rate [final=yes]=final [interval=1q]=interval
)
i=0
for kv in $(printf '%s\n' "${!bad_values[@]}" | sort); do
  key=${bad_values[$kv]}
  i=$((i + 1))
  prun "bad$i" 20 "prefix=$WORK/bad$i/p,$kv" "$PROGS/prof_modes" basic
  nerr=$(wc -l <"$WORK/bad$i.err")
  nfiles=$(files_in "$WORK/bad$i" | wc -l)
  if [[ $RC -eq $plain_rc ]] && cmp -s "$WORK/bad$i.out" "$WORK/plain.out" && [[ $nerr -eq 1 && $nfiles -eq 0 ]] &&
    grep -q "^assay: MALLOC_PROF: .*'$key'" "$WORK/bad$i.err"; then
    pass "MALLOC_PROF=...,$kv: one line naming '$key', normal output and status, no files"
  else
    flunk "MALLOC_PROF=...,$kv: status $RC (want $plain_rc), $nerr stderr lines (want 1 naming '$key'), $nfiles files (want 0); stderr: $(head -c 400 "$WORK/bad$i.err")"
  fi
done

# ======================================================================
section "final=0, unwritable prefixes"
prun final0 20 "prefix=$WORK/final0/p,final=0" "$PROGS/prof_modes" basic
check "final=0: no heap file at exit (status $RC, files: $(files_in "$WORK/final0" | wc -l))" \
  test "$RC" -eq 0 -a "$(files_in "$WORK/final0" | wc -l)" -eq 0

# Several dumps (period=1 over 3 s, and the final one) must give one line.
mkdir -p "$WORK/rodir/ro"
chmod 555 "$WORK/rodir/ro"
chmod 711 "$WORK" "$WORK/rodir"
as_user=()
if [[ "$(id -u)" -eq 0 ]]; then
  # root writes anywhere: run as nobody (setpriv itself not preloaded)
  require setpriv
  as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
# (the two run in the background while the next section's runs go on)
(prun nodir 30 "prefix=$WORK/nodir/missing/p,period=1,leak=1" "$PROGS/prof_modes" run 3000
  echo "$RC" >"$WORK/nodir.rc") &
nodir_job=$!
(PRUN_WRAP=("${as_user[@]}")
  prun rodir 30 "prefix=$WORK/rodir/ro/p,period=1,leak=1" "$PROGS/prof_modes" run 3000
  echo "$RC" >"$WORK/rodir.rc") &
rodir_job=$!

# ======================================================================
section "periodic and interval dumps"
prun period 30 "prefix=$WORK/period/p,period=1,final=0" "$PROGS/prof_modes" run 3600
seqs=$(files_in "$WORK/period" | sed -n 's/^p\.[0-9]*\.\([0-9]*\)\.heap\.pb\.gz$/\1/p' | sort -n | tr '\n' ' ')
nper=$(files_in "$WORK/period" | wc -l)
check "period=1, 3.6 s run: >= 3 heap files, no more than 5, seq 0.. ($seqs), status $RC" \
  test "$RC" -eq 0 -a "$nper" -ge 3 -a "$nper" -le 5 -a "$seqs" == "$(seq -s ' ' 0 $((nper - 1))) "
prev=0
increasing=1
for s in $seqs; do
  f=$(ls "$WORK"/period/p.*."$s".heap.pb.gz)
  t=$(date -r "$f" +%s%N)
  # Not strictly: file times come from the kernel's coarse clock (a tick of
  # 1-10 ms), and a dump that falls due while a slow first one (the writer's
  # load) is still writing follows it at once, within the same tick.
  ((t >= prev)) || increasing=0
  prev=$t
  raw "$f" || increasing=0
done
check "period=1: files written in seq order, each readable" test "$increasing" -eq 1

prun interval 30 "prefix=$WORK/interval/p,rate=64k,interval=8m,final=0" "$PROGS/prof_modes" churn 100
nint=$(count_files "$WORK/interval" '^p\.[0-9]+\.[0-9]+\.heap\.pb\.gz$')
# At most one file per 8 MiB the clock passes: the churn's 100 MiB and the
# program's own few MiB, as the sampling clock estimates them (64 KiB a point:
# a standard deviation of 2.5% at 100 MiB), 12-14 when the dump thread keeps
# up; requests made while it writes a dump coalesce, so fewer on a loaded
# machine, never fewer than 3 at this pace with the writer loaded before the
# churn (prof_modes.cc: Churn).
check "interval=8m over 100 MB: several heap files ($nint, want 3..16), status $RC" \
  test "$RC" -eq 0 -a "$nint" -ge 3 -a "$nint" -le 16

wait "$nodir_job" || true
wait "$rodir_job" || true
for d in nodir rodir; do
  RC=$(cat "$WORK/$d.rc" 2>/dev/null || echo missing)
  ncw=$(grep -c '^assay: cannot write' "$WORK/$d.err" || true)
  nerr=$(wc -l <"$WORK/$d.err")
  written=$(find "$WORK/$d" "$WORK/rodir/ro" -type f 2>/dev/null | wc -l)
  if [[ "$RC" == 0 && $ncw -eq 1 && $nerr -eq 1 && $written -eq 0 ]] && grep -qx 'run: done' "$WORK/$d.out"; then
    pass "unwritable prefix ($d): exactly one 'assay: cannot write' line over several dumps, program completed"
  else
    flunk "unwritable prefix ($d): status $RC, $ncw 'cannot write' lines, $nerr stderr lines (want 1 and 1), $written files, stdout '$(tail -n 1 "$WORK/$d.out")'; stderr: $(head -c 600 "$WORK/$d.err")"
  fi
done

# ======================================================================
section "signal=USR2"
D="$WORK/signal"
mkdir -p "$D"
mkfifo "$WORK/signal.in" "$WORK/signal.stdout"
timeout -k 5 30 env LD_PRELOAD="$ASSAY_LIB" MALLOC_PROF="prefix=$D/p,signal=USR2,final=0" \
  "$PROGS/prof_modes" signal <"$WORK/signal.in" >"$WORK/signal.stdout" 2>"$WORK/signal.err" &
sig_job=$!
exec {sig_w}>"$WORK/signal.in" {sig_r}<"$WORK/signal.stdout"
line=""
read -r -t 15 line <&"$sig_r" || true
spid=${line#ready pid=}
# wait_files DIR N RE: waits (10 s at most) until DIR holds N files matching RE
wait_files() {
  local dir="$1" n="$2" re="$3" i
  for ((i = 0; i < 200; i++)); do
    (($(count_files "$dir" "$re") >= n)) && return 0
    sleep 0.05
  done
  return 1
}
got=0
if [[ "$line" == "ready pid="* ]]; then
  kill -USR2 "$spid" && wait_files "$D" 1 '\.heap\.pb\.gz$' && got=1
  ((got == 1)) && kill -USR2 "$spid" && wait_files "$D" 2 '\.heap\.pb\.gz$' && got=2
fi
exec {sig_w}>&-  # EOF on its stdin: the program finishes
rest=$(timeout 20 cat <&"$sig_r" || true)
exec {sig_r}<&-
RC=0
wait "$sig_job" || RC=$?
heaps=$(files_in "$D" | tr '\n' ' ')
if [[ $got -eq 2 && $RC -eq 0 && "$rest" == "signal: done" && "$heaps" == "p.$spid.0.heap.pb.gz p.$spid.1.heap.pb.gz " ]]; then
  pass "signal=USR2 sent twice: two heap files (seq 0 and 1), the program ran on and exited 0"
else
  flunk "signal=USR2: readiness '$line', dumps seen $got, status $RC, rest of stdout '$rest', files [$heaps]; stderr: $(head -c 400 "$WORK/signal.err")"
fi

# ======================================================================
section "fork"
prun fork 30 "prefix=$WORK/fork/p,leak=1" "$PROGS/prof_modes" fork "$WORK/fork/p"
ppid_=$(sed -n 's/^parent pid=\([0-9]*\) .*/\1/p' "$WORK/fork.out")
inode0=$(sed -n 's/^parent pid=[0-9]* inode0=\([0-9]*\)$/\1/p' "$WORK/fork.out")
cpid=$(sed -n 's/^child pid=\([0-9]*\)$/\1/p' "$WORK/fork.out")
want=$(printf 'p.%s\n' "$cpid.0.heap.pb.gz" "$cpid.1.leak.pb.gz" "$ppid_.0.heap.pb.gz" "$ppid_.1.heap.pb.gz" \
  "$ppid_.2.heap.pb.gz" "$ppid_.3.leak.pb.gz" | sort)
got_files=$(files_in "$WORK/fork")
if [[ $RC -eq 0 && -n "$cpid" && "$got_files" == "$want" ]]; then
  pass "fork: child's files p.$cpid.0.heap and p.$cpid.1.leak, parent's p.$ppid_.0..3 in order"
else
  flunk "fork: status $RC; want [$(echo $want)], got [$(echo $got_files)]"
  show fork
fi
if [[ -n "$inode0" && -f "$WORK/fork/p.$ppid_.0.heap.pb.gz" ]]; then
  check "fork: the parent's first file was not overwritten (inode $inode0)" \
    test "$(stat -c %i "$WORK/fork/p.$ppid_.0.heap.pb.gz")" == "$inode0"
fi
check "fork: the child's heap profile reads" raw "$WORK/fork/p.$cpid.0.heap.pb.gz"
check "fork: two leak lines, each naming its own process's file" \
  test "$(grep -c "profile: $WORK/fork/p\.\($cpid\.1\|$ppid_\.3\)\.leak\.pb\.gz$" "$WORK/fork.err")" -eq 2

# Children forked while the dump thread is writing a profile (interval dumps
# back to back) must still finish their own exit dumps.
prun fork_stress 60 "prefix=$WORK/fork_stress/p,rate=4k,interval=64k" "$PROGS/prof_modes" fork_stress 30
if [[ $RC -eq 0 ]] && grep -qx 'fork_stress: 30 forks, 0 hung, 0 failed' "$WORK/fork_stress.out"; then
  pass "fork while dumps are running: 30 children exited normally (${MS} ms)"
else
  flunk "fork while dumps are running: status $RC; $(grep -v '^fork_stress: done' "$WORK/fork_stress.out" | head -n 3 | tr '\n' ' ')"
fi

# ======================================================================
section "exits: from a thread, inside a tracker callback, _exit, fork+exec"
prun thread_exit 20 "prefix=$WORK/thread_exit/p" "$PROGS/prof_modes" thread_exit
f=$(ls "$WORK"/thread_exit/p.*.0.heap.pb.gz 2>/dev/null | head -n 1 || true)
if [[ $RC -eq 0 && -n "$f" ]] && raw "$f"; then
  pass "exit(0) from a second thread: status 0 in ${MS} ms, final heap profile written"
else
  flunk "exit(0) from a second thread: status $RC (124: hung), final heap file '${f:-none}'"
  show thread_exit
fi

prun tracker_exit 20 "prefix=$WORK/tracker_exit/p,rate=64k" "$PROGS/tracker_exit" 50
f=$(ls "$WORK"/tracker_exit/p.*.0.heap.pb.gz 2>/dev/null | head -n 1 || true)
if [[ $RC -eq 3 && -n "$f" ]] && grep -q 'exit(3) from on_alloc after 50 callbacks' "$WORK/tracker_exit.out" && raw "$f"; then
  pass "exit(3) inside a tracker callback: status 3 in ${MS} ms, final heap profile written"
else
  flunk "exit(3) inside a tracker callback: status $RC (want 3; 124: hung), final heap file '${f:-none}'"
  show tracker_exit
fi

prun uexit 20 "prefix=$WORK/uexit/p,leak=1,peak=1" "$PROGS/prof_modes" underscore_exit
nf=$(files_in "$WORK/uexit" | grep -vc '\.peak\.pb\.gz' || true)
check "_exit: status 0 in ${MS} ms (status $RC), no heap or leak file ($nf)" test "$RC" -eq 0 -a "$nf" -eq 0

prun fork_exec 30 "prefix=$WORK/fork_exec/p,period=1,peak=1" "$PROGS/prof_modes" fork_exec 5
npids=$(files_in "$WORK/fork_exec" | sed -n 's/^p\.\([0-9]*\)\.0\.heap\.pb\.gz$/\1/p' | sort -u | wc -l)
if [[ $RC -eq 0 ]] && grep -qx 'fork_exec: done' "$WORK/fork_exec.out" && [[ ! -s "$WORK/fork_exec.err" ]]; then
  pass "fork+exec /bin/true x5: no hang, no crash (${MS} ms); heap files of $npids processes"
else
  flunk "fork+exec /bin/true x5: status $RC"
  show fork_exec
fi
check "fork+exec: the parent and each profiled /bin/true wrote its own seq-0 heap file ($npids, want 6)" \
  test "$npids" -eq 6

# ======================================================================
section "object caches: the label cache=NAME in heap, leak and peak profiles"
# 40000 objects of 100 bytes from the cache, 40000 ordinary 100-byte mallocs.
prun cache 30 "prefix=$WORK/cache/p,rate=4k,leak=1,peak=1" "$PROGS/prof_modes" cache 40000
if [[ $RC -ne 0 ]] || ! grep -qx 'cache: done' "$WORK/cache.out"; then
  flunk "prof_modes cache: status $RC"
  show cache
fi
CB=$(bound 40000 100 4096 bytes)
# label_bytes RAWFILE VALUE: inuse_space of the samples labelled cache:[VALUE]
# ("-": the 100-byte samples with no cache label).
label_bytes() {
  awk -v want="$2" '
    /^Samples:/ { sec = 1; next }
    /^Locations/ { sec = 0 }
    sec && /^ *-?[0-9]+( +-?[0-9]+)*:/ { flush(); split($0, v, " "); val = v[4]; cache = "-"; b = 0; next }
    sec && /cache:\[/ { c = $0; sub(/.*cache:\[/, "", c); sub(/\].*/, "", c); cache = c }
    sec && /bytes:\[100 bytes\]/ { b = 1 }
    function flush() { if (val != "" && cache == want && (want != "-" || b)) s += val; val = "" }
    END { flush(); printf "%.0f\n", s }' "$1"
}
for kind in heap leak peak; do
  f=$(ls -t "$WORK"/cache/p.*."$kind".pb.gz 2>/dev/null | head -n 1 || true)
  if [[ -z "$f" ]] || ! raw "$f"; then
    flunk "object caches: a readable $kind profile ('${f:-none}')"
    continue
  fi
  if [[ "$kind" == peak ]]; then  # a peak snapshot may predate the last allocations
    v=$(label_bytes "$f.raw" prof-modes-cache)
    check "object caches: peak profile has cache=prof-modes-cache samples ($v bytes)" test "$v" -gt 0
    continue
  fi
  within "object caches: $kind inuse_space of cache=prof-modes-cache" \
    "$(label_bytes "$f.raw" prof-modes-cache)" 4000000 "$CB"
  within "object caches: $kind inuse_space of the unlabelled 100-byte mallocs" \
    "$(label_bytes "$f.raw" -)" 4000000 "$CB"
done
f=$(ls "$WORK"/cache/p.*.heap.pb.gz 2>/dev/null | head -n 1 || true)
[[ -n "$f" ]] && check "object caches: pprof -tags lists cache: prof-modes-cache" \
  grep -q 'prof-modes-cache' <(pprof -tags "$f" 2>/dev/null)

# ======================================================================
section "dump overhead: 100 000 sampled blocks from 20 stacks (rate=1), measured, not asserted"
prun overhead 60 "prefix=$WORK/overhead/p,rate=1,final=0" "$PROGS/dump_overhead" "$WORK/overhead/dump" 100000
sed 's/^/  /' "$WORK/overhead.out"
if [[ $RC -eq 0 ]] && raw "$WORK/overhead/dump.2.heap.pb.gz"; then
  objs=$(awk '/^Samples:/ { s = 1; next } /^Locations/ { s = 0 } s && /^ *[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+:/ { t += $3 } END { printf "%.0f", t }' \
    "$WORK/overhead/dump.2.heap.pb.gz.raw")
  check "dump overhead: the profile holds >= 100000 live objects ($objs)" test "$objs" -ge 100000
else
  flunk "dump overhead run: status $RC"
  show overhead
fi

# ======================================================================
echo
echo "profiles: $n_pass checks passed, $n_fail failed"
if ((n_fail > 0)); then
  for f in "${failures[@]}"; do echo "  failed: $f"; done
  fail "$n_fail profile checks failed"
fi
echo "PASS: profiles"
