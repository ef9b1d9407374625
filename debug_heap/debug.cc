// The debug heap's API (debug.h, alloc/debug_hooks.h) and glue: what the
// options imply (parsed in debug_options.cc), allocation, free with its
// checks, realloc, lookups, counters, the exit checks and fork.
#include "debug_heap/debug.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/page_heap.h"
#include "alloc/segment.h"
#include "alloc/size_classes.h"
#include "alloc/thread_cache.h"
#include "base/os.h"
#include "debug_heap/debug_internal.h"
#include "debug_heap/mapped_blocks.h"
#include "debug_heap/quarantine.h"
#include "debug_heap/redzones.h"
#include "debug_heap/small_blocks.h"
#include "profiler/profiler.h"
#include "profiler/stack_capture.h"
#include "profiler/stack_table.h"

namespace assay::internal::debug {

constinit bool g_on = false;
constinit bool g_guard = false;
constinit bool g_guard_all_big = false;
constinit bool g_guard_sampling = false;

constinit Config g_config;

namespace {

// Statistics, updated with relaxed atomics.
constinit uint64_t g_live_blocks = 0;
constinit uint64_t g_live_bytes = 0;
constinit uint64_t g_guarded_total = 0;

void Count(uint64_t* c, int64_t d) {
  __atomic_fetch_add(c, static_cast<uint64_t>(d), __ATOMIC_RELAXED);
}

ASSAY_TLS bool tls_capturing = false;

void ExitChecks() {
  fflush(nullptr);  // a report aborts: the program's buffered output goes first
  if (g_config.freecheck) CheckQuarantineAtExit();
  if (g_config.leaks && CheckLeaks() > 0 && g_config.leaks_error) os::ExitGroup(23);
}

}  // namespace

void Release(const Block& b) {
  Header* h = b.header;
  if (h->alloc_stack != nullptr) profiler::stack_table::Unref(h->alloc_stack);
  if (h->free_stack != nullptr) profiler::stack_table::Unref(h->free_stack);
  h->alloc_stack = h->free_stack = nullptr;
  if ((h->flags & kMapped) != 0) {
    h->state = 0;
    ReleaseMapped(b);
    return;
  }
  const Span* span = SampledSpanOf(reinterpret_cast<uintptr_t>(h));
  __atomic_store_n(&h->state, 0u, __ATOMIC_RELEASE);
  GiveSlot(span->cls, h);
}

ASSAY_STARTUP const Config& GetConfig() { return g_config; }

ASSAY_STARTUP void Init(const char* text) {
  if (text == nullptr || *text == '\0') return;
  ParseConfig(text, &g_config);
  Config& c = g_config;
  if (c.leaks) c.audit = true;  // a leak report is grouped by allocation stack
  if (c.leaks && c.leak_profile[0] == '\0') {
    snprintf(c.leak_profile, sizeof(c.leak_profile), "assay.%d.leak.pb.gz", os::ProcessId());
  }
  g_on = c.redzone || c.freecheck || c.audit || c.leaks;
  g_guard = c.guard;
  g_guard_all_big = c.guard_big;
  g_guard_sampling = c.guard && c.guard_every != 0 && !g_on;
}

void InitLate() {
  if (g_config.guard || g_config.freecheck) InstallFaultHandler();
  if (g_config.freecheck || g_config.leaks) os::AtExit(ExitChecks);
}

profiler::Stack* CaptureSite() {
  if (!g_config.audit || tls_capturing) return nullptr;
  tls_capturing = true;  // the unwinder may allocate: that allocation goes unrecorded
  uintptr_t frames[profiler::kMaxStackDepth];
  const size_t depth = profiler::CaptureStack(frames, static_cast<size_t>(g_config.audit_depth),
                                              profiler::StackMethod::kUnwind, 0, 0);
  profiler::Stack* s = profiler::stack_table::Intern(frames, depth, 0, 0);
  tls_capturing = false;
  return s;
}

Block FindExact(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (a == 0 || (a & (kMinAlign - 1)) != 0) return {};
  if (segment_map::Contains(a)) {
    const Span* span = SampledSpanOf(a);
    if (span == nullptr) return {};
    const Block b = SmallBlockAt(span, a);
    if (b.user != p) return {};
    return b;
  }
  return FindMappedExact(a);
}

Block FindContaining(uintptr_t a) {
  const Span* span = SampledSpanOf(a);
  if (span == nullptr) return {};
  const Block b = SmallBlockAt(span, a);
  if (__atomic_load_n(&b.header->state, __ATOMIC_ACQUIRE) != kLive) return {};
  if (a < reinterpret_cast<uintptr_t>(b.user) ||
      a > reinterpret_cast<uintptr_t>(b.user) + b.header->size) {
    return {};
  }
  return b;
}

// Everything a new block gets once it has memory: patterns, counts, its stack.
static void* Finish(const Block& b, size_t n) {
  if (g_config.redzone) FillRedzones(b);
  if (g_config.freecheck) Fill(b.user, n, kFreshByte);
  Count(&g_live_blocks, 1);
  Count(&g_live_bytes, static_cast<int64_t>(n));
  if ((b.header->flags & kGuarded) != 0) Count(&g_guarded_total, 1);
  b.header->alloc_stack = CaptureSite();
  __atomic_store_n(&b.header->state, kLive, __ATOMIC_RELEASE);
  return b.user;
}

void* AllocGuarded(size_t n, size_t align) {
  void* user = AllocMapped(n, align, /*guard=*/true);
  if (user == nullptr) return nullptr;
  return Finish(FindExact(user), n);
}

bool FreeMapped(void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (segment_map::Contains(a)) return false;
  if (FindMappedExact(a).header == nullptr) return false;
  Free(p);
  return true;
}

void* Alloc(size_t n, size_t align) {
  const bool guard =
      (g_config.guard_big && (n >= kPageSize || align >= kPageSize)) || GuardThisOne();
  const bool small = !guard && align <= kMinAlign && FitsSmall(n);
  Block b;
  if (small) {
    // At least one byte past the header, so that the user pointer lies in the block.
    const size_t cls = ClassOfSize(kSmallOverhead + (n == 0 ? 1 : n) + TailRedzone());
    void* inner = TakeSlot(cls);
    if (inner == nullptr) return nullptr;
    auto* h = static_cast<Header*>(inner);
    *h = Header{n, nullptr, nullptr, 0, 0, nullptr, kCanary};
    b = {h, static_cast<char*>(inner) + kSmallOverhead,
         static_cast<char*>(inner) + kClasses[cls].size};
  } else {
    void* user = AllocMapped(n, align, guard);
    if (user == nullptr) return nullptr;
    b = FindExact(user);
  }
  return Finish(b, n);
}

void MarkProfiled(void* p) { FindExact(p).header->flags |= kProfiled; }

namespace {

// p must be a live block (else the report: invalid or double free).
Block CheckLiveState(const char* op, void* p) {
  const Block b = FindExact(p);
  if (b.header == nullptr) ReportInvalidFree(op, p);
  const uint32_t state = __atomic_load_n(&b.header->state, __ATOMIC_ACQUIRE);
  if (state == kFreed) ReportDoubleFree(op, b);
  if (state != kLive) ReportInvalidFree(op, p);
  return b;
}

// Checks p as free and realloc must: a live block, redzones intact.
Block CheckLive(const char* op, void* p) {
  const Block b = CheckLiveState(op, p);
  if (g_config.redzone || (b.header->flags & kGrown) != 0) CheckRedzones(op, b);
  return b;
}

}  // namespace

void Free(void* p) {
  Block b = CheckLive("free", p);
  Header* h = b.header;
  uint32_t expected = kLive;
  if (!__atomic_compare_exchange_n(&h->state, &expected, kFreed, false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    ReportDoubleFree("free", b);  // another thread freed it meanwhile
  }
  if ((h->flags & kProfiled) != 0) profiler::OnSampledFree(p);
  Count(&g_live_blocks, -1);
  Count(&g_live_bytes, -static_cast<int64_t>(h->size));
  if (g_config.freecheck) {
    h->free_stack = CaptureSite();
    Quarantine(b);
  } else {
    Release(b);
  }
  profiler::SafePoint();
}

bool GrowsInPlace(const void* p, size_t n) {
  const Block b = FindExact(p);
  if (b.header == nullptr || (b.header->flags & (kMapped | kGuardFront)) != kMapped) return false;
  if ((b.header->flags & kGuarded) != 0) return g_config.guard_big && n >= kPageSize;
  // A plain mapped block (full debug heap): while n still needs a mapping.
  return g_on && !FitsSmall(n);
}

void* ReallocInPlace(void* p, size_t n) {
  const Block b = CheckLiveState("realloc", p);
  Header* h = b.header;
  const size_t old = h->size;
  char* const user = b.user;
  const bool guarded = (h->flags & kGuarded) != 0;
  const bool zoned = (h->flags & kGrown) != 0 || g_config.redzone;
  if ((h->flags & kGrown) != 0 || !guarded) {  // the block sits at the front of its room
    // The first bytes past the end must still be redzone (the full window is
    // checked at free).
    const size_t room = static_cast<size_t>(b.end - user);
    if (zoned) {
      const size_t quick = room - old < 16 ? room - old : 16;
      const size_t bad = FirstNot(user + old, quick, kRedzoneByte);
      if (bad < quick) ReportOverrun("realloc", b, static_cast<ptrdiff_t>(old + bad));
      if (FirstNot(user - 16, 16, kRedzoneByte) < 16) CheckRedzones("realloc", b);
    }
    if (n <= room) {
      if (zoned && n < old) {
        Fill(user + n, old - n, kRedzoneByte);
      } else if (zoned) {
        // Extend the redzone window to kTailCheck bytes past the new end.
        const size_t from = old + kTailCheck > n ? old + kTailCheck : n;
        const size_t to = n + kTailCheck < room ? n + kTailCheck : room;
        if (to > from) Fill(user + from, to - from, kRedzoneByte);
      }
      Count(&g_live_bytes, static_cast<int64_t>(n) - static_cast<int64_t>(old));
      h->size = n;
      return p;
    }
  } else if (g_config.redzone) {
    CheckRedzones("realloc", b);
  }
  const size_t capacity = n + n / 2 < n ? n : n + n / 2;
  void* q = AllocMapped(n, kMinAlign, guarded, capacity);
  if (q == nullptr) {
    errno = ENOMEM;
    return nullptr;
  }
  const Block nb = FindExact(q);
  Finish(nb, n);
  if (guarded) FillRedzones(nb);  // a grown block always has its window
  memcpy(q, p, n < old ? n : old);
  Free(p);
  return q;
}

void* Realloc(void* p, size_t n) {
  if (GrowsInPlace(p, n)) return ReallocInPlace(p, n);
  const Block b = CheckLive("realloc", p);
  void* q = Malloc(n);
  if (q == nullptr) return nullptr;
  const size_t old = b.header->size;
  memcpy(q, p, n < old ? n : old);
  Free(p);
  return q;
}

size_t UsableSize(const void* p) {
  const Block b = FindExact(p);
  if (b.header == nullptr || __atomic_load_n(&b.header->state, __ATOMIC_ACQUIRE) != kLive) {
    ReportInvalidFree("malloc_usable_size", p);
  }
  return b.header->size;
}

void ForEachLive(void (*fn)(const Block& b, void* arg), void* arg) {
  ForEachLiveSmall(fn, arg);
  ForEachLiveMapped(fn, arg);
}

// The leak scan stops the other threads: none may hold a lock the walk needs.
void LockForLeakScan() {
  LockForFork();  // quarantine, table: the order of the fork handler
  page_heap::LockForFork();
}

void UnlockAfterLeakScan() {
  page_heap::UnlockAfterFork(false);
  UnlockAfterFork(false);
}

void ForEachLiveLocked(void (*fn)(const Block& b, void* arg), void* arg) {
  ForEachLiveSmallLocked(fn, arg);
  ForEachLiveMappedLocked(fn, arg);
}

Counters GetCounters() {
  Counters c;
  c.live_blocks = __atomic_load_n(&g_live_blocks, __ATOMIC_RELAXED);
  c.live_bytes = __atomic_load_n(&g_live_bytes, __ATOMIC_RELAXED);
  c.guarded_total = __atomic_load_n(&g_guarded_total, __ATOMIC_RELAXED);
  QuarantineCounts(&c.quarantine_blocks, &c.quarantine_bytes);
  return c;
}

void FormatOptions(char* buf, size_t size) {
  const Config& c = g_config;
  size_t n = 0;
  buf[0] = '\0';
  auto put = [&](const char* fmt, auto... args) {
    if (n >= size) return;
    const int w = snprintf(buf + n, size - n, fmt, n == 0 ? "" : ",", args...);
    if (w > 0) n += static_cast<size_t>(w);
  };
  if (c.redzone) put("%sredzone");
  if (c.guard_big) put("%sguard");
  if (c.guard_every != 0) put("%sguard=%llu", static_cast<unsigned long long>(c.guard_every));
  if (c.freecheck)
    put("%sfreecheck,quarantine=%llu", static_cast<unsigned long long>(c.quarantine_bytes));
  if (c.audit) put("%saudit=%d", c.audit_depth);
  if (c.leaks) put("%sleaks%s", c.leaks_error ? "=error" : "");
}

// Lock order: the quarantine's lock, then the mapped-block table's.
void LockForFork() {
  LockQuarantineForFork();
  LockTableForFork();
}

void UnlockAfterFork(bool child) {
  UnlockTableAfterFork(child);
  UnlockQuarantineAfterFork(child);
}

}  // namespace assay::internal::debug
