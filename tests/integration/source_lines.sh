#!/usr/bin/env bash
# Source lines in profiles and reports, with the real clients: the program of
# profile_programs/source_lines.c (built -O2 -g; its allocating lines carry
# "@site-" comments, found here by grep) runs under LD_PRELOAD=libassay.so
# with MALLOC_PROF=rate=1, and
#   - `go tool pprof -list direct_site` prints the function's source with the
#     sampled bytes on the malloc line;
#   - `go tool pprof -traces -lines` shows the always_inline function's line as
#     an inline frame directly above its caller's call line, in one location;
#   - the program's mapping is [FN][FL][LN][IN];
#   - copies without debug info (strip --strip-debug: names, no files; strip:
#     nothing) have empty filenames, line 0, and no has_* flag but [FN] where
#     every location is named;
#   - `assay top` shows file:line beside each function, `assay top --lines`
#     one row per line;
#   - a double free under ASSAY_DEBUG=audit,freecheck reports file:line, the
#     inlined allocation as an extra line of its frame.
#
# Usage: bash source_lines.sh LIBASSAY_SO SOURCE_LINES_PROGRAM SOURCE_FILE ASSAY_CLI
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
[[ $# -ge 4 ]] || fail "usage: bash $0 LIBASSAY_SO PROGRAM SOURCE_FILE ASSAY_CLI"
PROG="$(realpath "$2")"
SRC="$(realpath "$3")"
ASSAY="$(realpath "$4")"
require go awk grep strip readelf timeout
export HOME="$WORK/home" PPROF_TMPDIR="$WORK/pprof-tmp" GOTOOLCHAIN=local GOFLAGS=
mkdir -p "$HOME" "$PPROF_TMPDIR"
export LC_ALL=C
# pprof trims a source path at the name of its search path (the current
# directory) when that name appears in it: run it from $WORK.
cd "$WORK"
pprof() { timeout 60 go tool pprof "$@"; }

# pass and flunk: lib.sh.

# The line of SRC holding MARKER (exactly one).
line_of() {
  local n
  n="$(grep -n -- "$1" "$SRC" | cut -d: -f1)"
  [[ "$n" =~ ^[0-9]+$ ]] || fail "marker '$1' is not on exactly one line of $SRC"
  echo "$n"
}
L_DIRECT="$(line_of '@site-direct')"
L_INLINED="$(line_of '@site-inlined')"
L_CALL_INLINED="$(line_of '@site-call-inlined')"
L_DF_ALLOC="$(line_of '@site-double-free-alloc')"
L_FIRST_FREE="$(line_of '@site-first-free')"
L_DIRECT_DECL="$(line_of '^__attribute__((noinline)) void\* direct_site')"

# profile NAME PROGRAM: runs it profiled in $WORK/NAME; prints the heap profile's path.
profile() {
  mkdir -p "$WORK/$1"
  (cd "$WORK/$1" && env LD_PRELOAD="$ASSAY_LIB" MALLOC_PROF=rate=1 "$2" >"$WORK/$1.out" 2>"$WORK/$1.err") ||
    { cat "$WORK/$1.err" >&2; fail "$1: the program failed"; }
  local f
  f="$(ls "$WORK/$1"/assay.*.heap.pb.gz 2>/dev/null | head -n 1)"
  [[ -n "$f" ]] || fail "$1: no heap profile written"
  echo "$f"
}

# raw_program_mapping RAW PROGRAM: the -raw Mappings line of PROGRAM.
raw_program_mapping() { awk -v p="$2" '/^Mappings/ { m = 1; next } m && index($0, " " p " ") { print }' "$1"; }
# raw_program_locations RAW: the -raw Locations lines (and their inline
# continuation lines) of mapping 1, the program.
raw_program_locations() {
  awk '/^Locations/ { s = 1; next } /^Mappings/ { s = 0 }
       s && /^ *[0-9]+: / { keep = / M=1 / } s && keep { print }' "$1"
}

echo "== the -g program"
prof="$(profile debug "$PROG")"
pprof -list '^direct_site$' "$prof" >"$WORK/list.txt" 2>"$WORK/list.err" ||
  { cat "$WORK/list.err" >&2; fail "go tool pprof -list failed"; }
if grep -q "ROUTINE =* direct_site in $SRC\$" "$WORK/list.txt" &&
  grep -Eq "^ +[0-9.]+[kMG]?B +[0-9.]+[kMG]?B +$L_DIRECT: +char\\* p = malloc\\(n\\); +// @site-direct\$" "$WORK/list.txt" &&
  grep -Eq "^ +\\. +\\. +$((L_DIRECT + 1)): +memset\\(p, 1, n\\);" "$WORK/list.txt"; then
  pass "pprof -list direct_site: its source, the sampled bytes on line $L_DIRECT (malloc)"
else
  sed 's/^/    /' "$WORK/list.txt" | head -n 20
  flunk "pprof -list direct_site does not show the bytes on line $L_DIRECT of $SRC"
fi

pprof -traces -lines "$prof" >"$WORK/traces.txt" 2>&1 || fail "go tool pprof -traces -lines failed"
if awk -v a="inlined_fill $SRC:$L_INLINED (inline)" -v b="calls_inlined $SRC:$L_CALL_INLINED" '
     { sub(/^ *[0-9.]+[kMG]?B +/, ""); sub(/^ +/, "") }
     prev == a && $0 == b { ok = 1 } { prev = $0 } END { exit !ok }' "$WORK/traces.txt"; then
  pass "pprof -traces -lines: inlined_fill:$L_INLINED (inline) above calls_inlined:$L_CALL_INLINED"
else
  grep -B1 -A2 inlined_fill "$WORK/traces.txt" | sed 's/^/    /' | head -n 12
  flunk "pprof -traces -lines does not show the inline frame inlined_fill:$L_INLINED over calls_inlined:$L_CALL_INLINED"
fi
pprof -top -lines "$prof" >"$WORK/top_lines.txt" 2>&1 || fail "go tool pprof -top -lines failed"
if grep -Eq " inlined_fill $SRC:$L_INLINED \\(inline\\)\$" "$WORK/top_lines.txt"; then
  pass "pprof -top -lines lists inlined_fill:$L_INLINED (inline)"
else
  flunk "pprof -top -lines has no row 'inlined_fill $SRC:$L_INLINED (inline)'"
fi

pprof -raw -symbolize=none "$prof" >"$WORK/debug.raw" 2>&1 || fail "go tool pprof -raw failed"
m="$(raw_program_mapping "$WORK/debug.raw" "$PROG")"
if [[ "$m" == *"[FN][FL][LN][IN]"* ]]; then
  pass "the program's mapping has functions, filenames, line numbers, inline frames"
else
  flunk "the program's mapping is '$m', expected [FN][FL][LN][IN]"
fi

echo "== without debug info"
mkdir -p "$WORK/bin"
strip --strip-debug -o "$WORK/bin/nodebug" "$PROG"
strip -o "$WORK/bin/stripped" "$PROG"
for kind in nodebug stripped; do
  prof="$(profile "$kind" "$WORK/bin/$kind")"
  pprof -raw -symbolize=none "$prof" >"$WORK/$kind.raw" 2>&1 || fail "go tool pprof -raw failed"
  raw_program_locations "$WORK/$kind.raw" >"$WORK/$kind.locs"
  m="$(raw_program_mapping "$WORK/$kind.raw" "$WORK/bin/$kind")"
  [[ -s "$WORK/$kind.locs" ]] || flunk "$kind: no location in the program's mapping"
  # With a function: "NAME :0 s=0" (no file, line 0); without: nothing after M=1.
  if awk '{ sub(/^ *[0-9]+: 0x[0-9a-f]+ M=1/, "") } NF > 0 && !/ :0 s=0$/ { bad = 1 } END { exit bad }' "$WORK/$kind.locs"; then
    pass "$kind: every frame of the program has an empty filename and line 0"
  else
    sed 's/^/    /' "$WORK/$kind.locs"
    flunk "$kind: a frame of the program has a filename or a line"
  fi
  if [[ "$kind" == nodebug ]]; then
    want="[FN]"
    grep -q ' direct_site :0 s=0$' "$WORK/$kind.locs" || flunk "nodebug: direct_site is not named from the symbol table"
  else
    want=""
    grep -q ' direct_site ' "$WORK/$kind.locs" && flunk "stripped: a function name with no symbol table?"
  fi
  flags="$(grep -o '\[[A-Z]*\]' <<<"$m" | tr -d '\n' || true)"
  if [[ -n "$m" && "$flags" == "$want" ]]; then
    pass "$kind: mapping flags '${want:-none}' ($m)"
  else
    flunk "$kind: the program's mapping is '$m', expected the flags '${want:-none}' only"
  fi
done

echo "== assay top"
prof="$(ls "$WORK"/debug/assay.*.heap.pb.gz | head -n 1)"
"$ASSAY" top -n 0 "$prof" >"$WORK/top.txt" || fail "assay top failed"
if grep -Eq "  direct_site $SRC:$L_DIRECT_DECL\$" "$WORK/top.txt"; then
  pass "assay top: direct_site $SRC:$L_DIRECT_DECL (where it starts)"
else
  sed 's/^/    /' "$WORK/top.txt" | head -n 20
  flunk "assay top does not show direct_site with $SRC:$L_DIRECT_DECL"
fi
"$ASSAY" top --lines -n 0 "$prof" >"$WORK/top_lines_assay.txt" || fail "assay top --lines failed"
ok=1
for row in "direct_site $SRC:$L_DIRECT" "inlined_fill $SRC:$L_INLINED" \
  "calls_inlined $SRC:$L_CALL_INLINED"; do
  grep -Fq "  $row" "$WORK/top_lines_assay.txt" || { ok=0; flunk "assay top --lines has no row '$row'"; }
done
# main calls both sites from two lines: two rows.
[[ "$(grep -c "  main $SRC:" "$WORK/top_lines_assay.txt")" -ge 2 ]] || { ok=0; flunk "assay top --lines does not split main by line"; }
# The flat bytes of the direct site's line are its function's in `assay top`.
flat_fn="$(grep -E "  direct_site $SRC:$L_DIRECT_DECL\$" "$WORK/top.txt" | awk '{ print $1 }')"
flat_ln="$(grep -F "  direct_site $SRC:$L_DIRECT" "$WORK/top_lines_assay.txt" | awk '{ print $1 }')"
[[ -n "$flat_fn" && "$flat_fn" == "$flat_ln" ]] || { ok=0; flunk "direct_site flat $flat_fn by function, $flat_ln by line"; }
((ok)) && pass "assay top --lines: one row per line (direct_site:$L_DIRECT $flat_ln, inlined_fill:$L_INLINED, main twice)"

echo "== a debug-heap report"
rc=0
env LD_PRELOAD="$ASSAY_LIB" ASSAY_DEBUG=audit,freecheck "$PROG" double_free >"$WORK/df.out" 2>"$WORK/df.err" || rc=$?
[[ $rc -eq 134 ]] || { cat "$WORK/df.err" >&2; fail "double_free: exit status $rc, expected 134 (abort)"; }
# allocated at: #0 the inlined function, its caller on the next line (same pc).
if awk -v prog="$PROG" -v src="$SRC" -v li="$L_INLINED" -v la="$L_DF_ALLOC" '
     /^  allocated at:/ { s = 1; next } /^  [a-z]/ { s = 0 }
     s && n == 0 { n = 1; a = ($0 ~ ("^    #0 0x[0-9a-f]+ inlined_fill \\(" prog "\\) at " src ":" li " \\(inlined\\)$")); pc = $2; next }
     s && n == 1 { n = 2; b = ($0 ~ ("^       0x[0-9a-f]+ double_free\\+0x[0-9a-f]+ \\(" prog "\\) at " src ":" la "$")) && $1 == pc }
     END { exit !(a && b) }' "$WORK/df.err"; then
  pass "double free: allocated at inlined_fill:$L_INLINED (inlined) in double_free:$L_DF_ALLOC"
else
  sed 's/^/    /' "$WORK/df.err"
  flunk "double free: the allocation stack does not show inlined_fill:$L_INLINED over double_free:$L_DF_ALLOC"
fi
if grep -A1 '^  freed at:' "$WORK/df.err" | grep -Eq "^    #0 0x[0-9a-f]+ double_free\\+0x[0-9a-f]+ \\($PROG\\) at $SRC:$L_FIRST_FREE\$"; then
  pass "double free: freed at double_free:$L_FIRST_FREE"
else
  flunk "double free: the first free's frame is not double_free at $SRC:$L_FIRST_FREE"
fi

if ((n_fail > 0)); then
  fail "$n_fail check(s) failed"
fi
echo "all source-line checks passed"
