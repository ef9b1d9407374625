#!/usr/bin/env bash
# No false leak in real programs: python3 (json, sqlite3), sqlite3 and bash
# run under ASSAY_DEBUG=leaks and under valgrind's memcheck; assay may report
# no more leaked bytes than valgrind's definite + indirect (they hold their
# memory at exit through globals: reachable), and the same direct bytes as
# valgrind's definite ones.
# usage: leak_real_programs.sh LIBASSAY_SO
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh" "$1"
require python3 sqlite3 bash valgrind sed
cd "$WORK"
# The interpreter itself, not a wrapper script (pyenv's shims are bash).
PY="$(python3 -c 'import sys; print(sys.executable)')"
py='import json, sqlite3
c = sqlite3.connect(":memory:")
c.execute("create table t(a)")
c.executemany("insert into t values (?)", [(json.dumps({"i": i, "s": "x" * i}),) for i in range(2000)])
print(c.execute("select count(*), sum(length(a)) from t").fetchone())'
cat >script.sql <<'SQL'
create table t(a, b);
with recursive c(x) as (select 1 union all select x + 1 from c where x < 5000)
  insert into t select x, hex(x * 7919) from c;
create index i on t(b);
select count(*), max(a) from t where b > 'A';
SQL

printf '%-8s %12s %12s %14s %14s\n' program assay assay-direct valgrind vg-definite
check() {
  local name="$1" input="$2" rc=0
  shift 2
  env ASSAY_DEBUG=leaks,leak_profile="$WORK/$name.pb.gz" LD_PRELOAD="$ASSAY_LIB" "$@" \
    <"$input" >"$name.assay.out" 2>"$name.assay.err" || rc=$?
  [[ "$rc" -eq 0 ]] || { cat "$name.assay.err" >&2; fail "$name exited $rc under assay"; }
  # The last report is the program's own (a forked child, such as bash's
  # command substitution, exits first with one of its own).
  local a_total=0 a_direct=0 last
  last="$(grep -E '^(assay: leaks: none among|assay: leaks: direct|SUMMARY: assay:)' "$name.assay.err" | tail -n 2)"
  [[ -n "$last" ]] || { cat "$name.assay.err" >&2; fail "$name: no leak report"; }
  if ! grep -q '^assay: leaks: none among' <<<"$(tail -n 1 <<<"$last")"; then
    a_total="$(sed -n 's/^SUMMARY: assay: \([0-9]*\) byte(s).*/\1/p' <<<"$last")"
    a_direct="$(sed -n 's/^assay: leaks: direct \([0-9]*\) bytes.*/\1/p' <<<"$last")"
    [[ -n "$a_total" && -n "$a_direct" ]] || { cat "$name.assay.err" >&2; fail "$name: no leak summary"; }
  fi
  valgrind --leak-check=full --child-silent-after-fork=yes "$@" <"$input" >"$name.vg.out" 2>"$name.vg.err" || fail "$name exited $? under valgrind"
  local def ind
  def="$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$name.vg.err" | tr -d ,)"
  ind="$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes.*/\1/p' "$name.vg.err" | tr -d ,)"
  def="${def:-0}" ind="${ind:-0}"
  printf '%-8s %12s %12s %14s %14s\n' "$name" "$a_total" "$a_direct" "$((def + ind))" "$def"
  cmp -s "$name.assay.out" "$name.vg.out" || fail "$name printed different output under assay and valgrind"
  [[ "$a_total" -le $((def + ind)) ]] || { cat "$name.assay.err" >&2; fail "$name: assay reports $a_total leaked bytes, valgrind $((def + ind)): a false leak"; }
  [[ "$a_direct" -eq "$def" ]] || { cat "$name.assay.err" >&2; fail "$name: assay's direct leaks $a_direct bytes, valgrind's definite $def"; }
}
check python3 /dev/null "$PY" -c "$py"
check sqlite3 script.sql sqlite3 :memory:
check bash /dev/null bash --norc --noprofile -c 'for i in 1 2 3; do echo $i; done; x=$(if true; then echo a; fi); echo "$x"'
echo "PASS: leak_real_programs"
