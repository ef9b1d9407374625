#!/usr/bin/env bash
# The tree builds with the Makefile generator too (Debug, from a build
# directory outside the source tree): only the libraries and the assay command,
# to keep it short. Their files and links are checked, and they work:
# ls under LD_PRELOAD prints what it prints on glibc and writes a profile
# (the plugin found beside libassay.so), which the built `assay top` reads;
# `assay run` of `true` finds libassay.so beside itself.
# Usage: bash makefile_build.sh SOURCE_DIR
set -euo pipefail
fail() { echo "FAIL [makefile_build]: $*" >&2; exit 1; }
[[ $# -ge 1 && -f "$1/CMakeLists.txt" ]] || fail "usage: bash $0 SOURCE_DIR"
src="$(realpath "$1")"
for p in cmake make readelf; do
  command -v "$p" >/dev/null || fail "'$p' is not installed; run tools/setup"
done
WORK="$(mktemp -d "${TMPDIR:-/tmp}/assay-make.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
unset ASSAY_LIB MALLOC_PROF ASSAY_OPTIONS ASSAY_DEBUG LD_PRELOAD
b="$WORK/build"

t0=$SECONDS
cmake -S "$src" -B "$b" -G "Unix Makefiles" -DCMAKE_BUILD_TYPE=Debug -DASSAY_BUILD_TESTS=OFF \
  >"$WORK/configure.log" 2>&1 || { cat "$WORK/configure.log" >&2; fail "configure failed"; }
make -C "$b" -j2 assay_shared assay assay_pprof assay_cli >"$WORK/make.log" 2>&1 ||
  { tail -n 40 "$WORK/make.log" >&2; fail "make failed"; }
echo "  ok: configured and built with Unix Makefiles, Debug, in $((SECONDS - t0)) s"

version="$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$b/CMakeCache.txt")"
major="${version%%.*}"
[[ -n "$version" ]] || fail "no project version in CMakeCache.txt"
for f in "libassay.so.$version" libassay.a libassay_pprof.so assay; do
  [[ -f "$b/$f" ]] || fail "not built: $f"
done
[[ "$(readlink "$b/libassay.so")" == "libassay.so.$major" && "$(readlink "$b/libassay.so.$major")" == "libassay.so.$version" ]] ||
  fail "libassay.so links are not libassay.so -> libassay.so.$major -> libassay.so.$version"
readelf -d "$b/libassay.so" | grep "(SONAME).*\[libassay.so.$major\]" >/dev/null || fail "no soname libassay.so.$major"
grep -q -- '-Werror' "$b/CMakeFiles/assay_core.dir/flags.make" || fail "the Debug build lost -Werror"

cd "$WORK"
expect="$(ls -la /usr/lib)"
got="$(MALLOC_PROF=rate=1k,prefix="$WORK/ls" LD_PRELOAD="$b/libassay.so" ls -la /usr/lib)" || fail "ls under LD_PRELOAD failed"
[[ "$got" == "$expect" ]] || fail "ls -la /usr/lib prints differently under LD_PRELOAD=$b/libassay.so"
maps="$(LD_PRELOAD="$b/libassay.so" cat /proc/self/maps)"
grep -q "$b/libassay.so.$version" <<<"$maps" || fail "cat under LD_PRELOAD does not map $b/libassay.so.$version"
LD_PRELOAD="$b/libassay.so" true || fail "true under LD_PRELOAD failed"
prof="$(ls "$WORK"/ls.*.heap.pb.gz 2>/dev/null | head -n1)"
[[ -n "$prof" ]] || fail "ls under LD_PRELOAD with MALLOC_PROF wrote no heap profile"
"$b/assay" top "$prof" >"$WORK/top.out" 2>&1 || { cat "$WORK/top.out" >&2; fail "assay top failed"; }
grep -q 'flat%' "$WORK/top.out" || fail "assay top printed no table"
"$b/assay" run --prefix "$WORK/run/t" -- true 2>"$WORK/run.err" || { cat "$WORK/run.err" >&2; fail "assay run -- true failed"; }
echo "  ok: ls and true under LD_PRELOAD (same output, a profile), assay top, assay run"
echo "PASS"
