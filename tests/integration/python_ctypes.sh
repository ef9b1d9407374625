#!/usr/bin/env bash
# Under LD_PRELOAD, Python (through ctypes) sees assay: assay_version() is
# resolvable from the global scope and says "assay ...", and both Python's own
# large allocations and libc's internal ones (strdup) are counted by assay.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

[[ -x /usr/bin/python3 ]] || fail "/usr/bin/python3 (Debian's python3) is missing; run tools/setup"

cat >"$WORK/check.py" <<'PY'
import ctypes
import sys

lib = ctypes.CDLL(None)
try:
    version_fn = lib.assay_version
except AttributeError:
    print("assay_version: not found")
    sys.exit(0)
version_fn.restype = ctypes.c_char_p
version = version_fn()
print("assay_version:", version)
if not version.startswith(b"assay "):
    sys.exit(f"assay_version() returned {version!r}, expected b'assay ...'")

# Python's large allocations (PyMem_RawMalloc -> malloc) must be served by assay.
stats = (ctypes.c_size_t * 64)()   # assay_stats; field 0 is 'allocated' (bytes)
lib.assay_get_stats(stats)
before = stats[0]
blob = bytearray(64 << 20)
lib.assay_get_stats(stats)
grown = stats[0] - before
print("allocated grew by >= 64 MiB for a 64 MiB bytearray:", grown >= (64 << 20))
if grown < (64 << 20):
    sys.exit(f"assay_stats.allocated grew by {grown} bytes only")
del blob

# libc's own allocations (strdup calls malloc inside libc) must be served by assay too.
lib.strdup.restype = ctypes.c_void_p
lib.strdup.argtypes = [ctypes.c_char_p]
lib.free.argtypes = [ctypes.c_void_p]
text = b"x" * (32 << 20)
lib.assay_get_stats(stats)
before = stats[0]
p = lib.strdup(text)
lib.assay_get_stats(stats)
grown = stats[0] - before
print("allocated grew by >= 32 MiB for libc's strdup of 32 MiB:", grown >= (32 << 20))
if not p or grown < (32 << 20):
    sys.exit(f"strdup inside libc not served by assay: allocated grew by {grown} bytes")
lib.free(p)
PY

echo "checking: python3 ctypes sees assay_version() only under LD_PRELOAD, and assay serves Python's and libc's allocations"
out="$(env -u LD_PRELOAD /usr/bin/python3 -I "$WORK/check.py")" || fail "python3 failed without LD_PRELOAD: $out"
[[ "$out" == "assay_version: not found" ]] || fail "without LD_PRELOAD expected no assay_version, got: $out"
echo "  ok: without LD_PRELOAD: $out"

out="$(env LD_PRELOAD="$ASSAY_LIB" /usr/bin/python3 -I "$WORK/check.py" 2>&1)" \
  || fail "python3 under LD_PRELOAD=$ASSAY_LIB failed: $out"
echo "$out" | sed 's/^/  /'
grep -q "^assay_version: b'assay " <<<"$out" || fail "under LD_PRELOAD, assay_version() not found or wrong: $out"
echo "PASS: python ctypes"
