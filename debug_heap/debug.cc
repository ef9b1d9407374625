// The debug heap: what the options imply (parsed in debug_options.cc), block
// layout, allocation, free with its checks, the quarantine and the table of
// mapped blocks (debug.h).
#include "debug_heap/debug.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc/central.h"
#include "base/lock.h"
#include "base/options.h"
#include "base/os.h"
#include "alloc/page_heap.h"
#include "alloc/segment.h"
#include "alloc/size_classes.h"
#include "alloc/thread_cache.h"
#include "profiler/profiler.h"
#include "profiler/sampler.h"
#include "profiler/stack_capture.h"
#include "profiler/stack_table.h"

namespace assay::internal::debug {

constinit bool g_on = false;
constinit bool g_guard = false;
constinit bool g_guard_all_big = false;
constinit bool g_guard_sampling = false;

namespace {

constinit Config g_config;

// Statistics, updated with relaxed atomics.
constinit uint64_t g_live_blocks = 0;
constinit uint64_t g_live_bytes = 0;
constinit uint64_t g_guarded_total = 0;

void Count(uint64_t* c, int64_t d) {
  __atomic_fetch_add(c, static_cast<uint64_t>(d), __ATOMIC_RELAXED);
}

inline constexpr size_t kSmallOverhead = sizeof(Header);

// Bytes of tail redzone a block is given at least (with `redzone`).
size_t TailRedzone() { return g_config.redzone ? 16 : 0; }

// Whether a request of n bytes fits a small block (header and redzone included).
bool FitsSmall(size_t n) { return n <= kMaxSmallSize - kSmallOverhead - TailRedzone(); }

// ---- Mapped blocks: a mapping each, its record in its first page ----

struct MappedRecord {
  Header h;
  char* base;  // the mapping
  size_t length;
  char* user;
  char* end;  // end of the block's memory after user (a guard page, or the mapping's end)
};
static_assert(sizeof(MappedRecord) <= kPageSize - 16);

// User pointer -> record, linear probing, backward-shift deletion. Its
// memory is mapped directly (never malloc).
constinit Mutex g_table_mu;
constinit MappedRecord** g_table = nullptr;
constinit size_t g_table_cap = 0;  // power of two
constinit size_t g_table_count = 0;

size_t Slot(uintptr_t a, size_t cap) {
  return static_cast<size_t>(((a >> 4) * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
}

bool TableInsert(MappedRecord* r) {
  if ((g_table_count + 1) * 2 > g_table_cap) {
    const size_t cap = g_table_cap == 0 ? 512 : g_table_cap * 2;
    auto* t = static_cast<MappedRecord**>(os::MapAligned(cap * sizeof(void*), kPageSize));
    if (t == nullptr) return false;
    for (size_t i = 0; i < g_table_cap; ++i) {
      MappedRecord* old = g_table[i];
      if (old == nullptr) continue;
      size_t s = Slot(reinterpret_cast<uintptr_t>(old->user), cap);
      while (t[s] != nullptr) s = (s + 1) & (cap - 1);
      t[s] = old;
    }
    if (g_table != nullptr) os::Unmap(g_table, g_table_cap * sizeof(void*));
    g_table = t;
    g_table_cap = cap;
  }
  size_t s = Slot(reinterpret_cast<uintptr_t>(r->user), g_table_cap);
  while (g_table[s] != nullptr) s = (s + 1) & (g_table_cap - 1);
  g_table[s] = r;
  g_table_count++;
  return true;
}

size_t TableFindSlot(uintptr_t user) {
  if (g_table_cap == 0) return SIZE_MAX;
  for (size_t s = Slot(user, g_table_cap);; s = (s + 1) & (g_table_cap - 1)) {
    if (g_table[s] == nullptr) return SIZE_MAX;
    if (reinterpret_cast<uintptr_t>(g_table[s]->user) == user) return s;
  }
}

void TableErase(size_t s) {
  g_table[s] = nullptr;
  g_table_count--;
  // Backward shift: move later entries of the run into the hole when their
  // home slot does not lie (cyclically) between the hole and them.
  for (size_t j = (s + 1) & (g_table_cap - 1); g_table[j] != nullptr;
       j = (j + 1) & (g_table_cap - 1)) {
    const size_t home = Slot(reinterpret_cast<uintptr_t>(g_table[j]->user), g_table_cap);
    const bool stays = s <= j ? (home > s && home <= j) : (home > s || home <= j);
    if (stays) continue;
    g_table[s] = g_table[j];
    g_table[j] = nullptr;
    s = j;
  }
}

// `guard` alone (no full debug heap): the mappings of freed small guarded
// blocks are kept for reuse, their guard page still PROT_NONE, so that a
// guarded allocation of the same length makes no system call. Guarded by
// g_table_mu. Not with the full debug heap: there, freed memory is
// quarantined and stale mappings would hide leaks from the scan.
inline constexpr size_t kGuardCacheSlots = 256;
inline constexpr size_t kGuardCacheMaxLength = 6 * kPageSize;
constinit MappedRecord* g_guard_cache[kGuardCacheSlots] = {};
constinit size_t g_guard_cache_count = 0;

char* TakeCachedMapping(size_t length) {
  LockGuard g(g_table_mu);
  for (size_t i = g_guard_cache_count; i-- > 0;) {
    MappedRecord* r = g_guard_cache[i];
    if (r->length != length) continue;
    g_guard_cache[i] = g_guard_cache[--g_guard_cache_count];
    return r->base;
  }
  return nullptr;
}

// capacity > 0: a grown block (kGrown) with room for capacity bytes, at the
// front of its pages, ending at its guard page.
void* AllocMapped(size_t n, size_t align, bool guard, size_t capacity = 0) {
  const size_t a = align < kMinAlign ? kMinAlign : align;
  const bool guard_front = guard && a >= kPageSize;
  const bool grown = guard && !guard_front && capacity >= n && capacity > 0;
  const size_t rz = TailRedzone();
  const size_t over = a > kPageSize ? a : 0;
  size_t length;
  if (guard_front) {
    length = 2 * kPageSize + over + AlignUp(n, kPageSize) + kPageSize;
  } else if (grown) {
    length = kPageSize + AlignUp(capacity, kPageSize) + kPageSize;
  } else if (guard) {
    length = kPageSize + AlignUp(n, kPageSize) + kPageSize;
  } else {
    const size_t room = capacity > n ? capacity : n;  // realloc's room to grow in place
    length = kPageSize + AlignUp(room + rz + over, kPageSize);
  }
  if (length < n) return nullptr;  // overflow
  const bool cacheable =
      !g_on && guard && !guard_front && !grown && a == kMinAlign && length <= kGuardCacheMaxLength;
  char* base = cacheable ? TakeCachedMapping(length) : nullptr;
  const bool reused = base != nullptr;
  if (!reused) base = static_cast<char*>(os::MapAligned(length, kPageSize));
  if (base == nullptr) return nullptr;
  char* user;
  char* end;
  uint32_t flags = kMapped;
  if (guard_front) {
    user = reinterpret_cast<char*>(AlignUp(reinterpret_cast<uintptr_t>(base) + 2 * kPageSize, a));
    end = user + AlignUp(n, kPageSize);
    os::ProtectNone(user - kPageSize, kPageSize);
    os::ProtectNone(end, kPageSize);
    flags |= kGuarded | kGuardFront;
  } else if (grown) {
    user = base + kPageSize;
    end = user + AlignUp(capacity, kPageSize);
    os::ProtectNone(end, kPageSize);
    flags |= kGuarded | kGrown;
  } else if (guard) {
    end = base + kPageSize + AlignUp(n, kPageSize);
    user = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(end) - n) & ~(uintptr_t{a} - 1));
    if (!reused) os::ProtectNone(end, kPageSize);
    flags |= kGuarded;
  } else {
    user = reinterpret_cast<char*>(AlignUp(reinterpret_cast<uintptr_t>(base) + kPageSize, a));
    end = base + length;
  }
  auto* r = reinterpret_cast<MappedRecord*>(base);
  r->h = Header{n, nullptr, nullptr, flags, kLive, nullptr, kCanary};
  r->base = base;
  r->length = length;
  r->user = user;
  r->end = end;
  {
    LockGuard g(g_table_mu);
    if (!TableInsert(r)) {
      os::Unmap(base, length);
      return nullptr;
    }
  }
  return user;
}

void ReleaseMapped(const Block& b) {
  auto* r = reinterpret_cast<MappedRecord*>(b.header);
  const bool cacheable = !g_on && (r->h.flags & (kGuarded | kGuardFront)) == kGuarded &&
                         reinterpret_cast<uintptr_t>(r->user) % kPageSize != 0 &&
                         r->length <= kGuardCacheMaxLength;
  {
    LockGuard g(g_table_mu);
    const size_t s = TableFindSlot(reinterpret_cast<uintptr_t>(r->user));
    if (s != SIZE_MAX) TableErase(s);
    if (cacheable && g_guard_cache_count < kGuardCacheSlots) {
      g_guard_cache[g_guard_cache_count++] = r;
      return;
    }
  }
  os::Unmap(r->base, r->length);
}

// ---- Small blocks: one block of the sampled pool each ----

Block SmallBlockAt(const Span* span, uintptr_t a) {
  const size_t size = kClasses[span->cls].size;
  char* start = SpanStart(span);
  char* inner = start + (a - reinterpret_cast<uintptr_t>(start)) / size * size;
  return {reinterpret_cast<Header*>(inner), inner + kSmallOverhead, inner + size};
}

// The sampled-pool span holding a, or nullptr.
const Span* SampledSpanOf(uintptr_t a) {
  if (!segment_map::Contains(a)) return nullptr;
  const auto [seg, e, offset] = Decode(a);
  if (e.cls != 0) return nullptr;
  const Span* span = &seg->spans[e.first];
  if (span->kind != SpanKind::kSampled || span->first != e.first) return nullptr;
  return span;
}

// ---- Per-thread magazines of free small-block slots ----
//
// Every debug block would otherwise take its class's central lock twice;
// threads allocating at once then queue on it. A released slot (state 0, so
// the leak scan and the walkers of the debug heap see it as free) waits here
// for the same thread's next allocation of its class.

inline constexpr uint32_t kMagazineMax = 32;  // slots per class per thread
inline constexpr uint32_t kMagazineFill = 8;  // slots taken from the central list at once

struct Magazine {
  void* head[kNumClasses];  // linked through their first word
  uint8_t count[kNumClasses];
  bool off;  // flushed at thread exit: the central lists from then on
};
ASSAY_TLS Magazine tls_magazine;

void* TakeSlot(size_t cls) {
  Magazine& m = tls_magazine;
  if (m.off) {
    void* p;
    return central::Take(cls, 1, &p, central::kSampled) == 0 ? nullptr : p;
  }
  if (m.head[cls] == nullptr) {
    void* list;
    const size_t got = central::Take(cls, kMagazineFill, &list, central::kSampled);
    if (got == 0) return nullptr;
    m.head[cls] = list;
    m.count[cls] = static_cast<uint8_t>(got);
  }
  void* p = m.head[cls];
  m.head[cls] = *static_cast<void**>(p);
  m.count[cls]--;
  return p;
}

void GiveSlot(size_t cls, void* p) {
  Magazine& m = tls_magazine;
  if (m.off || m.count[cls] >= kMagazineMax) {
    *static_cast<void**>(p) = nullptr;
    central::Give(cls, p, 1, central::kSampled);
    return;
  }
  *static_cast<void**>(p) = m.head[cls];
  m.head[cls] = p;
  m.count[cls]++;
}

// ---- Fill patterns ----

void Fill(char* p, size_t n, uint8_t byte) { memset(p, byte, n); }

// Offset of the first byte of [p, p + n) that is not `byte`, or n.
size_t FirstNot(const char* p, size_t n, uint8_t byte) {
  const uint64_t word = 0x0101010101010101ull * byte;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w != word) break;
  }
  for (; i < n; ++i) {
    if (static_cast<uint8_t>(p[i]) != byte) return i;
  }
  return n;
}

