// fuzz_options: the option parsers (base/option_table.cc through its three
// grammars: ASSAY_OPTIONS, ASSAY_DEBUG, MALLOC_PROF) on arbitrary text, under
// ASan and UBSan. The parser objects are linked without the allocator (they
// never allocate), so ASan watches the text they read.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>

#include "base/options.h"
#include "debug_heap/debug.h"
#include "profiler/prof_config.h"

namespace {

#define FUZZ_CHECK(cond)                                                                       \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      fprintf(stderr, "fuzz_options: check failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
      abort();                                                                                 \
    }                                                                                          \
  } while (0)

using assay::internal::Options;
using assay::internal::debug::Config;
using assay::profiler::ProfConfig;

// The results stay within the ranges the tables declare, whatever the text.
void CheckOptions(const Options& o) {
  FUZZ_CHECK(o.decay_ms >= -1 && o.decay_ms <= int64_t{1} << 40);
  FUZZ_CHECK(o.background_thread == 0 || o.background_thread == 1);
  FUZZ_CHECK(o.thread_cache_bytes >= 0 && o.thread_cache_bytes <= int64_t{1} << 40);
  FUZZ_CHECK(o.stats_at_exit == 0 || o.stats_at_exit == 1);
}

void CheckConfig(const Config& c) {
  FUZZ_CHECK(memchr(c.leak_profile, '\0', sizeof(c.leak_profile)) != nullptr);
  FUZZ_CHECK(c.audit_depth >= 1 && c.audit_depth <= 256);
  FUZZ_CHECK(c.guard == (c.guard_big || c.guard_every != 0) || c.guard);
  if (c.leaks_error) FUZZ_CHECK(c.leaks);
}

void CheckProf(const ProfConfig& p, bool ok) {
  if (!ok) FUZZ_CHECK(!p.enabled);
  FUZZ_CHECK(memchr(p.prefix, '\0', sizeof(p.prefix)) != nullptr);
  FUZZ_CHECK(p.depth >= 1 && p.depth <= 256);
  FUZZ_CHECK(p.rate >= 1);
  FUZZ_CHECK(p.signal >= 0 && p.signal < 65);
}

// Field by field: the structs have padding that no parser writes.
bool SameProf(const ProfConfig& a, const ProfConfig& b) {
  return a.enabled == b.enabled && a.rate == b.rate && a.interval == b.interval &&
         a.period_s == b.period_s && strcmp(a.prefix, b.prefix) == 0 &&
         a.final_dump == b.final_dump && a.peak == b.peak && a.leak == b.leak &&
         a.depth == b.depth && a.seed == b.seed && a.young == b.young && a.signal == b.signal &&
         a.stack_method == b.stack_method;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The text alone in a heap buffer of its exact length (plus the NUL), so
  // ASan sees a read one byte past it.
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const char* s = text.c_str();
  switch (data[0] % 3) {
    case 0: {
      Options o;
      assay::internal::ParseOptions(s, &o);
      CheckOptions(o);
      Options again;
      assay::internal::ParseOptions(s, &again);
      FUZZ_CHECK(o.decay_ms == again.decay_ms && o.background_thread == again.background_thread &&
                 o.thread_cache_bytes == again.thread_cache_bytes &&
                 o.stats_at_exit == again.stats_at_exit);  // no hidden state
      break;
    }
    case 1: {
      Config c;
      assay::internal::debug::ParseConfig(s, &c);
      CheckConfig(c);
      break;
    }
    default: {
      ProfConfig p;
      const bool ok = assay::profiler::ParseProfConfig(s, &p);
      CheckProf(p, ok);
      ProfConfig again;
      FUZZ_CHECK(assay::profiler::ParseProfConfig(s, &again) == ok);
      FUZZ_CHECK(SameProf(p, again));
      break;
    }
  }
  return 0;
}
