#!/usr/bin/env bash
# The gdb walker's one list of the layout descriptor's fields: the build
# generates <build>/tools/gdb/assay_gdb/layout_fields.py from base/layout.h
# (tools/gdb/gen_layout_fields.py). This test checks that
#   - the generated list is the compiled struct AssayLayout of libassay.so, as
#     gdb's `ptype /o` reads it from the library's debug info: the same names
#     in order, each a uint64_t of 8 bytes at 8 * index, and the total size;
#   - the walker sourced from the source tree (which parses base/layout.h when
#     loaded), from the build tree and from an install moved elsewhere (and
#     through a symlink to its assay.py) loads the same list and defines the
#     `heap` commands; the install finds its own profile_pb2.py;
#   - the generator refuses a field that is not a uint64_t, and the generated
#     static_asserts do not compile when the parsed list (one field more, two
#     fields swapped) is not the struct, while the real list's do.
#
# Usage: gdb_layout_fields.sh LIBASSAY_SO BUILD_DIR SOURCE_DIR CXX
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
shift
[[ $# -eq 3 ]] || fail "usage: gdb_layout_fields.sh LIBASSAY_SO BUILD_DIR SOURCE_DIR CXX"
BUILD="$(realpath "$1")"
SRC="$(realpath "$2")"
CXX="$3"
GEN="$SRC/tools/gdb/gen_layout_fields.py"
GENERATED="$BUILD/tools/gdb/assay_gdb/layout_fields.py"
[[ -f "$GENERATED" ]] || fail "$GENERATED not found (the build generates it: tools/build)"
require gdb cmake python3 awk diff

expect_same() {  # expect_same WHAT FILE_GOT FILE_WANT
  diff "$2" "$3" >"$WORK/diff.txt" || { sed 's/^/    /' "$WORK/diff.txt" >&2; fail "$1 differ"; }
  echo "  ok: $1 ($(wc -l <"$3") lines)"
}

# fields_of SCRIPT OUT: the field list the walker sourced from SCRIPT uses, one
# per line, then `magic M`, `version V`; fails unless `heap` is defined.
fields_of() {
  gdb -batch -nx -ex "source $1" \
    -ex 'python import assay_gdb.layout as l; print("\n".join(l.FIELDS)); print("magic 0x%x" % l.LAYOUT_MAGIC); print("version %d" % l.WALKER_LAYOUT_VERSION)' \
    -ex 'help heap stats' </dev/null >"$2" 2>"$2.err" || fail "gdb on $1: $(head -n 5 "$2.err")"
  grep -q 'Python Exception\|Traceback' "$2" "$2.err" && fail "sourcing $1 raised: $(head -n 5 "$2.err")"
  grep -q '^Live blocks by size: heap stats \[SIZE\]$' "$2" || fail "sourcing $1 did not define 'heap stats'"
  sed -i '/^Live blocks by size/d' "$2"
}

# ---- 1. The generated list against the compiled struct (DWARF of libassay.so).
echo "== generated list vs ptype /o struct AssayLayout"
gdb -batch -nx -ex 'ptype /o struct AssayLayout' "$ASSAY_LIB" >"$WORK/ptype.txt" 2>&1 ||
  fail "gdb ptype: $(head -n 3 "$WORK/ptype.txt")"
# Member lines: /*  OFFSET  |  SIZE */  TYPE NAME;   -> "OFFSET SIZE TYPE NAME"
awk '/^\/\* *[0-9]+ *\| *[0-9]+ \*\/ / { gsub(/[\/*|;]/, " "); print $1, $2, $3, $4 }' \
  "$WORK/ptype.txt" >"$WORK/dwarf.txt"
total="$(sed -n 's/.*total size (bytes): *\([0-9]*\).*/\1/p' "$WORK/ptype.txt")"
[[ -n "$total" && -s "$WORK/dwarf.txt" ]] || fail "no struct AssayLayout in $ASSAY_LIB's debug info: $(head -n 3 "$WORK/ptype.txt")"
fields_of "$BUILD/tools/gdb/assay.py" "$WORK/build.fields"
grep -v '^magic 0x\|^version ' "$WORK/build.fields" |
  awk '{ print 8 * (NR - 1), 8, "uint64_t", $1 }' >"$WORK/want.txt"
expect_same "generated fields (offset size type name) and the DWARF struct" "$WORK/dwarf.txt" "$WORK/want.txt"
n="$(wc -l <"$WORK/want.txt")"
[[ "$total" -eq $((8 * n)) ]] || fail "struct AssayLayout is $total bytes, the $n generated fields $((8 * n))"
echo "  ok: sizeof(AssayLayout) = $total = 8 x $n fields"
grep -qx 'magic 0x4c59414c59415341' "$WORK/build.fields" || fail "generated magic: $(grep '^magic' "$WORK/build.fields")"
version="$(sed -n 's/^#define ASSAY_LAYOUT_VERSION \([0-9]*\)$/\1/p' "$SRC/base/layout.h")"
grep -qx "version $version" "$WORK/build.fields" || fail "generated version: $(grep '^version' "$WORK/build.fields"), header $version"
echo "  ok: magic and version $version are the header's"

# ---- 2. The same list wherever the walker is sourced from.
echo "== sourced from the source tree, an install moved elsewhere, a symlink"
fields_of "$SRC/tools/gdb/assay.py" "$WORK/src.fields"
expect_same "fields parsed by the source tree's walker and generated ones" "$WORK/src.fields" "$WORK/build.fields"
cmake --install "$BUILD" --prefix "$WORK/prefix" --component gdb >"$WORK/install.log" 2>&1 ||
  fail "cmake --install --component gdb: $(tail -n 3 "$WORK/install.log")"
mv "$WORK/prefix" "$WORK/moved"
INSTALLED="$WORK/moved/share/assay/gdb/assay.py"
[[ -f "$INSTALLED" && -f "$WORK/moved/share/assay/gdb/assay_gdb/layout_fields.py" ]] ||
  fail "the install has no assay.py or assay_gdb/layout_fields.py: $(find "$WORK/moved" -type f | head)"
fields_of "$INSTALLED" "$WORK/inst.fields"
expect_same "fields of the moved install and of the build tree" "$WORK/inst.fields" "$WORK/build.fields"
mkdir -p "$WORK/elsewhere"
ln -s "$INSTALLED" "$WORK/elsewhere/assay.py"
fields_of "$WORK/elsewhere/assay.py" "$WORK/link.fields"
expect_same "fields through a symlink to the installed assay.py" "$WORK/link.fields" "$WORK/build.fields"
# The install is whole: its package's profile_pb2.py, not the build tree's.
env -u ASSAY_PROTO_PY -u ASSAY_BUILD_DIR gdb -batch -nx -ex "source $INSTALLED" \
  -ex 'python import assay_gdb.pprof as p; print("pb2 " + p.load_profile_pb2().__file__)' \
  -ex 'python import assay_gdb.layout as l; print("layout " + l.__file__)' </dev/null >"$WORK/inst.pb2" 2>&1 ||
  fail "loading profile_pb2 from the install: $(tail -n 3 "$WORK/inst.pb2")"
grep -qx "pb2 $WORK/moved/share/assay/gdb/assay_gdb/profile_pb2.py" "$WORK/inst.pb2" ||
  fail "the install's walker loads $(grep '^pb2' "$WORK/inst.pb2"), not its own profile_pb2.py"
grep -qx "layout $WORK/moved/share/assay/gdb/assay_gdb/layout.py" "$WORK/inst.pb2" ||
  fail "the install's walker runs $(grep '^layout' "$WORK/inst.pb2")"
echo "  ok: the moved install runs its own package and profile_pb2.py"

# ---- 3. The build's checks can fail.
echo "== the generator and the generated static_asserts refuse a wrong list"
mkdir -p "$WORK/hdr"
# A non-uint64_t field: refused, naming its line.
sed 's/^  uint64_t sampling_rate_addr;/  uint32_t sampling_rate_addr;/' "$SRC/base/layout.h" >"$WORK/hdr/u32.h"
grep -q 'uint32_t sampling_rate_addr' "$WORK/hdr/u32.h" || fail "could not make the uint32_t header"
if python3 "$GEN" "$WORK/hdr/u32.h" --py "$WORK/u32.py" >"$WORK/u32.out" 2>&1; then
  fail "the generator accepted a uint32_t field"
fi
line="$(grep -n 'uint32_t sampling_rate_addr' "$WORK/hdr/u32.h" | cut -d: -f1)"
grep -q "u32.h:$line: \`uint32_t sampling_rate_addr;\` in struct AssayLayout is not a list of uint64_t" "$WORK/u32.out" ||
  fail "the generator's refusal does not name line $line: $(cat "$WORK/u32.out")"
echo "  ok: a uint32_t field fails the generator at line $line"

# check_compiles HEADER: 0 if the static_asserts generated from HEADER compile
# against the real base/layout.h.
check_compiles() {
  local cc
  cc="$WORK/check.$(basename "$1").cc"
  python3 "$GEN" "$1" --check-cc "$cc" >"$cc.gen" 2>&1 || fail "generator on $1: $(cat "$cc.gen")"
  "$CXX" -std=c++20 -fsyntax-only -I"$SRC" "$cc" >"$cc.log" 2>&1
}
check_compiles "$SRC/base/layout.h" || fail "the real list's static_asserts do not compile: $(head -n 5 "$WORK"/check.layout.h.cc.log)"
echo "  ok: the real list's static_asserts compile"
sed 's/^  uint64_t sampling_rate_addr;/  uint64_t sampling_rate_addr, not_in_the_struct;/' "$SRC/base/layout.h" >"$WORK/hdr/extra.h"
grep -q not_in_the_struct "$WORK/hdr/extra.h" || fail "could not make the header with an extra field"
sed 's/^  uint64_t segment_size, slice_size, /  uint64_t slice_size, segment_size, /' "$SRC/base/layout.h" >"$WORK/hdr/swapped.h"
python3 "$GEN" "$WORK/hdr/swapped.h" | sed -n 4,5p | tr '\n' ' ' | grep -qx 'slice_size segment_size ' ||
  fail "could not make the swapped header"
for h in extra swapped; do
  if check_compiles "$WORK/hdr/$h.h"; then
    fail "the static_asserts of the '$h' list compile"
  fi
  grep -q 'static assertion failed\|static_assert\|no member named\|has no member' "$WORK/check.$h.h.cc.log" ||
    fail "'$h' failed to compile for another reason: $(head -n 5 "$WORK/check.$h.h.cc.log")"
  echo "  ok: the '$h' list fails its static_asserts"
done

echo "PASS: gdb_layout_fields ($n fields, $total bytes)"
