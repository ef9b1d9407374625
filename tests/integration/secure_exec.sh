#!/bin/bash
# Secure execution: a setuid-root program linked with libassay.a and run by
# `nobody` ignores MALLOC_PROF, ASSAY_OPTIONS and ASSAY_DEBUG (no profile in
# a root-only directory nor a world-writable one, no stats table, not even
# an error line for a bad value), yet runs and exits 0, and its own use of
# the C++ API still writes. The same binary run by root (not setuid) obeys
# MALLOC_PROF. Usage: secure_exec.sh SECURE_PROG WORKDIR
set -u
PROG="$1"
WORKDIR="$2"  # under the build tree: /tmp may be mounted nosuid

fail() { echo "FAIL: secure_exec: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || fail "must run as root (it installs a setuid-root binary); the suite runs as root"
if command -v setpriv >/dev/null; then
  as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
elif command -v su >/dev/null; then
  as_nobody() { su -s /bin/sh nobody -c "$(printf '%q ' "$@")"; }
else
  echo "SKIPPED: secure_exec: neither setpriv nor su exists: secure execution NOT TESTED" >&2
  exit 77  # ctest: Not Run (skipped), never Passed
fi

WORK="$WORKDIR/secure_exec.$$"
rm -rf "$WORK"
mkdir -p "$WORK" || fail "cannot create $WORK"
trap 'rm -rf "$WORK"' EXIT
chmod 0755 "$WORK"
findmnt -n -o OPTIONS -T "$WORK" | grep -qw nosuid && fail "$WORK is on a nosuid mount"

BIN="$WORK/bin"
mkdir "$BIN" && chmod 0755 "$BIN"
cp "$PROG" "$BIN/prog" || fail "cannot copy $PROG"
chown root:root "$BIN/prog" && chmod 4755 "$BIN/prog" || fail "cannot make the copy setuid root"

SECRET="$WORK/secret"  # root only
mkdir "$SECRET" && chmod 0700 "$SECRET"
OPEN="$WORK/open"      # world-writable, sticky
mkdir "$OPEN" && chmod 1777 "$OPEN"
# nobody must be able to reach the binary and the open directory.
as_nobody test -x "$BIN/prog" || fail "nobody cannot run $BIN/prog"

count_files() { find "$1" -type f | wc -l; }

# 1. Setuid, run by nobody, with every variable set.
for prefix in "$SECRET/pwn" "$OPEN/pwn"; do
  # env runs after the drop to nobody: the variables reach the setuid exec.
  out="$(as_nobody env MALLOC_PROF="rate=1k,prefix=$prefix,period=1,leak=1" \
    ASSAY_OPTIONS="stats_at_exit=1,bogus_key=1" ASSAY_DEBUG="bogus_key" \
    "$BIN/prog" 2>"$WORK/err")"
  rc=$?
  [[ $rc == 0 ]] || fail "setuid run exited $rc: $(cat "$WORK/err")"
  grep -qx 'AT_SECURE=1' <<<"$out" || fail "AT_SECURE was not set (got: $out): the test proves nothing"
  grep -qx 'done' <<<"$out" || fail "the program did not finish: $out"
  [[ $(count_files "$SECRET") == 0 ]] || fail "files appeared in the root-only directory: $(ls -l "$SECRET")"
  [[ $(count_files "$OPEN") == 0 ]] || fail "files appeared in the world-writable directory: $(ls -l "$OPEN")"
  [[ ! -s "$WORK/err" ]] || fail "the setuid run wrote to stderr (an environment variable was read): $(head -c 400 "$WORK/err")"
done
echo "  ok: setuid run by nobody with AT_SECURE=1: MALLOC_PROF, ASSAY_OPTIONS, ASSAY_DEBUG ignored, exit 0"

# 2. The C++ API still works for the setuid program itself.
out="$(as_nobody env MALLOC_PROF="prefix=$OPEN/pwn" \
  "$BIN/prog" api "$SECRET/own.heap.pb.gz" 2>"$WORK/err")" ||
  fail "setuid api run failed: $out $(cat "$WORK/err")"
grep -qx 'AT_SECURE=1' <<<"$out" || fail "AT_SECURE not set in the api run: $out"
[[ -s "$SECRET/own.heap.pb.gz" ]] || fail "the program's own WriteProfile wrote nothing: $out"
[[ $(stat -c %a "$SECRET/own.heap.pb.gz") == 600 ]] || fail "own profile mode $(stat -c %a "$SECRET/own.heap.pb.gz")"
[[ $(count_files "$OPEN") == 0 ]] || fail "MALLOC_PROF wrote in the api run: $(ls -l "$OPEN")"
rm -f "$SECRET/own.heap.pb.gz"
echo "  ok: the setuid program's own WriteProfile writes (0600); MALLOC_PROF still ignored"

# 3. Control: the same binary, not setuid, run by root: MALLOC_PROF obeyed,
# mode= applied, and the bad ASSAY_OPTIONS key reported.
chmod 0755 "$BIN/prog"
out="$(env MALLOC_PROF="rate=1k,prefix=$SECRET/pwn,mode=0640" ASSAY_OPTIONS="bogus_key=1" \
  "$BIN/prog" 2>"$WORK/err")" || fail "plain run failed: $(cat "$WORK/err")"
grep -qx 'AT_SECURE=0' <<<"$out" || fail "AT_SECURE set in the plain run: $out"
files=("$SECRET"/pwn.*.heap.pb.gz)
[[ -s "${files[0]}" ]] || fail "the plain run wrote no profile in $SECRET: $(ls -l "$SECRET")"
[[ $(stat -c %a "${files[0]}") == 640 ]] || fail "mode=0640 gave $(stat -c %a "${files[0]}")"
grep -q "ASSAY_OPTIONS: unknown key 'bogus_key'" "$WORK/err" || fail "no error line for the bad key: $(cat "$WORK/err")"
echo "  ok: not setuid, as root: MALLOC_PROF wrote ${files[0]##*/} with mode 0640"

echo "PASS: secure_exec"
