// Statistics by size class (assay_stats_print, assay_stats_json) and heap
// iteration (assay_heap_iterate).
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "alloc/central.h"
#include "debug_heap/debug.h"
#include "alloc/heap.h"
#include "alloc/heap_walk.h"
#include "alloc/huge.h"
#include "base/layout.h"
#include "cache/object_cache.h"
#include "base/os.h"
#include "alloc/page_heap.h"
#include "alloc/thread_cache.h"
#include "assay/assay.h"
#include "profiler/arena.h"

namespace assay::internal {
namespace {

constexpr size_t kMaxLargeSlices = kMaxLargeSize / kSliceSize + 1;
constexpr size_t kMaxHugeRows = 64;

struct Row {
  uint64_t size;
  uint64_t count;
};

// Live blocks by size: classes, then large and huge sizes. Read without
// stopping threads (thread-cache counts are racy by a few blocks).
struct Usage {
  Row rows[kNumClasses + kMaxLargeSlices + kMaxHugeRows];
  size_t nrows = 0;
  uint64_t blocks = 0;
  uint64_t bytes = 0;
};

void AddRow(Usage* u, uint64_t size, uint64_t count) {
  if (count == 0) return;
  for (size_t i = 0; i < u->nrows; ++i) {
    if (u->rows[i].size == size) {
      u->rows[i].count += count;
      u->blocks += count;
      u->bytes += size * count;
      return;
    }
  }
  if (u->nrows == sizeof(u->rows) / sizeof(u->rows[0])) return;
  u->rows[u->nrows++] = Row{size, count};
  u->blocks += count;
  u->bytes += size * count;
}

void CollectUsage(Usage* u) {
  int64_t live[kNumClasses] = {};
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    for (central::Pool pool : {central::kNormal, central::kSampled}) {
      const central::ClassStats s = central::GetClassStats(cls, pool);
      live[cls] += static_cast<int64_t>(s.blocks_out) - static_cast<int64_t>(s.transfer_blocks);
    }
  }
  thread_cache::ForEachLive(
      [](ThreadCache* tc, void* arg) {
        auto* live = static_cast<int64_t*>(arg);
        for (size_t cls = 1; cls < kNumClasses; ++cls) {
          live[cls] -= __atomic_load_n(&tc->lists[cls].count, __ATOMIC_RELAXED);
        }
      },
      live);
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    if (live[cls] > 0) AddRow(u, kClasses[cls].size, static_cast<uint64_t>(live[cls]));
  }
  page_heap::ForEachSegment(
      [](const Segment* seg, void* arg) {
        auto* u = static_cast<Usage*>(arg);
        for (size_t i = 1; i < kSlicesPerSegment;) {
          const Span& s = seg->spans[i];
          if (((seg->free_mask >> i) & 1) == 0 && s.kind == SpanKind::kLarge) {
            AddRow(u, s.slices * kSliceSize, 1);
          }
          i += ((seg->free_mask >> i) & 1) || s.slices == 0 ? 1 : s.slices;
        }
      },
      u);
  huge::ForEach(
      [](void*, size_t usable, void* arg) { AddRow(static_cast<Usage*>(arg), usable, 1); }, u);
  // By size, smallest first.
  for (size_t i = 1; i < u->nrows; ++i) {
    for (size_t j = i; j > 0 && u->rows[j - 1].size > u->rows[j].size; --j) {
      const Row t = u->rows[j];
      u->rows[j] = u->rows[j - 1];
      u->rows[j - 1] = t;
    }
  }
}

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
  const int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
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
  heap::GetStats(&t.s);
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

ASSAY_EXPORT long assay_heap_iterate(assay_block_visitor visit, void* arg) {
  if (visit == nullptr) {
    errno = EINVAL;
    return -1;
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  heap::EnsureInit();
  // A raw fork with every allocator lock held: the child's copy of the heap
  // is still and consistent, and no other library's fork handler runs.
  heap::LockAll();
  const long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) {
    close(fds[0]);
    struct Out {
      int fd;
      uint64_t buf[512];
      size_t n;
      void Flush() {
        const char* p = reinterpret_cast<const char*>(buf);
        size_t left = n * sizeof(uint64_t);
        while (left > 0) {
          const ssize_t w = write(fd, p, left);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) syscall(SYS_exit_group, 1);
          p += w;
          left -= static_cast<size_t>(w);
        }
        n = 0;
      }
    } out{fds[1], {}, 0};
    const bool ok = WalkHeap(
        assay_layout,
        [](uintptr_t a, size_t size, void* o) {
          auto* out = static_cast<Out*>(o);
          out->buf[out->n++] = a;
          out->buf[out->n++] = size;
          if (out->n == 512) out->Flush();
        },
        &out);
    out.Flush();
    syscall(SYS_exit_group, ok ? 0 : 2);
  }
  const int clone_errno = errno;
  heap::UnlockAll(false);
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    errno = clone_errno;
    return -1;
  }
  long visited = 0;
  uint64_t rec[2];
  size_t have = 0;
  for (;;) {
    const ssize_t r = read(fds[0], reinterpret_cast<char*>(rec) + have, sizeof(rec) - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    have += static_cast<size_t>(r);
    if (have == sizeof(rec)) {
      visit(reinterpret_cast<void*>(rec[0]), rec[1], arg);
      ++visited;
      have = 0;
    }
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    errno = WIFEXITED(status) && WEXITSTATUS(status) == 2 ? ENOMEM : EIO;
    return -1;
  }
  return visited;
}

}  // extern "C"
