// assay_stats_print and assay_stats_json: the allocator's counters and
// live blocks by size (alloc/stats.h), with the lines of the layers above it
// (profiler memory, object caches, debug heap).
#include <unistd.h>

#include <cstdio>

#include "alloc/debug_hooks.h"
#include "alloc/stats.h"
#include "assay/assay.h"
#include "base/os.h"
#include "cache/object_cache.h"
#include "debug_heap/debug.h"
#include "profiler/arena.h"

namespace assay::internal {
namespace {

using stats::CollectUsage;
using stats::Row;
using stats::Usage;

// Digits with thousands separators, right-aligned in `width`.
const char* Grouped(uint64_t v, char* buf, size_t len, int width) {
  char digits[32];
  const int n = snprintf(digits, sizeof(digits), "%llu", static_cast<unsigned long long>(v));
  char grouped[48];
  int g = 0;
  for (int i = 0; i < n; ++i) {
    grouped[g++] = digits[i];
    if ((n - i - 1) % 3 == 0 && i != n - 1) grouped[g++] = ',';
  }
  grouped[g] = '\0';
  snprintf(buf, len, "%*s", width, grouped);
  return buf;
}

uint64_t ResidentBytes() {
  char buf[128];
  if (os::ReadSmallFile("/proc/self/statm", buf, sizeof(buf)) <= 0) return 0;
  unsigned long long size = 0, resident = 0;
  if (sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

struct Totals {
  assay_stats s;
  uint64_t resident;
  uint64_t profiler;
};

Totals CollectTotals() {
  Totals t;
  stats::GetStats(&t.s);
  t.resident = ResidentBytes();
  t.profiler = profiler::arena::FootprintBytes();
  return t;
}

int Percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0 : static_cast<int>(part * 100 / whole);
}

}  // namespace
}  // namespace assay::internal

using namespace assay::internal;

extern "C" {

ASSAY_EXPORT void assay_stats_print(FILE* f) {
  if (f == nullptr) f = stderr;
  Usage u;
  CollectUsage(&u);
  const Totals t = CollectTotals();
  char a[48], b[48], c[48];
  fprintf(f, "assay heap by size (live blocks)\n");
  for (size_t i = 0; i < u.nrows; ++i) {
    const Row& r = u.rows[i];
    fprintf(f, "%s bytes * %s allocs (%2d%%) = %s bytes (%2d%%)\n",
            Grouped(r.size, a, sizeof(a), 8), Grouped(r.count, b, sizeof(b), 10),
            Percent(r.count, u.blocks), Grouped(r.size * r.count, c, sizeof(c), 13),
            Percent(r.size * r.count, u.bytes));
  }
  fprintf(f, "Heap: %s allocs (%s bytes)\n", Grouped(u.blocks, a, sizeof(a), 0),
          Grouped(u.bytes, b, sizeof(b), 0));
  const uint64_t mapped = t.s.segment_mapped + t.s.huge_mapped + t.s.huge_cached;
  fprintf(f, "Total VM allocated by heap: %s bytes (In-use by application: %s)\n",
          Grouped(mapped, a, sizeof(a), 0), Grouped(u.bytes, b, sizeof(b), 0));
  fprintf(f, "  live %s | thread caches %s | central caches %s\n",
          Grouped(t.s.allocated, a, sizeof(a), 0), Grouped(t.s.thread_cached, b, sizeof(b), 0),
          Grouped(t.s.central_cached, c, sizeof(c), 0));
  fprintf(f, "  mapped %s (segments %zu, huge blocks %zu) | resident %s\n",
          Grouped(mapped, a, sizeof(a), 0), t.s.segments, t.s.huge_blocks,
          Grouped(t.resident, b, sizeof(b), 0));
  fprintf(f, "  free dirty %s | purged %s | unmapped %s (cumulative)\n",
          Grouped(t.s.free_dirty, a, sizeof(a), 0), Grouped(t.s.purged_total, b, sizeof(b), 0),
          Grouped(t.s.unmapped_total, c, sizeof(c), 0));
  fprintf(f, "  metadata %s | profiler %s | threads %zu\n", Grouped(t.s.metadata, a, sizeof(a), 0),
          Grouped(t.profiler, b, sizeof(b), 0), t.s.threads);
  object_cache::PrintStats(f);
  if (debug::g_on || debug::g_guard) {
    char opts[160];
    debug::FormatOptions(opts, sizeof(opts));
    const debug::Counters d = debug::GetCounters();
    fprintf(
        f, "  debug heap (%s): live %llu blocks, %s | guarded %llu | quarantine %llu blocks, %s\n",
        opts, static_cast<unsigned long long>(d.live_blocks),
        Grouped(d.live_bytes, a, sizeof(a), 0), static_cast<unsigned long long>(d.guarded_total),
        static_cast<unsigned long long>(d.quarantine_blocks),
        Grouped(d.quarantine_bytes, b, sizeof(b), 0));
  }
  fflush(f);
}

ASSAY_EXPORT size_t assay_stats_json(char* buf, size_t size) {
  Usage u;
  CollectUsage(&u);
  const Totals t = CollectTotals();
  size_t n = 0;
  auto put = [&](const char* fmt, auto... args) {
    const int w = snprintf(n < size ? buf + n : nullptr, n < size ? size - n : 0, fmt, args...);
    if (w > 0) n += static_cast<size_t>(w);
  };
  put("{\"sizes\":[");
  for (size_t i = 0; i < u.nrows; ++i) {
    put("%s{\"size\":%llu,\"count\":%llu,\"bytes\":%llu}", i == 0 ? "" : ",",
        static_cast<unsigned long long>(u.rows[i].size),
        static_cast<unsigned long long>(u.rows[i].count),
        static_cast<unsigned long long>(u.rows[i].size * u.rows[i].count));
  }
  put("],\"blocks\":%llu,\"bytes\":%llu,", static_cast<unsigned long long>(u.blocks),
      static_cast<unsigned long long>(u.bytes));
  put("\"allocated\":%zu,\"thread_cached\":%zu,\"central_cached\":%zu,", t.s.allocated,
      t.s.thread_cached, t.s.central_cached);
  put("\"segment_mapped\":%zu,\"huge_mapped\":%zu,\"huge_cached\":%zu,\"resident\":%llu,",
      t.s.segment_mapped, t.s.huge_mapped, t.s.huge_cached,
      static_cast<unsigned long long>(t.resident));
  put("\"free_dirty\":%zu,\"purged_total\":%zu,\"unmapped_total\":%zu,", t.s.free_dirty,
      t.s.purged_total, t.s.unmapped_total);
  put("\"metadata\":%zu,\"profiler\":%llu,\"segments\":%zu,\"huge_blocks\":%zu,\"threads\":%zu}",
      t.s.metadata, static_cast<unsigned long long>(t.profiler), t.s.segments, t.s.huge_blocks,
      t.s.threads);
  if (debug::g_on || debug::g_guard) {
    const debug::Counters d = debug::GetCounters();
    n--;  // reopen the object
    put(",\"debug\":{\"live_blocks\":%llu,\"live_bytes\":%llu,\"guarded_total\":%llu,"
        "\"quarantine_blocks\":%llu,\"quarantine_bytes\":%llu}}",
        static_cast<unsigned long long>(d.live_blocks),
        static_cast<unsigned long long>(d.live_bytes),
        static_cast<unsigned long long>(d.guarded_total),
        static_cast<unsigned long long>(d.quarantine_blocks),
        static_cast<unsigned long long>(d.quarantine_bytes));
  }
  if (size > 0) buf[n < size ? n : size - 1] = '\0';
  return n;
}

}  // extern "C"
