# shellcheck shell=bash
# Shared helpers for the integration tests; sourced by each *.sh here as
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
# with the path of the build tree's libassay.so as the first argument.
#
# Provides:
#   ASSAY_LIB           absolute path of libassay.so
#   WORK                a private temp dir, removed on exit (kept if ASSAY_IT_KEEP is set)
#   fail MSG...         prints "FAIL: MSG" and exits 1
#   require PROG...     fails (telling to run tools/setup) if a program is missing
#   run_both NAME CMD...
#       runs CMD once with the system allocator and once with LD_PRELOAD=$ASSAY_LIB
#       and fails unless stdout, stderr and the exit status are identical. Any
#       argument containing @MODE@ has it replaced by "sys" or "assay", so the
#       two runs can use separate files.
#   check WHAT CMD...   runs CMD: "  ok: WHAT" (pass) or "  FAIL: WHAT" (flunk);
#                       every check runs, n_pass and n_fail count them and
#                       failures[] holds the failed ones for the script's summary
#   section TITLE       prints "== TITLE"
set -euo pipefail

it_name="$(basename "$0" .sh)"

fail() {
  echo "FAIL [$it_name]: $*" >&2
  exit 1
}

if [[ $# -lt 1 || -z "$1" ]]; then
  fail "usage: bash $0 /path/to/libassay.so"
fi
[[ -f "$1" ]] || fail "libassay.so not found at '$1' (build it first: tools/build)"
ASSAY_LIB="$(realpath "$1")"
shift

require() {
  local p
  for p in "$@"; do
    if ! command -v "$p" >/dev/null 2>&1; then
      fail "required program '$p' is not installed; run tools/setup (as root) to install the project's packages"
    fi
  done
}

require mktemp realpath cmp diff sha256sum head env
WORK="$(mktemp -d "${TMPDIR:-/tmp}/assay-it-$it_name.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
[[ -n "${ASSAY_IT_KEEP:-}" ]] && trap 'echo "kept $WORK" >&2' EXIT

# Runs "$@" with @MODE@ replaced by $1 (which is consumed).
_run_mode() {
  local mode="$1"
  shift
  local args=() a
  for a in "$@"; do
    args+=("${a//@MODE@/$mode}")
  done
  if [[ "$mode" == assay ]]; then
    env LD_PRELOAD="$ASSAY_LIB" "${args[@]}"
  else
    env -u LD_PRELOAD "${args[@]}"
  fi
}

_describe() {  # file: size and checksum
  printf '%s bytes, sha256 %s' "$(wc -c <"$1")" "$(sha256sum <"$1" | cut -c1-16)"
}

run_both() {
  local name="$1"
  shift
  local base="$WORK/$name"
  local rc_sys=0 rc_assay=0
  local t0 t1 t2
  t0=${EPOCHREALTIME/./}
  _run_mode sys "$@" >"$base.sys.out" 2>"$base.sys.err" </dev/null || rc_sys=$?
  t1=${EPOCHREALTIME/./}
  _run_mode assay "$@" >"$base.assay.out" 2>"$base.assay.err" </dev/null || rc_assay=$?
  t2=${EPOCHREALTIME/./}

  local bad=0
  if [[ $rc_sys -ne $rc_assay ]]; then
    local why=""
    if [[ $rc_assay -gt 128 ]]; then why=" (killed by SIG$(kill -l $((rc_assay - 128)) 2>/dev/null || echo '?'))"; fi
    echo "  exit status differs: system malloc $rc_sys, assay $rc_assay$why" >&2
    bad=1
  fi
  local stream
  for stream in out err; do
    if ! cmp -s "$base.sys.$stream" "$base.assay.$stream"; then
      echo "  std$stream differs: system malloc $(_describe "$base.sys.$stream"); assay $(_describe "$base.assay.$stream")" >&2
      echo "  first differences (diff system assay):" >&2
      diff "$base.sys.$stream" "$base.assay.$stream" | head -n 30 | sed 's/^/    /' >&2 || true
      bad=1
    fi
  done
  if [[ $bad -ne 0 ]]; then
    echo "  stderr under assay (last lines):" >&2
    tail -n 15 "$base.assay.err" | sed 's/^/    /' >&2
    fail "$name: output under LD_PRELOAD=$ASSAY_LIB differs from the system allocator's (command: $*)"
  fi
  if [[ $rc_sys -ne 0 ]]; then
    echo "  stderr:" >&2
    tail -n 15 "$base.sys.err" | sed 's/^/    /' >&2
    fail "$name: the command itself failed (status $rc_sys) even without assay (command: $*)"
  fi
  printf '  ok: %s identical (%s lines of stdout; %d ms system malloc, %d ms assay)\n' "$name" \
    "$(wc -l <"$base.sys.out")" $(((t1 - t0) / 1000)) $(((t2 - t1) / 1000))
}

# ---- Bookkeeping for scripts whose checks all run, failures collected. ----
n_pass=0
n_fail=0
failures=()
pass() {
  n_pass=$((n_pass + 1))
  echo "  ok: $*"
}
flunk() {
  n_fail=$((n_fail + 1))
  failures+=("$*")
  echo "  FAIL: $*"
}
check() {
  local what="$1"
  shift
  if "$@"; then pass "$what"; else flunk "$what"; fi
}
section() { echo "== $*"; }
