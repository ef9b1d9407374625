// The MALLOC_PROF table (prof_config.h) and its quirks: `0` and `1` as the
// whole value, a signal by name or number, the first bad item turning
// profiling off. No allocation: it runs at start-up.
#include "profiler/prof_config.h"

#include <signal.h>
#include <string.h>

#include "base/base.h"
#include "base/option_table.h"
#include "base/parse_size.h"
#include "profiler/stack_capture.h"

namespace assay::profiler {
namespace {

using internal::OptionSpec;

// USR1, SIGUSR1 (a few names), or a number that is not a fatal or
// uncatchable signal.
bool ParseSignal(const char* v, size_t len, int64_t* out) {
  struct Named {
    const char* name;
    int sig;
  };
  static constexpr Named kSignals[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP},
                                       {"PROF", SIGPROF}, {"URG", SIGURG},   {"WINCH", SIGWINCH}};
  if (len > 3 && strncmp(v, "SIG", 3) == 0) {
    v += 3;
    len -= 3;
  }
  for (const Named& n : kSignals) {
    if (strlen(n.name) == len && strncmp(v, n.name, len) == 0) {
      *out = n.sig;
      return true;
    }
  }
  int64_t num;
  if (internal::ParseSize(v, len, &num) && num >= 1 && num < 65 && num != SIGKILL &&
      num != SIGSTOP && num != SIGSEGV && num != SIGBUS && num != SIGFPE && num != SIGILL) {
    *out = num;
    return true;
  }
  return false;
}

// An octal file mode such as 0644 or 640: 1 to 0777 (no setuid, setgid or
// sticky bit on a profile).
bool ParseMode(const char* v, size_t len, int64_t* out) {
  if (len == 0 || len > 4) return false;
  int64_t m = 0;
  for (size_t i = 0; i < len; ++i) {
    if (v[i] < '0' || v[i] > '7') return false;
    m = m * 8 + (v[i] - '0');
  }
  if (m < 1 || m > 0777) return false;
  *out = m;
  return true;
}

constexpr int64_t kMaxSize = int64_t{1} << 50;

#define F(member) ASSAY_OPTION_FIELD(ProfConfig, member)
// In this order in the unknown-key line's list of keys.
constexpr OptionSpec kSpecs[] = {
    NumberOption("rate", F(rate), 1, kMaxSize, "bytes >= 1, k/m/g suffix"),
    NumberOption("interval", F(interval), 0, kMaxSize, "bytes, k/m/g suffix"),
    NumberOption("period", F(period_s), 0, 1 << 30, "seconds"),
    StringOption("prefix", F(prefix), 1, "a file path prefix, under 512 bytes"),
    BoolOption("final", F(final_dump)),
    BoolOption("peak", F(peak)),
    BoolOption("leak", F(leak)),
    NumberOption("depth", F(depth), 1, kMaxStackDepth, "frames, 1 to 256"),
    NumberOption("seed", F(seed), 0, kMaxSize, "a non-negative integer"),
    NumberOption("young", F(young), 1, kMaxSize, "bytes >= 1, k/m/g suffix"),
    CustomOption("signal", F(signal), ParseSignal, "a signal name such as USR2, or its number"),
    WordOption("stack", F(stack_method), {"unwind", static_cast<int64_t>(StackMethod::kUnwind)},
               {"fp", static_cast<int64_t>(StackMethod::kFramePointer)}, "unwind or fp"),
    StringOption("http", F(http), 1, "IP:PORT, [IPv6]:PORT or unix:/path, under 128 bytes"),
    BoolOption("http_remote", F(http_remote)),
    CustomOption("mode", F(file_mode), ParseMode,
                 "an octal file mode, 0001 to 0777 (default 0600)"),
};
#undef F
static_assert(ValidOptionTable(kSpecs, sizeof(kSpecs) / sizeof(kSpecs[0])));

constexpr internal::OptionGrammar kGrammar = {
    .var = "MALLOC_PROF",
    .specs = kSpecs,
    .count = sizeof(kSpecs) / sizeof(kSpecs[0]),
    .unknown = "unknown key",
    .bad = "bad value for",
    .expected = "expected ",
    .known = nullptr,
    .list_keys = true,
    .quote_item = false,
    .quote_max = 0,
    .outcome = "profiling stays off",
    .stop_at_error = true,
};

}  // namespace

ASSAY_STARTUP bool ParseProfConfig(const char* text, ProfConfig* out) {
  *out = ProfConfig{};
  if (text == nullptr || *text == '\0' || strcmp(text, "0") == 0) return true;
  out->enabled = true;
  if (strcmp(text, "1") == 0) return true;  // on, with the defaults
  if (internal::ParseOptionText(kGrammar, text, out) == 0) return true;
  out->enabled = false;
  return false;
}

}  // namespace assay::profiler
