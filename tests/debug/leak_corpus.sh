#!/usr/bin/env bash
# The leak scan against LeakSanitizer and valgrind: each program of
# tests/debug/leaks/ leaks (or keeps) memory one way and says, in a
# `// leaked: N` line written by hand, how many bytes it leaks. Each runs
# under assay (ASSAY_DEBUG=leaks), under LSan (clang -fsanitize=leak) and
# under valgrind's memcheck; assay must report exactly N bytes, at least as
# many as either tool (definite + indirect for valgrind), and split them into
# direct and indirect as valgrind does whenever both found the same bytes.
# Prints the table.
# usage: leak_corpus.sh LIBASSAY_SO CORPUS_DIR
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh" "$1"
CORPUS="$(realpath "$2")"
require gcc clang valgrind grep sed
cd "$WORK"

gcc -O0 -g -fPIC -shared "$CORPUS/tls_dlopen_lib.c" -o libtls_dlopen.so
# assay_run NAME ARGS...: "total direct" bytes that assay reports.
assay_run() {
  local name="$1" rc=0
  shift
  env ASSAY_DEBUG=leaks,leak_profile="$WORK/$name.leak.pb.gz" LD_PRELOAD="$ASSAY_LIB" \
    "./$name" "$@" >"$name.assay.out" 2>"$name.assay.err" || rc=$?
  [[ "$rc" -eq 0 ]] || { cat "$name.assay.err" >&2; fail "$name exited $rc under assay"; }
  if grep -q '^assay: leaks: none among' "$name.assay.err"; then
    echo "0 0"
    return
  fi
  local total direct
  total="$(sed -n 's/^SUMMARY: assay: \([0-9]*\) byte(s) leaked in [0-9]* allocation(s)\.$/\1/p' "$name.assay.err")"
  direct="$(sed -n 's/^assay: leaks: direct \([0-9]*\) bytes in .*/\1/p' "$name.assay.err")"
  [[ -n "$total" && -n "$direct" ]] || { cat "$name.assay.err" >&2; fail "$name: no summary from assay"; }
  echo "$total $direct"
}
lsan_run() {
  local name="$1" rc=0
  shift
  env LSAN_OPTIONS=exitcode=0 "./$name.lsan" "$@" >"$name.lsan.out" 2>"$name.lsan.err" || rc=$?
  [[ "$rc" -eq 0 ]] || { cat "$name.lsan.err" >&2; fail "$name exited $rc under LSan"; }
  grep -q 'LeakSanitizer has encountered a fatal error' "$name.lsan.err" && { cat "$name.lsan.err" >&2; fail "$name: LSan failed"; }
  local total
  total="$(sed -n 's/^SUMMARY: LeakSanitizer: \([0-9]*\) byte(s) leaked.*/\1/p' "$name.lsan.err")"
  echo "${total:-0}"
}
# "definite indirect" bytes.
valgrind_run() {
  local name="$1" rc=0
  shift
  valgrind --leak-check=full --show-leak-kinds=definite,indirect "./$name" "$@" \
    >"$name.vg.out" 2>"$name.vg.err" || rc=$?
  [[ "$rc" -eq 0 ]] || { cat "$name.vg.err" >&2; fail "$name exited $rc under valgrind"; }
  local def ind
  def="$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$name.vg.err" | tr -d ,)"
  ind="$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes.*/\1/p' "$name.vg.err" | tr -d ,)"
  echo "${def:-0} ${ind:-0}"
}

printf '%-16s %8s %10s %8s %8s %10s %10s\n' case expected assay direct LSan valgrind vg-direct
cases=0
for src in "$CORPUS"/*.c; do
  name="$(basename "$src" .c)"
  [[ "$name" == *_lib ]] && continue
  expected="$(sed -n 's|^// leaked: \([0-9]*\)$|\1|p' "$src")"
  [[ -n "$expected" ]] || fail "$name.c has no '// leaked: N' line"
  gcc -O0 -g -pthread "$src" -o "$name" -ldl
  clang -O0 -g -pthread -fsanitize=leak "$src" -o "$name.lsan" -ldl
  args=()
  [[ "$name" == tls_dlopen ]] && args=("$WORK/libtls_dlopen.so")
  read -r a_total a_direct < <(assay_run "$name" "${args[@]}")
  l_total="$(lsan_run "$name" "${args[@]}")"
  read -r v_def v_ind < <(valgrind_run "$name" "${args[@]}")
  v_total=$((v_def + v_ind))
  printf '%-16s %8s %10s %8s %8s %10s %10s\n' "$name" "$expected" "$a_total" "$a_direct" "$l_total" "$v_total" "$v_def"
  [[ "$a_total" -eq "$expected" ]] || { cat "$name.assay.err" >&2; fail "$name: assay reports $a_total leaked bytes, the program leaks $expected"; }
  [[ "$a_total" -ge "$l_total" ]] || fail "$name: LSan finds $l_total bytes, assay only $a_total"
  [[ "$a_total" -ge "$v_total" ]] || fail "$name: valgrind finds $v_total bytes, assay only $a_total"
  if [[ "$v_total" -eq "$a_total" && "$a_direct" -ne "$v_def" ]]; then
    fail "$name: assay's direct leaks are $a_direct bytes, valgrind's definite ones $v_def"
  fi
  cases=$((cases + 1))
done
[[ "$cases" -ge 12 ]] || fail "only $cases cases in $CORPUS"
echo "PASS: leak_corpus ($cases cases)"
