// ASSAY_OPTIONS: the allocator's tuning knobs, in one table. Read once at
// initialisation without allocating: comma-separated key=value, sizes with
// k/m/g suffixes. An unknown key or a bad value prints one line on stderr
// naming it and the accepted form; the default is kept.
#pragma once

#include "base/base.h"
#include "base/parse_size.h"

namespace assay::internal {

struct Options {
  int64_t decay_ms = 10;                 // free pages stay resident this long; 0 at once, -1 never
  int64_t background_thread = 1;         // purge from a background thread (else on slow paths)
  int64_t thread_cache_bytes = 4 << 20;  // bound on the free bytes one thread cache holds
  int64_t stats_at_exit = 0;             // print assay_stats_print's table to stderr at exit
  int64_t harden = 0;       // safe-linked free lists (alloc/free_link.h); fast paths then unused
  int64_t double_free = 1;  // report a block freed while it heads its thread's free list
};

// The options in force. Valid after InitOptions(); defaults before. Read
// inline: slow paths read them on every call (free's overflow path, the
// purger's test).
extern Options g_options;
ASSAY_INLINE const Options& GetOptions() { return g_options; }

// Parses `text` (the value of ASSAY_OPTIONS; may be null) into the options in
// force. Called once from the allocator's initialisation.
void InitOptions(const char* text);

// Parses `text` (may be null) onto *out, leaving the options in force alone:
// what InitOptions does, for tests. Bad items are reported as InitOptions does.
void ParseOptions(const char* text, Options* out);

}  // namespace assay::internal
