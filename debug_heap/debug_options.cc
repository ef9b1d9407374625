// The ASSAY_DEBUG table (debug.h: Config, ParseConfig): flag words, and words
// that may or may not take a value. Init (debug.cc) derives what they imply.
#include <stdint.h>

#include "base/option_table.h"
#include "debug_heap/debug.h"
#include "profiler/stack_capture.h"

namespace assay::internal::debug {
namespace {

#define F(member) ASSAY_OPTION_FIELD(Config, member)
constexpr OptionSpec kSpecs[] = {
    FlagOption("redzone", F(redzone)),
    // `guard`: every block of a page or more; `guard=N`: 1 in N blocks.
    NumberOption("guard", F(guard_every), 1, INT64_MAX, "guard or guard=N, N >= 1")
        .OrBare(F(guard_big), 1)
        .Also(F(guard)),
    FlagOption("freecheck", F(freecheck)),
    NumberOption("quarantine", F(quarantine_bytes), 0, INT64_MAX,
                 "quarantine=BYTES, k/m/g suffixes"),
    NumberOption("audit", F(audit_depth), 1, profiler::kMaxStackDepth,
                 "audit or audit=DEPTH, 1..256 frames")
        .OrBare()
        .Also(F(audit)),
    WordOption("leaks", F(leaks_error), {"error", 1}, {}, "leaks or leaks=error")
        .OrBare(F(leaks_error), 0)
        .Also(F(leaks)),
    StringOption("leak_profile", F(leak_profile), 0, "a path under 256 bytes").OnlyWithValue(),
};
#undef F
static_assert(ValidOptionTable(kSpecs, sizeof(kSpecs) / sizeof(kSpecs[0])));

constexpr OptionGrammar kGrammar = {
    .var = "ASSAY_DEBUG",
    .specs = kSpecs,
    .count = sizeof(kSpecs) / sizeof(kSpecs[0]),
    .unknown = "bad option",
    .bad = "bad option",
    .expected = "",
    .known =
        "known: redzone, guard[=N], freecheck, quarantine=BYTES, audit[=DEPTH], "
        "leaks[=error], leak_profile=PATH",
    .list_keys = false,
    .quote_item = true,
    .quote_max = 64,
    .outcome = "ignored",
    .stop_at_error = false,
};

}  // namespace

void ParseConfig(const char* text, Config* out) { ParseOptionText(kGrammar, text, out); }

}  // namespace assay::internal::debug
