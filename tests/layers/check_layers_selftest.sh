#!/usr/bin/env bash
# Shows that check_layers.sh can fail: on a small tree with every layer, it
# passes while includes point down, and fails naming the file and line when
# a lower layer includes a higher one or a same-rank sibling.
set -uo pipefail
checker="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check_layers.sh"
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
for d in base alloc profiler debug_heap cache pprof init; do mkdir -p "$tree/$d"; done
echo '#include "base/os.h"' >"$tree/alloc/heap.cc"
echo '#include "alloc/heap.h"' >"$tree/profiler/profiler.cc"
echo '#include "profiler/profiler.h"' >"$tree/debug_heap/debug.cc"
echo '#include "debug_heap/debug.h"' >"$tree/init/init.cc"
echo '#include "assay/assay.h"' >"$tree/base/os.h"
echo '#include "proto/profile.pb.h"' >"$tree/pprof/pprof_writer.cc"
echo '// nothing' >"$tree/cache/object_cache.cc"

fail() { echo "FAIL: $*"; exit 1; }
out="$("$checker" "$tree")" || fail "a clean tree was rejected: $out"

printf '#include "base/os.h"\n#include "profiler/profiler.h"\n' >"$tree/alloc/heap.cc"
out="$("$checker" "$tree")" && fail "an upward include passed"
grep -q 'alloc/heap.cc:2: alloc (rank 1) includes profiler/profiler.h' <<<"$out" || fail "wrong report: $out"

echo '#include "base/os.h"' >"$tree/alloc/heap.cc"
echo '#include "cache/object_cache.h"' >"$tree/debug_heap/debug.cc"
out="$("$checker" "$tree")" && fail "a same-rank include passed"
grep -q 'debug_heap/debug.cc:1: debug_heap (rank 3) includes cache/object_cache.h' <<<"$out" || fail "wrong report: $out"

echo '#include "profiler/profiler.h"' >"$tree/debug_heap/debug.cc"
mkdir "$tree/extra" && echo '// x' >"$tree/extra/x.cc"
out="$("$checker" "$tree")" && fail "an unranked library folder passed"
grep -q 'folder extra/ holds library sources but has no rank' <<<"$out" || fail "wrong report: $out"
echo "check_layers selftest: 4 cases behave"
