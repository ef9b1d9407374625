// MALLOC_PROF parser (prof_config.h). No allocation: it runs at start-up.
#include "profiler/prof_config.h"

#include <signal.h>
#include <string.h>

#include "base/options.h"
#include "base/os.h"

namespace assay::profiler {
namespace {

void Complain(const char* key, size_t key_len, const char* form) {
  internal::os::WriteStderr("assay: MALLOC_PROF: ");
  if (form == nullptr) {
    internal::os::WriteStderr("unknown key '");
    internal::os::WriteStderr(key, key_len);
    internal::os::WriteStderr(
        "' (keys: rate interval period prefix final peak leak depth seed "
        "young signal stack)");
  } else {
    internal::os::WriteStderr("bad value for '");
    internal::os::WriteStderr(key, key_len);
    internal::os::WriteStderr("' (expected ");
    internal::os::WriteStderr(form);
    internal::os::WriteStderr(")");
  }
  internal::os::WriteStderr("; profiling stays off\n");
}

bool Is(const char* key, size_t len, const char* name) {
  return strlen(name) == len && strncmp(key, name, len) == 0;
}

bool ParseNumber(const char* v, size_t len, int64_t min, int64_t max, int64_t* out) {
  int64_t x;
  if (!internal::ParseSize(v, len, &x) || x < min || x > max) return false;
  *out = x;
  return true;
}

int SignalByName(const char* v, size_t len) {
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
    if (strlen(n.name) == len && strncmp(v, n.name, len) == 0) return n.sig;
  }
  int64_t num;
  if (internal::ParseSize(v, len, &num) && num >= 1 && num < 65 && num != SIGKILL &&
      num != SIGSTOP && num != SIGSEGV && num != SIGBUS && num != SIGFPE && num != SIGILL) {
    return static_cast<int>(num);
  }
  return 0;
}

}  // namespace

bool ParseProfConfig(const char* text, ProfConfig* out) {
  *out = ProfConfig{};
  if (text == nullptr || *text == '\0' || strcmp(text, "0") == 0) return true;
  out->enabled = true;
  if (strcmp(text, "1") == 0) return true;
  constexpr int64_t kMaxSize = int64_t{1} << 50;
  const char* p = text;
  while (*p != '\0') {
    const char* end = strchr(p, ',');
    if (end == nullptr) end = p + strlen(p);
    const char* eq = static_cast<const char*>(memchr(p, '=', static_cast<size_t>(end - p)));
    const size_t klen = static_cast<size_t>((eq != nullptr ? eq : end) - p);
    const char* v = eq != nullptr ? eq + 1 : end;
    const size_t vlen = static_cast<size_t>(end - v);
    int64_t n = 0;
    const char* bad = nullptr;  // the accepted form, when the value is bad
    if (klen == 0 && eq == nullptr) {
      // empty item (",,"): ignore
    } else if (Is(p, klen, "rate")) {
      if (eq == nullptr || !ParseNumber(v, vlen, 1, kMaxSize, &n))
        bad = "bytes >= 1, k/m/g suffix";
      else
        out->rate = static_cast<uint64_t>(n);
    } else if (Is(p, klen, "interval")) {
      if (eq == nullptr || !ParseNumber(v, vlen, 0, kMaxSize, &n))
        bad = "bytes, k/m/g suffix";
      else
        out->interval = static_cast<uint64_t>(n);
    } else if (Is(p, klen, "period")) {
      if (eq == nullptr || !ParseNumber(v, vlen, 0, 1 << 30, &n))
        bad = "seconds";
      else
        out->period_s = static_cast<uint64_t>(n);
    } else if (Is(p, klen, "prefix")) {
      if (eq == nullptr || vlen == 0 || vlen >= sizeof(out->prefix)) {
        bad = "a file path prefix, under 512 bytes";
      } else {
        memcpy(out->prefix, v, vlen);
        out->prefix[vlen] = '\0';
      }
    } else if (Is(p, klen, "final") || Is(p, klen, "peak") || Is(p, klen, "leak")) {
      if (eq == nullptr || !ParseNumber(v, vlen, 0, 1, &n)) {
        bad = "0 or 1";
      } else if (Is(p, klen, "final")) {
        out->final_dump = n != 0;
      } else if (Is(p, klen, "peak")) {
        out->peak = n != 0;
      } else {
        out->leak = n != 0;
      }
    } else if (Is(p, klen, "depth")) {
      if (eq == nullptr || !ParseNumber(v, vlen, 1, 256, &n))
        bad = "frames, 1 to 256";
      else
        out->depth = static_cast<int>(n);
    } else if (Is(p, klen, "seed")) {
      if (eq == nullptr || !ParseNumber(v, vlen, 0, kMaxSize, &n))
        bad = "a non-negative integer";
      else
        out->seed = static_cast<uint64_t>(n);
    } else if (Is(p, klen, "young")) {
      if (eq == nullptr || !ParseNumber(v, vlen, 1, kMaxSize, &n))
        bad = "bytes >= 1, k/m/g suffix";
      else
        out->young = static_cast<uint64_t>(n);
    } else if (Is(p, klen, "signal")) {
      const int sig = eq == nullptr ? 0 : SignalByName(v, vlen);
      if (sig == 0)
        bad = "a signal name such as USR2, or its number";
      else
        out->signal = sig;
    } else if (Is(p, klen, "stack")) {
      if (eq != nullptr && vlen == 6 && strncmp(v, "unwind", 6) == 0)
        out->stack_method = 0;
      else if (eq != nullptr && vlen == 2 && strncmp(v, "fp", 2) == 0)
        out->stack_method = 1;
      else
        bad = "unwind or fp";
    } else {
      Complain(p, klen, nullptr);
      out->enabled = false;
      return false;
    }
    if (bad != nullptr) {
      Complain(p, klen, bad);
      out->enabled = false;
      return false;
    }
    p = *end == ',' ? end + 1 : end;
  }
  return true;
}

}  // namespace assay::profiler