inline constexpr size_t kTailCheck = 4096;  // redzone bytes checked past a block's end

size_t FrontZone(const Header* h) {
  if ((h->flags & kMapped) == 0) return 8;  // the header's canary
  return (h->flags & kGuardFront) != 0 ? 0 : 16;
}

// Bytes of the tail redzone that are filled and checked: from the block's
// end, at most kTailCheck.
size_t TailWindow(const Block& b) {
  const size_t room = static_cast<size_t>(b.end - (b.user + b.header->size));
  return room < kTailCheck ? room : kTailCheck;
}

void FillRedzones(const Block& b) {
  const size_t front = FrontZone(b.header);
  if ((b.header->flags & kMapped) != 0 && front > 0) Fill(b.user - front, front, kRedzoneByte);
  Fill(b.user + b.header->size, TailWindow(b), kRedzoneByte);
}

// Offset from the user pointer of the first changed redzone byte (negative:
// before the block), or kIntact.
inline constexpr ptrdiff_t kIntact = PTRDIFF_MAX;
ptrdiff_t RedzoneDamage(const Block& b) {
  const size_t front = FrontZone(b.header);
  const size_t bad_front = FirstNot(b.user - front, front, kRedzoneByte);
  if (bad_front < front) return -static_cast<ptrdiff_t>(front - bad_front);
  const size_t tail = TailWindow(b);
  const size_t bad = FirstNot(b.user + b.header->size, tail, kRedzoneByte);
  return bad < tail ? static_cast<ptrdiff_t>(b.header->size + bad) : kIntact;
}

