#!/usr/bin/env bash
# bash running a 2000-iteration loop of string operations, indexed and
# associative arrays, command substitutions and a few subprocesses, with the
# system allocator and with libassay.so preloaded; the output must be identical.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
require bash tr expr sort sha256sum

cat >"$WORK/loop.sh" <<'SH'
set -euo pipefail
declare -a list=()
declare -A seen=()
acc=""
total=0
for ((i = 0; i < 2000; i++)); do
  word="item-$i-$((i * 7919 % 1000))"
  upper="${word^^}"
  rev=""
  for ((j = ${#word} - 1; j >= 0; j--)); do rev+="${word:j:1}"; done
  list+=("$rev")
  key="k$((i % 97))"
  seen[$key]="${seen[$key]:-}${word:5:3}"
  acc+="${upper//ITEM/I}"
  if (( ${#acc} > 4000 )); then acc="${acc:2000}"; fi
  sub="$(printf '%s:%d' "${word%%-*}" "$((i % 13))")"
  total=$(( total + ${#sub} + ${#rev} ))
  if (( i % 200 == 0 )); then
    # A few real subprocesses.
    lower="$(echo "$upper" | tr 'A-Z' 'a-z')"
    sum="$(expr "$i" + 1)"
    echo "i=$i lower=$lower sum=$sum list=${#list[@]} seen=${#seen[@]} acc=${#acc} total=$total"
  fi
  if (( i % 500 == 499 )); then
    unset 'list[0]'
    list=("${list[@]}")
  fi
done
echo "final list=${#list[@]} first=${list[0]} last=${list[-1]}"
for k in $(printf '%s\n' "${!seen[@]}" | sort | head -n 5); do
  echo "seen[$k] length ${#seen[$k]}"
done
printf '%s\n' "${list[@]}" | sha256sum
echo "total=$total"
SH

echo "checking: bash loop (2000 iterations: strings, arrays, command substitution, subprocesses) gives identical output under assay"
run_both bash_loop bash --norc --noprofile "$WORK/loop.sh"
echo "PASS: bash loop"
