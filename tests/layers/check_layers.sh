#!/usr/bin/env bash
# The layering rule, checked: each library folder has a rank, and a file may
# include a project header only from a folder of lower rank or its own.
# Folders of equal rank (debug_heap, cache, pprof) never include each other.
#
#   base (0) -> alloc (1) -> profiler (2) -> debug_heap, cache, pprof (3) -> init (4)
#
# include/assay (the public headers) may be included from anywhere; the
# generated proto/ headers only from pprof/. Also fails when a library folder
# exists that has no rank (a new layer must be placed here first).
# Usage: check_layers.sh [SOURCE_ROOT]
set -uo pipefail
root="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
cd "$root" || exit 2

declare -A rank=([base]=0 [alloc]=1 [profiler]=2 [debug_heap]=3 [cache]=3 [pprof]=3 [init]=4)
# Folders that are not library layers.
not_layers=" include proto tests tools demo docs build .git .ci "

status=0
for dir in */; do
  dir="${dir%/}"
  [[ "$not_layers" == *" $dir "* ]] && continue
  [[ "$dir" == build* ]] && continue
  if compgen -G "$dir/*.h" >/dev/null || compgen -G "$dir/*.cc" >/dev/null; then
    [[ -n "${rank[$dir]+x}" ]] && continue
    echo "layers: folder $dir/ holds library sources but has no rank in $0"
    status=1
  fi
done

checked=0
for layer in "${!rank[@]}"; do
  [[ -d "$layer" ]] || { echo "layers: missing folder $layer/"; status=1; continue; }
  mine=${rank[$layer]}
  for file in "$layer"/*.h "$layer"/*.cc; do
    [[ -e "$file" ]] || continue
    checked=$((checked + 1))
    while IFS= read -r line; do
      lineno="${line%%:*}"
      target="$(sed -E 's/^[0-9]+:#include "([^"]+)".*/\1/' <<<"$line")"
      folder="${target%%/*}"
      [[ "$target" == */* ]] || continue
      case "$folder" in
        assay) continue ;;
        proto)
          if [[ "$layer" != pprof ]]; then
            echo "$file:$lineno: includes generated $target (only pprof/ may)"
            status=1
          fi
          continue ;;
      esac
      if [[ -z "${rank[$folder]+x}" ]]; then
        echo "$file:$lineno: includes $target from unranked folder $folder/"
        status=1
      elif [[ "$folder" != "$layer" ]] && (( rank[$folder] >= mine )); then
        echo "$file:$lineno: $layer (rank $mine) includes $target from $folder (rank ${rank[$folder]})"
        status=1
      fi
    done < <(grep -n '^#include "' "$file")
  done
done

if (( checked == 0 )); then
  echo "layers: no source file found under $root"
  exit 1
fi
if (( status == 0 )); then
  echo "layers: $checked files, every include points down"
fi
exit $status