void CheckRedzones(const char* when, const Block& b) {
  const ptrdiff_t damage = RedzoneDamage(b);
  if (damage != kIntact) ReportOverrun(when, b, damage);
}

// ---- Quarantine: freed blocks wait here, oldest first ----

constinit Mutex g_quarantine_mu;
// A FIFO ring of (user pointer, size) in memory mapped for it, so that
// neither a push nor an eviction reads a freed block under the lock. Bounded
// by quarantine_bytes and by kQuarantineSlots entries (16 MiB of address
// space, touched as it fills).
struct QEntry {
  void* user;
  uint64_t size;
};
inline constexpr size_t kQuarantineSlots = size_t{1} << 20;
constinit QEntry* g_ring = nullptr;
constinit size_t g_q_first = 0;  // index of the oldest entry
constinit size_t g_q_count = 0;
constinit uint64_t g_q_bytes = 0;  // sum of (size + 1) over the entries

QEntry PopOldest() {
  const QEntry e = g_ring[g_q_first];
  g_q_first = (g_q_first + 1) % kQuarantineSlots;
  g_q_count--;
  g_q_bytes -= e.size + 1;
  return e;
}

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

// Pages of a mapped block's user memory (made inaccessible in quarantine).
void UserPages(const Block& b, char** start, size_t* len) {
  const uintptr_t lo = reinterpret_cast<uintptr_t>(b.user) & ~(uintptr_t{kPageSize} - 1);
  const uintptr_t hi = AlignUp(reinterpret_cast<uintptr_t>(b.user) + b.header->size, kPageSize);
  *start = reinterpret_cast<char*>(lo);
  *len = hi - lo;
}

