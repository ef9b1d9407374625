// The ASSAY_OPTIONS table and its parser (see options.h).
#include "base/options.h"

#include <string.h>

#include "base/os.h"

namespace assay::internal {
namespace {

constinit Options g_options;

struct OptionSpec {
  const char* name;
  int64_t Options::*field;
  int64_t min;
  int64_t max;
  const char* form;  // the accepted form, for the error line
};

constexpr OptionSpec kSpecs[] = {
    {"decay_ms", &Options::decay_ms, -1, int64_t{1} << 40, "milliseconds, -1 (never) or more"},
    {"background_thread", &Options::background_thread, 0, 1, "0 or 1"},
    {"thread_cache_bytes", &Options::thread_cache_bytes, 0, int64_t{1} << 40,
     "bytes with optional k/m/g suffix"},
    {"stats_at_exit", &Options::stats_at_exit, 0, 1, "0 or 1"},
};

void Complain(const char* what, const char* key, size_t key_len, const char* form) {
  os::WriteStderr("assay: ASSAY_OPTIONS: ");
  os::WriteStderr(what);
  os::WriteStderr(" '");
  os::WriteStderr(key, key_len);
  os::WriteStderr("'");
  if (form != nullptr) {
    os::WriteStderr(" (expected ");
    os::WriteStderr(form);
    os::WriteStderr(")");
  }
  os::WriteStderr("; keeping the default\n");
}

}  // namespace

const Options& GetOptions() { return g_options; }

void InitOptions(const char* text) { ParseOptions(text, &g_options); }

void ParseOptions(const char* text, Options* out) {
  if (text == nullptr) return;
  const char* p = text;
  while (*p != '\0') {
    const char* end = strchr(p, ',');
    if (end == nullptr) end = p + strlen(p);
    const char* eq = static_cast<const char*>(memchr(p, '=', static_cast<size_t>(end - p)));
    const size_t key_len = static_cast<size_t>((eq != nullptr ? eq : end) - p);
    if (key_len > 0 || eq != nullptr) {
      const OptionSpec* spec = nullptr;
      for (const OptionSpec& s : kSpecs) {
        if (strlen(s.name) == key_len && strncmp(s.name, p, key_len) == 0) spec = &s;
      }
      int64_t v = 0;
      if (spec == nullptr) {
        Complain("unknown key", p, key_len, nullptr);
      } else if (eq == nullptr || !ParseSize(eq + 1, static_cast<size_t>(end - eq - 1), &v) ||
                 v < spec->min || v > spec->max) {
        Complain("bad value for", p, key_len, spec->form);
      } else {
        out->*(spec->field) = v;
      }
    }
    p = *end == ',' ? end + 1 : end;
  }
}

}  // namespace assay::internal
