#!/usr/bin/env bash
# Profile and output files are safe to write in a shared directory: an
# attacker who knows the pid of the profiled program plants symlinks to a
# victim file at every name a write could use (the final names of the dumps,
# and `<final>.tmp.<pid>`, the temporary name writers used before), in a
# world-writable sticky directory like /tmp; the victim must stay untouched
# and the profiles must still be written, as regular files pprof reads.
# Programs are started stopped (before exec, so the pid is known before any
# write), the names planted, then the programs continued. Covered writers:
#   - MALLOC_PROF dumps (interval, peak, final heap, leak) and
#     assay_write_profile to explicit paths (three_sites under LD_PRELOAD)
#   - the debug heap's leak profile (ASSAY_DEBUG=leaks: leak_profile=PATH,
#     and the default ./assay.<pid>.leak.pb.gz)
#   - `assay merge -o OUT`
# And modes: every profile and output file is 0600 whatever the umask, and
# the directories `assay run --prefix` creates are 0700 (existing ones kept).
# Every check runs; the test fails at the end if any failed.
#
# Usage: bash profile_files.sh libassay.so DIR_OF_PROFILE_PROGRAMS debug_errors assay
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
[[ $# -ge 4 ]] || fail "usage: bash $0 libassay.so dir_of_profile_programs debug_errors assay"
PROGS="$(realpath "$2")"
DEBUG_ERRORS="$(realpath "$3")"
ASSAY="$(realpath "$4")"
for p in "$PROGS/three_sites" "$PROGS/prof_modes" "$DEBUG_ERRORS" "$ASSAY"; do
  [[ -x "$p" ]] || fail "$p is missing (build the tree first: tools/build)"
done
require go stat find awk grep sort timeout sha256sum ln
export HOME="$WORK/home" PPROF_TMPDIR="$WORK/pprof-tmp" GOTOOLCHAIN=local GOFLAGS=
mkdir -p "$HOME" "$PPROF_TMPDIR"
export LC_ALL=C
umask 022

# pass, flunk, check and section: lib.sh.

# The victim: a file the attacker wants overwritten, outside the shared directory.
mkdir -p "$WORK/victims"
VICTIM="$WORK/victims/victim"
printf 'precious data %s\n' "$RANDOM$RANDOM" >"$VICTIM"
chmod 644 "$VICTIM"
victim_state() { stat -c '%F %i %s %a %Y.%y' "$VICTIM" && sha256sum <"$VICTIM"; }
VICTIM_STATE="$(victim_state)"
victim_untouched() { [[ "$(victim_state)" == "$VICTIM_STATE" ]]; }

# shared NAME: a fresh world-writable sticky directory, as /tmp is.
shared() {
  mkdir -p "$WORK/$1"
  chmod 1777 "$WORK/$1"
  echo "$WORK/$1"
}

# plant PATH...: a symlink to the victim at each PATH.
plant() {
  local p
  for p in "$@"; do ln -s "$VICTIM" "$p"; done
}

# start_stopped NAME DIR CMD...: starts CMD in DIR (stdout/stderr to
# $WORK/NAME.out/.err) stopped before it execs, so its pid (SPID) is known
# before it writes anything; false if it does not stop.
SPID=0
start_stopped() {
  local name="$1" dir="$2" i state
  shift 2
  (cd "$dir" && kill -STOP "$BASHPID" && exec "$@") >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null &
  SPID=$!
  for ((i = 0; i < 500; i++)); do
    state=$(awk '{ print $3 }' "/proc/$SPID/stat" 2>/dev/null || true)
    [[ "$state" == T ]] && return 0
    sleep 0.01
  done
  return 1
}

# finish SECONDS: continues the stopped program and waits for it; sets RC
# (137: killed after SECONDS).
RC=0
finish() {
  local secs="$1" watchdog
  kill -CONT "$SPID"
  # (its sleep must not outlive it holding our stdout open)
  (
    trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    sleep "$secs" &
    sleeper=$!
    wait "$sleeper"
    kill -KILL "$SPID"
  ) >/dev/null 2>&1 &
  watchdog=$!
  RC=0
  wait "$SPID" || RC=$?
  kill "$watchdog" 2>/dev/null || true
  wait "$watchdog" 2>/dev/null || true
}

# readable FILE: a regular file (not a symlink) that `go tool pprof -top` reads.
readable() {
  [[ -f "$1" && ! -L "$1" ]] || {
    echo "    $1: not a regular file"
    return 1
  }
  if ! timeout 60 go tool pprof -symbolize=none -top "$1" >"$1.top" 2>&1 || ! grep -q '^Type: ' "$1.top"; then
    echo "    go tool pprof -top $1: $(head -n 3 "$1.top")"
    return 1
  fi
}

mode_of() { stat -c '%a' "$1"; }

# regular_files DIR: names of the regular files in DIR (symlinks excluded), sorted.
regular_files() { (cd "$1" && find . -maxdepth 1 -type f -printf '%f\n' | { grep -v '\.top$' || true; } | sort); }
symlinks_to_victim() { (cd "$1" && find . -maxdepth 1 -type l -lname "$VICTIM" | wc -l); }

# ======================================================================
section "MALLOC_PROF dumps and assay_write_profile, names planted"
D="$(shared dumps)"
start_stopped dumps "$D" env LD_PRELOAD="$ASSAY_LIB" \
  MALLOC_PROF="prefix=$D/p,rate=64k,interval=32m,peak=1,leak=1" \
  "$PROGS/three_sites" write alloc "$D/explicit.alloc.pb.gz" write heap "$D/explicit.heap.pb.gz" ||
  fail "three_sites did not stop before exec"
PID=$SPID
planted=0
for seq in $(seq 0 63); do
  for kind in heap alloc peak leak; do
    f="$D/p.$PID.$seq.$kind.pb.gz"
    plant "$f" "$f.tmp.$PID"
    planted=$((planted + 2))
  done
done
for f in "$D/explicit.alloc.pb.gz" "$D/explicit.heap.pb.gz"; do
  plant "$f" "$f.tmp.$PID"
  planted=$((planted + 2))
done
finish 120
if [[ $RC -eq 0 ]] && grep -qx 'three_sites: done' "$WORK/dumps.out" &&
  grep -qx 'write alloc: 0' "$WORK/dumps.out" && grep -qx 'write heap: 0' "$WORK/dumps.out"; then
  pass "three_sites (pid $PID) ran with $planted planted symlinks; both assay_write_profile calls returned 0"
else
  flunk "three_sites: status $RC, stdout: $(tr '\n' ' ' <"$WORK/dumps.out"); stderr: $(head -c 400 "$WORK/dumps.err")"
fi
check "dumps: the victim is untouched ($(victim_state | head -n 1))" victim_untouched
check "dumps: no 'cannot write' on stderr" bash -c '! grep -q "cannot write" "$1"' _ "$WORK/dumps.err"
files=$(regular_files "$D")
nheap=$(grep -Ec "^p\.$PID\.[0-9]+\.heap\.pb\.gz$" <<<"$files" || true)
nleak=$(grep -Ec "^p\.$PID\.[0-9]+\.leak\.pb\.gz$" <<<"$files" || true)
npeak=$(grep -Ec "^p\.$PID\.[0-9]+\.peak\.pb\.gz$" <<<"$files" || true)
nother=$(grep -Evc "^(p\.$PID\.[0-9]+\.(heap|leak|peak)\.pb\.gz|explicit\.(alloc|heap)\.pb\.gz)$" <<<"$files" || true)
check "dumps: interval and final heap files ($nheap, want >= 2), one leak ($nleak), peaks ($npeak, want >= 1), both explicit files, nothing else ($nother other files: no temporaries)" \
  test "$nheap" -ge 2 -a "$nleak" -eq 1 -a "$npeak" -ge 1 -a "$nother" -eq 0 \
  -a -f "$D/explicit.alloc.pb.gz" -a -f "$D/explicit.heap.pb.gz"
nwritten=$(wc -l <<<"$files")
check "dumps: every symlink at a written name was replaced, every other one left ($(symlinks_to_victim "$D") left, want $((planted - nwritten)))" \
  test "$(symlinks_to_victim "$D")" -eq $((planted - nwritten))
bad_modes=""
unreadable=""
for f in $files; do
  [[ "$(mode_of "$D/$f")" == 600 ]] || bad_modes+="$f:$(mode_of "$D/$f") "
  readable "$D/$f" || unreadable+="$f "
done
check "dumps: all $nwritten files are mode 0600 (umask 022; wrong: ${bad_modes:-none})" test -z "$bad_modes"
check "dumps: go tool pprof -top reads all $nwritten files (unreadable: ${unreadable:-none})" test -z "$unreadable"

# ======================================================================
section "debug heap leak profile (ASSAY_DEBUG=leaks), names planted"
D="$(shared debug)"
start_stopped debug_path "$D" env LD_PRELOAD="$ASSAY_LIB" ASSAY_DEBUG="leaks,leak_profile=$D/leak.pb.gz" \
  "$DEBUG_ERRORS" leak || fail "debug_errors did not stop before exec"
plant "$D/leak.pb.gz" "$D/leak.pb.gz.tmp.$SPID"
finish 60
check "leak_profile=PATH: status $RC (want 0), 'leak profile written to' on stderr" \
  grep -q "leak profile written to $D/leak.pb.gz" "$WORK/debug_path.err"
check "leak_profile=PATH: the victim is untouched" victim_untouched
check "leak_profile=PATH: a regular file pprof reads" readable "$D/leak.pb.gz"
check "leak_profile=PATH: mode 0600 ($(mode_of "$D/leak.pb.gz"))" test "$(mode_of "$D/leak.pb.gz")" == 600
check "leak_profile=PATH: no other file ($(regular_files "$D" | tr '\n' ' '))" \
  test "$(regular_files "$D")" == leak.pb.gz

start_stopped debug_default "$D" env LD_PRELOAD="$ASSAY_LIB" ASSAY_DEBUG=leaks "$DEBUG_ERRORS" leak ||
  fail "debug_errors did not stop before exec"
f="$D/assay.$SPID.leak.pb.gz"
plant "$f" "$f.tmp.$SPID"
finish 60
check "default leak profile ./assay.$SPID.leak.pb.gz written (status $RC)" \
  grep -q "leak profile written to assay.$SPID.leak.pb.gz" "$WORK/debug_default.err"
check "default leak profile: the victim is untouched" victim_untouched
check "default leak profile: a regular file pprof reads" readable "$f"
check "default leak profile: mode 0600 ($(mode_of "$f"))" test "$(mode_of "$f")" == 600

# ======================================================================
section "assay merge -o, names planted"
D="$(shared merge)"
# The input: a heap profile written where nothing was planted.
mkdir -p "$WORK/src"
(cd "$WORK/src" && exec timeout -k 5 60 env LD_PRELOAD="$ASSAY_LIB" MALLOC_PROF="prefix=$WORK/src/p" \
  "$PROGS/prof_modes" basic) >"$WORK/src.out" 2>"$WORK/src.err" </dev/null || true
SRC=$(find "$WORK/src" -maxdepth 1 -type f -name "p.*.0.heap.pb.gz" | head -n 1)
[[ -n "$SRC" ]] || flunk "merge: no input profile written by prof_modes basic ($(head -c 300 "$WORK/src.err"))"
OUT="$D/merged.pb.gz"
start_stopped merge "$D" "$ASSAY" merge -o "$OUT" "$SRC" "$SRC" || fail "assay did not stop before exec"
plant "$OUT" "$OUT.tmp.$SPID"
finish 60
check "merge: status $RC (want 0), 'wrote $OUT'" grep -q "^wrote $OUT:" "$WORK/merge.out"
check "merge: the victim is untouched" victim_untouched
check "merge: the output is a regular file pprof reads" readable "$OUT"
check "merge: mode 0600 ($(mode_of "$OUT"))" test "$(mode_of "$OUT")" == 600
check "merge: assay top reads it" bash -c '"$1" top "$2" >/dev/null' _ "$ASSAY" "$OUT"
check "merge: no other file ($(regular_files "$D" | tr '\n' ' '))" test "$(regular_files "$D")" == merged.pb.gz

# ======================================================================
section "modes whatever the umask: files 0600, created prefix directories 0700"
for u in 000 022 077; do
  base="$WORK/umask$u"
  mkdir -p "$base"
  chmod 755 "$base"
  RC=0
  (umask "$u" && cd "$base" && exec timeout -k 5 60 env ASSAY_LIB="$ASSAY_LIB" "$ASSAY" run \
    --prefix "$base/new/sub/p" --leak -- "$PROGS/prof_modes" basic) >"$WORK/run$u.out" 2>"$WORK/run$u.err" ||
    RC=$?
  files=$(regular_files "$base/new/sub")
  nfiles=$(grep -c . <<<"$files" || true)
  modes=$(for f in $files; do mode_of "$base/new/sub/$f"; done | sort -u | tr '\n' ' ')
  check "umask $u: assay run wrote heap and leak profiles ($nfiles files, status $RC), all mode 0600 ($modes)" \
    test "$RC" -eq 0 -a "$nfiles" -eq 2 -a "$modes" == "600 "
  check "umask $u: --prefix directories created 0700 (new: $(mode_of "$base/new"), new/sub: $(mode_of "$base/new/sub")), the existing one kept ($(mode_of "$base"))" \
    test "$(mode_of "$base/new")" == 700 -a "$(mode_of "$base/new/sub")" == 700 -a "$(mode_of "$base")" == 755
  heap=$(ls "$base"/new/sub/p.*.heap.pb.gz 2>/dev/null | head -n 1 || true)
  RC=0
  (umask "$u" && exec "$ASSAY" merge -o "$base/merged.pb.gz" "$heap") >/dev/null 2>"$WORK/merge$u.err" || RC=$?
  check "umask $u: assay merge -o output mode 0600 ($(mode_of "$base/merged.pb.gz" 2>/dev/null), status $RC)" \
    test "$RC" -eq 0 -a "$(mode_of "$base/merged.pb.gz")" == 600
done

echo
if ((n_fail > 0)); then
  echo "FAILED $n_fail of $((n_pass + n_fail)) checks:"
  printf '  %s\n' "${failures[@]}"
  exit 1
fi
echo "all $n_pass checks passed"