// Whether a quarantined block's fill (and redzones, if kept) is unchanged.
bool FreedFillIntact(const Block& b) {
  if ((b.header->flags & kMapped) != 0) return true;
  if (FirstNot(b.user, b.header->size, kFreedByte) < b.header->size) return false;
  return !g_config.redzone || RedzoneDamage(b) == kIntact;
}

// A block leaving quarantine: its fill must be intact.
void CheckFreedFill(const char* when, const Block& b) {
  if ((b.header->flags & kMapped) != 0) return;  // inaccessible: a write faulted already
  const size_t bad = FirstNot(b.user, b.header->size, kFreedByte);
  if (bad < b.header->size) ReportUseAfterFree(when, b, bad);
  if (g_config.redzone) CheckRedzones(when, b);
}

void Quarantine(const Block& b) {
  Header* h = b.header;
  if ((h->flags & kMapped) != 0) {
    char* start;
    size_t len;
    UserPages(b, &start, &len);
    if (len > 0) os::ProtectNone(start, len);
  } else {
    Fill(b.user, h->size, kFreedByte);
  }
  bool pushed = false;
  for (;;) {
    QEntry out[16];  // evicted, checked and released outside the lock
    size_t n = 0;
    {
      LockGuard g(g_quarantine_mu);
      if (g_ring == nullptr) {
        g_ring = static_cast<QEntry*>(os::MapAligned(kQuarantineSlots * sizeof(QEntry), kPageSize));
      }
      if (!pushed && g_ring != nullptr) {
        if (g_q_count == kQuarantineSlots) out[n++] = PopOldest();
        g_ring[(g_q_first + g_q_count) % kQuarantineSlots] = QEntry{b.user, h->size};
        g_q_count++;
        g_q_bytes += h->size + 1;
        pushed = true;
      }
      while (g_q_count > 0 && g_q_bytes > g_config.quarantine_bytes && n < 16) {
        out[n++] = PopOldest();
      }
    }
    if (!pushed) out[n++] = QEntry{b.user, h->size};  // no ring: released at once
    for (size_t i = 0; i < n; ++i) {
      const Block e = FindExact(out[i].user);
      CheckFreedFill("leaving quarantine", e);
      Release(e);
    }
    if (n < 16) return;
  }
}

