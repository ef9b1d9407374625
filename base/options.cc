// The ASSAY_OPTIONS table (see options.h); option_table.cc parses it.
#include "base/options.h"

#include "base/option_table.h"

namespace assay::internal {
constinit Options g_options;

namespace {

#define F(member) ASSAY_OPTION_FIELD(Options, member)
constexpr OptionSpec kSpecs[] = {
    NumberOption("decay_ms", F(decay_ms), -1, int64_t{1} << 40, "milliseconds, -1 (never) or more"),
    BoolOption("background_thread", F(background_thread)),
    NumberOption("thread_cache_bytes", F(thread_cache_bytes), 0, int64_t{1} << 40,
                 "bytes with optional k/m/g suffix"),
    BoolOption("stats_at_exit", F(stats_at_exit)),
    BoolOption("harden", F(harden)),
    BoolOption("double_free", F(double_free)),
};
#undef F
static_assert(ValidOptionTable(kSpecs, sizeof(kSpecs) / sizeof(kSpecs[0])));

constexpr OptionGrammar kGrammar = {
    .var = "ASSAY_OPTIONS",
    .specs = kSpecs,
    .count = sizeof(kSpecs) / sizeof(kSpecs[0]),
    .unknown = "unknown key",
    .bad = "bad value for",
    .expected = "expected ",
    .known = nullptr,
    .list_keys = false,
    .quote_item = false,
    .quote_max = 0,
    .outcome = "keeping the default",
    .stop_at_error = false,
};

}  // namespace

ASSAY_STARTUP void InitOptions(const char* text) { ParseOptions(text, &g_options); }

ASSAY_STARTUP void ParseOptions(const char* text, Options* out) {
  ParseOptionText(kGrammar, text, out);
}

}  // namespace assay::internal
