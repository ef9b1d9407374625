#!/usr/bin/env bash
# The USDT probes are in libassay.so's ELF notes (provider assay) with the
# documented argument counts, and bpftrace lists them through assay-trace.
set -euo pipefail
lib="$1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
for tool in readelf bpftrace; do
  command -v "$tool" >/dev/null || { echo "FAIL: '$tool' is not installed; run tools/setup" >&2; exit 1; }
done
notes="$(readelf -n "$lib")"
declare -A want=([heap_grow]=2 [heap_shrink]=2 [purge]=2 [thread_cache_new]=1 [thread_cache_exit]=1
                 [lock_wait]=2 [sample]=3 [profile_dump]=2)
status=0
for probe in "${!want[@]}"; do
  # Every site of the probe: provider assay, the documented number of arguments.
  counts="$(printf '%s\n' "$notes" | awk -v p="$probe" '
    /Provider:/ {prov=$2} /Name:/ {name=$2}
    /Arguments:/ { if (prov=="assay" && name==p) { n=NF-1; print n } }')"
  if [ -z "$counts" ]; then
    echo "FAIL: probe assay:$probe not found in $lib" >&2; status=1; continue
  fi
  for n in $counts; do
    if [ "$n" != "${want[$probe]}" ]; then
      echo "FAIL: probe assay:$probe has $n arguments, documented ${want[$probe]}" >&2; status=1
    fi
  done
  echo "ok: assay:$probe ($(printf '%s\n' $counts | wc -l) site(s), ${want[$probe]} argument(s))"
done
listed="$(ASSAY_LIB="$lib" "$root/tools/probes/assay-trace" --list)"
for probe in "${!want[@]}"; do
  grep -q ":assay:$probe\$" <<<"$listed" || { echo "FAIL: assay-trace --list misses $probe" >&2; status=1; }
done
[ $status -eq 0 ] && echo "probes: all ${#want[@]} present with the documented arguments"
exit $status