// Both guard samplers are seeded by the order in which threads first use
// them, so a run repeats its choices.
constinit uint64_t g_guard_threads = 0;

// guard=N alone: the byte sampler of guard points.
constinit profiler::SamplingRate g_guard_rate;
ASSAY_TLS profiler::Rng tls_guard_bytes_rng;
ASSAY_TLS bool tls_guard_seeded = false;

// guard=N, block by block: a per-thread Bernoulli(1/N) choice.
ASSAY_TLS uint64_t tls_guard_rng = 0;
bool GuardThisOne() {
  if (g_config.guard_every == 0) return false;
  uint64_t x = tls_guard_rng;
  if (x == 0) {
    const uint64_t index = __atomic_fetch_add(&g_guard_threads, 1, __ATOMIC_RELAXED);
    x = 0x9E3779B97F4A7C15ull ^ ((index + 1) * 0xff51afd7ed558ccdull);
  }
  x ^= x << 13;  // xorshift64
  x ^= x >> 7;
  x ^= x << 17;
  tls_guard_rng = x;
  return (x >> 11) % g_config.guard_every == 0;
}

ASSAY_TLS bool tls_capturing = false;

void ExitChecks() {
  fflush(nullptr);  // a report aborts: the program's buffered output goes first
  if (g_config.freecheck) {
    // Found under the lock, reported outside it: the report itself frees.
    void* bad = nullptr;
    {
      LockGuard g(g_quarantine_mu);
      for (size_t i = 0; i < g_q_count && bad == nullptr; ++i) {
        void* p = g_ring[(g_q_first + i) % kQuarantineSlots].user;
        if (!FreedFillIntact(FindExact(p))) bad = p;
      }
    }
    if (bad != nullptr) CheckFreedFill("at exit", FindExact(bad));
  }
  if (g_config.leaks && CheckLeaks() > 0 && g_config.leaks_error) _exit(23);
}

}  // namespace

const Config& GetConfig() { return g_config; }

void Init(const char* text) {
  if (text == nullptr || *text == '\0') return;
  ParseConfig(text, &g_config);
  Config& c = g_config;
  if (c.leaks) c.audit = true;  // a leak report is grouped by allocation stack
  if (c.leaks && c.leak_profile[0] == '\0') {
    snprintf(c.leak_profile, sizeof(c.leak_profile), "assay.%d.leak.pb.gz",
             static_cast<int>(getpid()));
  }
  g_on = c.redzone || c.freecheck || c.audit || c.leaks;
  g_guard = c.guard;
  g_guard_all_big = c.guard_big;
  g_guard_sampling = c.guard && c.guard_every != 0 && !g_on;
  if (g_guard_sampling) g_guard_rate.Set(kGuardSampleBytes * c.guard_every);
}

bool GuardOneInN() { return GuardThisOne(); }

int64_t DrawGuardGap() {
  if (!tls_guard_seeded) {
    const uint64_t index = __atomic_fetch_add(&g_guard_threads, 1, __ATOMIC_RELAXED);
    tls_guard_bytes_rng.Seed(0x6173736179677264ull + index * 0x9E3779B97F4A7C15ull);
    tls_guard_seeded = true;
  }
  return g_guard_rate.DrawGap(tls_guard_bytes_rng);
}

void InitLate() {
  if (g_config.guard || g_config.freecheck) InstallFaultHandler();
  if (g_config.freecheck || g_config.leaks) atexit(ExitChecks);
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
  LockGuard g(g_table_mu);
  const size_t s = TableFindSlot(a);
  if (s == SIZE_MAX) return {};
  MappedRecord* r = g_table[s];
  return {&r->h, r->user, r->end};
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
  {
    LockGuard g(g_table_mu);
    if (TableFindSlot(a) == SIZE_MAX) return false;
  }
  Free(p);
  return true;
}

bool MappedSize(const void* p, size_t* size) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (segment_map::Contains(a)) return false;
  LockGuard g(g_table_mu);
  const size_t s = TableFindSlot(a);
  if (s == SIZE_MAX || g_table[s]->h.state != kLive) return false;
  *size = g_table[s]->h.size;
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

