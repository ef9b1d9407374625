#!/usr/bin/env bash
# `cmake --install` into a temporary prefix P, then, from outside the source
# tree, everything a user of the installed assay does:
#   - the files are where tools/package/install.cmake says (soname links, plugin in
#     lib/assay/, headers, pc and CMake files, assay, assay-trace, man pages);
#   - a C and a C++ program built with pkg-config (assay: shared; assay-static:
#     whole archive) and with find_package(assay) (assay::assay and
#     assay::assay_static) print assay_version() and write a heap profile that
#     the installed `assay top` reads, naming the program's allocating function;
#   - python3 under LD_PRELOAD=P/lib/libassay.so writes a profile (the
#     plugin loaded from P/lib/assay/), and `P/bin/assay run` (no ASSAY_LIB)
#     preloads P's library;
#   - gdb loads the walker with one `source P/share/assay/gdb/assay.py`.
# Usage: bash install_tree.sh BUILD/libassay.so BUILD
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh" "$@"
[[ $# -ge 2 && -f "$2/CMakeCache.txt" ]] || fail "usage: bash $0 libassay.so BUILD_DIR"
build="$(realpath "$2")"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
require cmake pkg-config cc c++ gdb python3 readelf ninja man
unset ASSAY_LIB MALLOC_PROF ASSAY_OPTIONS ASSAY_DEBUG

P="$WORK/prefix"
cmake --install "$build" --prefix "$P" >"$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log" >&2; fail "cmake --install failed"; }
echo "  ok: installed into $P ($(find "$P" -type f | wc -l) files)"

# The version every check below expects comes from the pc file, not from the library.
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
version="$(pkg-config --modversion assay)" || fail "pkg-config does not find assay.pc in $PKG_CONFIG_PATH"
major="${version%%.*}"

# ---- 1. The files.
for f in "lib/libassay.so.$version" lib/libassay.a lib/assay/libassay_pprof.so \
         include/assay/assay.h include/assay/profiler.hpp include/assay/cache.h \
         lib/pkgconfig/assay.pc lib/pkgconfig/assay-static.pc \
         lib/cmake/assay/assayConfig.cmake lib/cmake/assay/assayConfigVersion.cmake \
         lib/cmake/assay/assayTargets.cmake bin/assay bin/assay-trace \
         share/assay/probes/assay.bt share/assay/gdb/assay.py share/assay/gdb/assay_gdb/layout_fields.py \
         share/man/man1/assay.1.gz share/man/man7/assay.7.gz; do
  [[ -f "$P/$f" ]] || fail "not installed: $f"
done
[[ "$(readlink "$P/lib/libassay.so")" == "libassay.so.$major" ]] || fail "libassay.so does not link to libassay.so.$major"
[[ "$(readlink "$P/lib/libassay.so.$major")" == "libassay.so.$version" ]] ||
  fail "libassay.so.$major does not link to libassay.so.$version"
soname="$(readelf -d "$P/lib/libassay.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[[ "$soname" == "libassay.so.$major" ]] || fail "soname is '$soname', not libassay.so.$major"
[[ ! -e "$P/lib/libassay_pprof.so" ]] || fail "the plugin is on the linker's path (lib/), not only in lib/assay/"
if readelf -d "$P/lib/libassay.so.$version" "$P/bin/assay" | grep 'R\(UN\)\?PATH' >/dev/null; then
  fail "an installed binary keeps the build tree's RPATH"
fi
for page in 1 7; do
  MANPATH="$P/share/man" man -w "$page" assay | grep "^$P/share/man/man$page/assay.$page.gz$" >/dev/null ||
    fail "man -w $page assay does not find the installed page"
  warnings="$(MANWIDTH=80 man --warnings -l "$P/share/man/man$page/assay.$page.gz" 2>&1 >/dev/null)"
  [[ -z "$warnings" ]] || fail "assay.$page has roff warnings: $warnings"
done
echo "  ok: files, soname libassay.so.$major, links, man pages"

# ---- 2. Programs built against it, outside the source tree.
src="$WORK/consumer"
mkdir -p "$src"
cp "$here/consumer.c" "$here/consumer.cc" "$src/"
cp "$here/CMakeLists.txt.consumer" "$src/CMakeLists.txt"
cd "$WORK"
cc -O1 -o "$WORK/pc_c_shared" "$src/consumer.c" $(pkg-config --cflags --libs assay) -Wl,-rpath,"$P/lib" ||
  fail "cc with pkg-config assay failed"
c++ -std=c++20 -O1 -o "$WORK/pc_cc_shared" "$src/consumer.cc" $(pkg-config --cflags --libs assay) \
  -Wl,-rpath,"$P/lib" || fail "c++ with pkg-config assay failed"
cc -O1 -o "$WORK/pc_c_static" "$src/consumer.c" $(pkg-config --cflags --libs assay-static) ||
  fail "cc with pkg-config assay-static failed"
c++ -std=c++20 -O1 -o "$WORK/pc_cc_static" "$src/consumer.cc" $(pkg-config --cflags --libs assay-static) ||
  fail "c++ with pkg-config assay-static failed"
cmake -S "$src" -B "$WORK/cb" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$P" \
  >"$WORK/cmake.log" 2>&1 || { cat "$WORK/cmake.log" >&2; fail "find_package(assay) project: configure failed"; }
cmake --build "$WORK/cb" >"$WORK/cbuild.log" 2>&1 ||
  { cat "$WORK/cbuild.log" >&2; fail "find_package(assay) project: build failed"; }
echo "  ok: built with pkg-config (assay, assay-static) and find_package(assay)"

# check_program NAME BINARY SITE [linked]: runs it, checks the version line
# and that `P/bin/assay top` of its profile names SITE; "shared" programs
# must map P's libassay.so, static ones none.
check_program() {
  local name="$1" bin="$2" site="$3" link="$4" out="$WORK/$1.out" prof="$WORK/$1.heap.pb.gz"
  MALLOC_PROF=rate=1,final=0 "$bin" "$prof" >"$out" 2>"$WORK/$name.err" ||
    { cat "$WORK/$name.err" >&2; fail "$name exited with status $?"; }
  [[ "$(head -n1 "$out")" == "assay $version" ]] || fail "$name printed '$(head -n1 "$out")', not 'assay $version'"
  "$P/bin/assay" top -n 5 "$prof" >"$WORK/$name.top" 2>&1 || { cat "$WORK/$name.top" >&2; fail "assay top $name's profile failed"; }
  grep -q "$site" "$WORK/$name.top" || { cat "$WORK/$name.top" >&2; fail "assay top of $name's profile does not name $site"; }
  local needs
  needs="$(readelf -d "$bin" | grep -c 'NEEDED.*libassay' || true)"
  if [[ "$link" == shared ]]; then
    [[ "$needs" == 1 ]] || fail "$name does not link libassay.so dynamically"
    ldd "$bin" | grep "libassay.so.$major => $P/lib/libassay.so.$major" >/dev/null || fail "$name does not resolve libassay from $P"
  else
    [[ "$needs" == 0 ]] || fail "$name links libassay.so, not the static archive"
  fi
  echo "  ok: $name: assay $version, its profile's top names $site"
}
check_program pc_c_shared "$WORK/pc_c_shared" consumer_c_site shared
check_program pc_cc_shared "$WORK/pc_cc_shared" consumer_cc_site shared
check_program pc_c_static "$WORK/pc_c_static" consumer_c_site static
check_program pc_cc_static "$WORK/pc_cc_static" consumer_cc_site static
for t in c_shared cc_shared c_static cc_static; do
  check_program "cmake_$t" "$WORK/cb/consumer_$t" "consumer_${t%%_*}_site" "${t#*_}"
done

# ---- 3. A stock program under LD_PRELOAD, and `assay run` without ASSAY_LIB.
py='import sys; x = [bytes(1000 + i % 50) for i in range(20000)]; print(sum(map(len, x)))'
expect="$(env -u LD_PRELOAD python3 -c "$py")"
mkdir -p "$WORK/pre"
got="$(MALLOC_PROF=rate=4k,prefix="$WORK/pre/py" LD_PRELOAD="$P/lib/libassay.so" python3 -c "$py")" ||
  fail "python3 under LD_PRELOAD=$P/lib/libassay.so failed"
[[ "$got" == "$expect" ]] || fail "python3 printed '$got' under assay, '$expect' without"

prof="$(ls "$WORK"/pre/py.*.heap.pb.gz 2>/dev/null | head -n1)"
[[ -n "$prof" ]] || fail "python3 under LD_PRELOAD wrote no heap profile (the plugin in $P/lib/assay/ not loaded?)"
"$P/bin/assay" top "$prof" >"$WORK/py.top" 2>&1 || fail "assay top of python3's profile failed"
grep -q 'flat%' "$WORK/py.top" || fail "assay top of python3's profile printed no table"
echo "  ok: python3 under LD_PRELOAD=$P/lib/libassay.so: same output, profile read by assay top"

maps='import sys; print("".join(sorted({l.split()[-1] + "\n" for l in open("/proc/self/maps") if "libassay" in l})), end="")'
mkdir -p "$WORK/run"
(cd "$WORK/run" && env -u ASSAY_LIB "$P/bin/assay" run --rate 4k --prefix "$WORK/run/p" -- python3 -c "$maps") \
  >"$WORK/run.out" 2>"$WORK/run.err" || { cat "$WORK/run.err" >&2; fail "$P/bin/assay run failed"; }
[[ "$(cat "$WORK/run.out")" == "$(realpath "$P/lib/libassay.so.$version")" ]] ||
  fail "assay run mapped '$(cat "$WORK/run.out")', not $P's libassay.so.$version"
prof="$(ls "$WORK"/run/p.*.heap.pb.gz 2>/dev/null | head -n1)"
[[ -n "$prof" ]] || { cat "$WORK/run.err" >&2; fail "assay run wrote no heap profile"; }
# The command may run several processes (python3 can be a pyenv shell
# script): assay run names the newest of their profiles, which is one of them.
named="$(sed -n 's/^ *assay top \(.*\.heap\.pb\.gz\)$/\1/p' "$WORK/run.err" | sed -n 1p)"
[[ -n "$named" && -f "$named" && "$named" == "$WORK"/run/p.*.heap.pb.gz ]] ||
  fail "assay run did not name a profile it wrote ('$named')"
"$P/bin/assay" top "$prof" >/dev/null 2>&1 || fail "assay top of assay run's profile failed"
echo "  ok: $P/bin/assay run preloads $P/lib/libassay.so.$major; assay top reads its profile"

# ---- 4. gdb: one `source` line from the installed path.
gdb -batch -nx -ex "source $P/share/assay/gdb/assay.py" -ex 'break assay_write_profile' \
  -ex run -ex 'heap stats' --args "$WORK/pc_c_shared" "$WORK/gdb.pb.gz" >"$WORK/gdb.out" 2>&1 ||
  true  # the status of -batch is the last command's; the output is what is checked
grep -q '^Heap: [0-9,]* allocs' "$WORK/gdb.out" || { tail -n 20 "$WORK/gdb.out" >&2; fail "heap stats from the installed gdb walker printed no Heap: line"; }
# The 512 blocks of 4000 bytes consumer_c_site keeps live (class 4096).
allocs="$(sed -n 's/^ *4096 bytes \* *\([0-9,]*\) allocs.*/\1/p' "$WORK/gdb.out" | tr -d ,)"
[[ -n "$allocs" && "$allocs" -ge 512 ]] || { cat "$WORK/gdb.out" >&2; fail "heap stats shows ${allocs:-no} 4096-byte blocks, not the program's 512"; }
echo "  ok: gdb sources $P/share/assay/gdb/assay.py; heap stats sees the 512 live 4000-byte blocks"

# ---- 5. assay-trace finds the installed library and script.
if command -v bpftrace >/dev/null; then
  "$P/bin/assay-trace" --list 2>&1 | grep ':assay:sample$' >/dev/null || fail "$P/bin/assay-trace --list lists no assay:sample probe"
  echo "  ok: $P/bin/assay-trace --list finds the installed library's probes"
else
  fail "bpftrace is not installed; run tools/setup"
fi
echo "PASS"
