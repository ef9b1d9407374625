#!/usr/bin/env bash
# `cpack -G DEB` of the build tree: three packages (libassayN: the library and
# its plugin; libassay-dev: headers, static library, pc and CMake files;
# assay: the command, gdb walker, bpftrace script). Checks their files
# (dpkg-deb -c) and dependencies (dpkg-deb -I): every library a packaged ELF
# file needs must come from a package the .deb depends on, as dpkg -S names
# it. Then extracts them into a scratch root (dpkg -x; nothing is installed on
# this system) and runs the extracted assay against the extracted library.
# Usage: bash deb_package.sh BUILD/libassay.so BUILD
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh" "$@"
[[ $# -ge 2 && -f "$2/CPackConfig.cmake" ]] || fail "usage: bash $0 libassay.so BUILD_DIR"
build="$(realpath "$2")"
require cpack dpkg-deb dpkg dpkg-shlibdeps readelf python3
unset ASSAY_LIB MALLOC_PROF ASSAY_OPTIONS ASSAY_DEBUG

version="$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")"
major="${version%%.*}"
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$WORK/pkg" >"$WORK/cpack.log" 2>&1 ||
  { cat "$WORK/cpack.log" >&2; fail "cpack -G DEB failed"; }
arch="$(dpkg --print-architecture)"
lib="$WORK/pkg/libassay${major}_${version}_$arch.deb"
dev="$WORK/pkg/libassay-dev_${version}_$arch.deb"
tool="$WORK/pkg/assay_${version}_$arch.deb"
for d in "$lib" "$dev" "$tool"; do [[ -f "$d" ]] || fail "cpack made no $(basename "$d") (made: $(ls "$WORK/pkg"))"; done
echo "  ok: cpack made $(cd "$WORK/pkg" && ls ./*.deb | tr '\n' ' ')"

# contains DEB PATH...: each path is in the package (as a file, link or directory).
contains() {
  local deb="$1" listing
  shift
  listing="$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||')"
  local p
  for p in "$@"; do
    grep -qxF "$p" <<<"$listing" || fail "$(basename "$deb") lacks $p"
  done
}
contains "$lib" "/usr/lib/libassay.so.$version" "/usr/lib/libassay.so.$major" \
  /usr/lib/assay/libassay_pprof.so /usr/share/man/man7/assay.7.gz
contains "$dev" /usr/lib/libassay.so /usr/lib/libassay.a /usr/include/assay/assay.h \
  /usr/include/assay/profiler.hpp /usr/include/assay/cache.h /usr/lib/pkgconfig/assay.pc \
  /usr/lib/pkgconfig/assay-static.pc /usr/lib/cmake/assay/assayConfig.cmake \
  /usr/lib/cmake/assay/assayConfigVersion.cmake /usr/lib/cmake/assay/assayTargets.cmake
contains "$tool" /usr/bin/assay /usr/bin/assay-trace /usr/share/assay/probes/assay.bt \
  /usr/share/assay/gdb/assay.py /usr/share/assay/gdb/assay_gdb/layout_fields.py \
  /usr/share/man/man1/assay.1.gz
# No file in two packages (dpkg would refuse to install the second).
all="$(for d in "$lib" "$dev" "$tool"; do dpkg-deb -c "$d" | grep -v '^d' | awk '{print $6}'; done | sort)"
dups="$(uniq -d <<<"$all")"
[[ -z "$dups" ]] || fail "files in more than one package: $dups"
echo "  ok: package contents"

field() { dpkg-deb -f "$1" "$2"; }
[[ "$(field "$lib" Package)" == "libassay$major" && "$(field "$dev" Package)" == libassay-dev &&
   "$(field "$tool" Package)" == assay ]] || fail "package names are not libassay$major, libassay-dev, assay"
grep -q "libassay$major (= $version)" <<<"$(field "$dev" Depends)" || fail "libassay-dev does not depend on libassay$major (= $version)"
grep -q "libassay$major (= $version)" <<<"$(field "$tool" Depends)" || fail "assay does not depend on libassay$major (= $version)"
for p in libprotobuf-dev zlib1g-dev; do
  grep -qw "$p" <<<"$(field "$dev" Depends)" || fail "libassay-dev does not depend on $p (libassay.a needs it)"
done
# Loaded with dlopen (profiler/unwinder.h): no NEEDED entry names it.
grep -qw libunwind8 <<<"$(field "$lib" Depends)" || fail "libassay$major does not depend on libunwind8"
dpkg-deb --ctrl-tarfile "$lib" | tar -t | grep shlibs >/dev/null || fail "libassay$major has no shlibs file"

# Every NEEDED library of every ELF file in a package: its package (dpkg -S of
# the file the dynamic linker resolves) must be in Depends.
x="$WORK/root"
for d in "$lib" "$dev" "$tool"; do dpkg -x "$d" "$x"; done
check_needed() {
  local deb="$1" depends f needed path owner
  depends="$(field "$deb" Depends)"
  local names  # the package names in Depends, one a line
  names="$(sed 's/, */\n/g; s/|/\n/g' <<<"$depends" | awk '{print $1}')"
  while read -r f; do
    [[ -f "$x$f" && ! -L "$x$f" ]] || continue
    head -c 4 "$x$f" | grep 'ELF' >/dev/null || continue
    for needed in $(readelf -d "$x$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      [[ "$needed" == libassay.so.* ]] && continue
      # Consumers read to the end (no `exit`, no head): under pipefail a
      # producer killed by SIGPIPE would fail the assignment at random.
      path="$(ldconfig -p | awk -v n="$needed" '$1 == n && $0 ~ /x86-64|64bit|x86_64/ && !found++ {print $NF}')"
      [[ -n "$path" ]] || path="$(ldconfig -p | awk -v n="$needed" '$1 == n && !found++ {print $NF}')"
      [[ -n "$path" ]] || fail "$f needs $needed, which this system does not have"
      owner=""
      local real c
      real="$(realpath "$path")"
      # dpkg knows a file by the path its package ships (merged /usr: /lib or /usr/lib).
      for c in "$path" "$real" "${real#/usr}" "/usr${real#/usr}"; do
        owner="$( (dpkg -S "$c" 2>/dev/null || true) | sed -n 1p | cut -d: -f1)"
        [[ -z "$owner" ]] || break
      done
      [[ -n "$owner" ]] || fail "no package owns $path ($needed, needed by $f)"
      grep -qxF "$owner" <<<"$names" ||
        fail "$(basename "$deb"): $f needs $needed from $owner, which Depends ($depends) lacks"
    done
  done < <(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
}
for d in "$lib" "$tool"; do check_needed "$d"; done
echo "  ok: dependencies: libassay$major: $(field "$lib" Depends)"
echo "                    assay: $(field "$tool" Depends)"

# ---- The extracted tree works: its assay finds its library (../lib) and the
# library its plugin (assay/ beside it).
mkdir -p "$WORK/run"
out="$(cd "$WORK/run" && "$x/usr/bin/assay" run --rate 4k --prefix "$WORK/run/p" -- \
  python3 -c 'import sys; x = [bytes(500) for _ in range(10000)]; print(open("/proc/self/maps").read())' \
  2>"$WORK/run.err")" || { cat "$WORK/run.err" >&2; fail "the extracted assay run failed"; }
grep -q "$x/usr/lib/libassay.so.$version" <<<"$out" || fail "the extracted assay run did not preload the extracted library"
prof="$(ls "$WORK"/run/p.*.heap.pb.gz 2>/dev/null | head -n1)"
[[ -n "$prof" ]] || { cat "$WORK/run.err" >&2; fail "no profile from the extracted library (plugin not found in usr/lib/assay/?)"; }
"$x/usr/bin/assay" top "$prof" >"$WORK/top.out" 2>&1 || { cat "$WORK/top.out" >&2; fail "the extracted assay top failed"; }
grep -q 'flat%' "$WORK/top.out" || fail "the extracted assay top printed no table"
echo "  ok: the extracted assay run preloads the extracted libassay.so.$major; its profile reads with assay top"
echo "PASS"