bool MappedExtent(const Header* h, uintptr_t* lo, uintptr_t* hi) {
  if ((h->flags & kMapped) == 0) return false;
  const auto* r = reinterpret_cast<const MappedRecord*>(h);
  *lo = reinterpret_cast<uintptr_t>(r->base);
  *hi = *lo + r->length;
  return true;
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

// The walk of ForEachLive; `locked`: the caller holds the page-heap and
// table locks (the leak scan, which takes them before it stops the threads).
static void WalkLive(void (*fn)(const Block& b, void* arg), void* arg, bool locked) {
  struct Ctx {
    void (*fn)(const Block& b, void* arg);
    void* arg;
  } ctx{fn, arg};
  auto walk_segment = [](const Segment* seg, void* c) {
    const Ctx& x = *static_cast<Ctx*>(c);
    for (size_t i = 1; i < kSlicesPerSegment; ++i) {
      const Span* span = &seg->spans[i];
      if (span->kind != SpanKind::kSampled || span->first != i) continue;
      const size_t size = kClasses[span->cls].size;
      char* start = SpanStart(span);
      for (size_t off = 0; off + size <= span->bump; off += size) {
        auto* h = reinterpret_cast<Header*>(start + off);
        if (__atomic_load_n(&h->state, __ATOMIC_ACQUIRE) != kLive) continue;
        if (h->size > size - kSmallOverhead) continue;  // not a header
        x.fn(Block{h, start + off + kSmallOverhead, start + off + size}, x.arg);
      }
    }
  };
  if (locked) {
    page_heap::ForEachSegmentLocked(walk_segment, &ctx);
  } else {
    page_heap::ForEachSegment(walk_segment, &ctx);
    g_table_mu.Lock();
  }
  for (size_t i = 0; i < g_table_cap; ++i) {
    MappedRecord* r = g_table[i];
    if (r != nullptr && r->h.state == kLive) fn(Block{&r->h, r->user, r->end}, arg);
  }
  if (!locked) g_table_mu.Unlock();
}

void ForEachLive(void (*fn)(const Block& b, void* arg), void* arg) { WalkLive(fn, arg, false); }

void LockForLeakScan() {
  LockForFork();  // quarantine, table: the order of the fork handler
  page_heap::LockForFork();
}

void UnlockAfterLeakScan() {
  page_heap::UnlockAfterFork(false);
  UnlockAfterFork(false);
}

void ForEachLiveLocked(void (*fn)(const Block& b, void* arg), void* arg) {
  WalkLive(fn, arg, true);
}

// Used by the fault handler: the mapped block whose memory or guard pages
// hold address a (nullptr header if none). Lock-free reading of the table:
// the process is about to die.
Block FindMappedNear(uintptr_t a, bool* in_guard) {
  for (size_t i = 0; i < g_table_cap; ++i) {
    MappedRecord* r = g_table[i];
    if (r == nullptr) continue;
    const uintptr_t lo = reinterpret_cast<uintptr_t>(r->base);
    if (a < lo || a >= lo + r->length) continue;
    const uintptr_t end = reinterpret_cast<uintptr_t>(r->end);
    *in_guard =
        (r->h.flags & kGuarded) != 0 && (a >= end || a < reinterpret_cast<uintptr_t>(r->user));
    return {&r->h, r->user, r->end};
  }
  return {};
}

Counters GetCounters() {
  Counters c;
  c.live_blocks = __atomic_load_n(&g_live_blocks, __ATOMIC_RELAXED);
  c.live_bytes = __atomic_load_n(&g_live_bytes, __ATOMIC_RELAXED);
  c.guarded_total = __atomic_load_n(&g_guarded_total, __ATOMIC_RELAXED);
  LockGuard g(g_quarantine_mu);
  c.quarantine_blocks = g_q_count;
  c.quarantine_bytes = g_q_bytes - g_q_count;
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

void FlushThread() {
  Magazine& m = tls_magazine;
  if (m.off) return;
  m.off = true;
  for (size_t cls = 1; cls < kNumClasses; ++cls) {
    const size_t n = m.count[cls];
    if (n > 0) central::Give(cls, m.head[cls], n, central::kSampled);
    m.head[cls] = nullptr;
    m.count[cls] = 0;
  }
}

void LockForFork() {
  g_quarantine_mu.Lock();
  g_table_mu.Lock();
}

void UnlockAfterFork(bool child) {
  g_table_mu.UnlockAfterFork(child);
  g_quarantine_mu.UnlockAfterFork(child);
}

}  // namespace assay::internal::debug
