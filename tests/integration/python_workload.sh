#!/usr/bin/env bash
# Runs a dict/list/json/threading Python workload (python_workload.py) with the
# system allocator and with libassay.so preloaded; the output must be identical.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

[[ -x /usr/bin/python3 ]] || fail "/usr/bin/python3 (Debian's python3) is missing; run tools/setup"
echo "checking: /usr/bin/python3 python_workload.py (200k-entry dicts, json round trip, 4 threads) gives identical output under assay"
run_both python_workload env PYTHONHASHSEED=0 /usr/bin/python3 -I "$here/python_workload.py"
echo "PASS: python workload"
