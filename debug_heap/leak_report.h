// The leak report: the blocks the scan did not reach, grouped by
// allocation site with their direct and indirect parts, LSan's summary
// line, and the leak profile (ASSAY_DEBUG=leak_profile=PATH).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "debug_heap/leak_scan.h"

namespace assay::internal::debug::leak {

// Prints the report of a finished scan (it took scan_ns, with `threads` live
// threads, stopped or not) and writes the leak profile; returns how many
// blocks leaked.
size_t Report(const Scan& s, uint64_t scan_ns, size_t threads, bool stopped);

}  // namespace assay::internal::debug::leak
