#!/bin/bash
# fault_profile_disk: profile writes that fail. In a private mount namespace
# (unshare -m; the test needs root, as the suite runs): FULL is a 64 KiB
# tmpfs filled to the last byte, RO a read-only bind mount (EROFS even for
# root), OK a plain directory. The program writes to FULL and RO (and its
# dump thread dumps to FULL every 64 KiB allocated), then to OK. Checked
# here: exactly one "cannot write ... (reported once ...)" line on stderr, no
# file left behind in FULL or RO, and a profile in OK.
# Usage: profile_disk.sh FAULT_TEST_BINARY
set -euo pipefail
bin=$1
work=$(mktemp -d /tmp/assay_fault_disk.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/full" "$work/ro" "$work/ok"

unshare --mount --propagation private bash -euo pipefail -s "$bin" "$work" <<'INNER'
bin=$1 work=$2
mount -t tmpfs -o size=64k assay_full "$work/full"
# Fill it: dd stops at ENOSPC.
dd if=/dev/zero of="$work/full/fill" bs=4k 2>/dev/null || true
echo "full: $(df --output=avail -B1 "$work/full" | tail -1) bytes free"
mount --bind "$work/ro" "$work/ro"
mount -o remount,ro,bind "$work/ro"
if touch "$work/ro/probe" 2>/dev/null; then echo "ro is writable"; exit 1; fi
MALLOC_PROF="rate=4k,final=0,interval=64k,prefix=$work/full/p" \
  "$bin" disk "$work/full" "$work/ro" "$work/ok" 2>"$work/stderr" || { cat "$work/stderr"; exit 1; }
cat "$work/stderr"
n=$(grep -c 'cannot write .*(reported once; the program runs on)' "$work/stderr" || true)
if [[ $n != 1 ]]; then echo "expected one report of the failed dump, got $n"; exit 1; fi
left=$(ls -A "$work/full" "$work/ro" | grep -v -e '^fill$' -e '^$' -e ':$' || true)
if [[ -n $left ]]; then echo "files left behind: $left"; exit 1; fi
INNER
test -s "$work/ok/heap.pb.gz"
echo "profile_disk: ok (full tmpfs, read-only bind mount)"
