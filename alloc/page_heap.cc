// The page heap (page_heap.h): first fit over segments in address order of
// creation, with runs found by bit tricks on each segment's 64-bit free mask.
#include "alloc/page_heap.h"

#include <bit>

#include "alloc/debug_hooks.h"
#include "alloc/page_heap_state.h"
#include "alloc/purge_pace.h"
#include "alloc/slice_purge.h"
#include "alloc/span_purge.h"
#include "base/assert.h"
#include "base/bits.h"
#include "base/layout.h"
#include "base/lock.h"
#include "base/options.h"
#include "base/os.h"
#include "base/probes.h"

namespace assay::internal {

namespace segment_map {
uint64_t g_bits[kWords];

void Set(uintptr_t segment_base, bool present) {
  const uintptr_t idx = segment_base >> kSegmentShift;
  const uint64_t bit = uint64_t{1} << (idx % 64);
  if (present) {
    __atomic_fetch_or(&g_bits[idx / 64], bit, __ATOMIC_RELEASE);
  } else {
    __atomic_fetch_and(&g_bits[idx / 64], ~bit, __ATOMIC_RELEASE);
  }
}
}  // namespace segment_map

namespace page_heap {

constinit State g_heap;

namespace {

ASSAY_INLINE size_t HintOf(const Segment* seg) { return (seg->Base() >> kSegmentShift) % 256; }

ASSAY_FIRST_USE size_t SlotOf(const Segment* seg) {
  const size_t h = g_heap.hint[HintOf(seg)];
  if (h < g_heap.nslots && g_heap.slots[h].seg == seg) return h;
  for (size_t i = 0; i < g_heap.nslots; ++i) {
    if (g_heap.slots[i].seg == seg) {
      g_heap.hint[HintOf(seg)] = static_cast<uint32_t>(i);
      return i;
    }
  }
  os::WriteStderr("assay: page heap segment index lost a segment\n");
  os::Abort();
}

// Copies seg's masks into its slot; after every change of them.
ASSAY_INLINE void SyncMasks(const Segment* seg) {
  MaskSlot& slot = g_heap.slots[SlotOf(seg)];
  slot.free_mask = seg->free_mask;
  slot.dirty_mask = seg->dirty_mask;
}

bool AddSlot(Segment* seg) {
  if (g_heap.nslots == g_heap.slot_capacity) {
    const size_t cap =
        g_heap.slot_capacity == 0 ? kPageSize / sizeof(MaskSlot) : g_heap.slot_capacity * 2;
    auto* slots = static_cast<MaskSlot*>(os::MapAligned(cap * sizeof(MaskSlot), kPageSize));
    if (slots == nullptr) return false;
    for (size_t i = 0; i < g_heap.nslots; ++i) slots[i] = g_heap.slots[i];
    if (g_heap.slots != nullptr) os::Unmap(g_heap.slots, g_heap.slot_capacity * sizeof(MaskSlot));
    g_heap.slots = slots;
    g_heap.slot_capacity = cap;
  }
  g_heap.hint[HintOf(seg)] = static_cast<uint32_t>(g_heap.nslots);
  g_heap.slots[g_heap.nslots++] = MaskSlot{seg, seg->free_mask, seg->dirty_mask};
  return true;
}

void RemoveSlot(const Segment* seg) {
  const size_t i = SlotOf(seg);
  for (size_t j = i + 1; j < g_heap.nslots; ++j) g_heap.slots[j - 1] = g_heap.slots[j];
  g_heap.nslots--;
}

// Index of the lowest (or, with highest, the highest) run of n set bits in
// mask, or -1.
int FindRun(uint64_t mask, size_t n, bool highest = false) {
  uint64_t m = mask;
  size_t have = 1;
  while (have < n && m != 0) {
    const size_t step = have < n - have ? have : n - have;
    m &= m >> step;
    have += step;
  }
  if (m == 0) return -1;
  return highest ? 63 - std::countl_zero(m) : std::countr_zero(m);
}

Segment* NewSegment() {
  void* mem = os::MapAligned(kSegmentSize, kSegmentSize);
  if (mem == nullptr) return nullptr;
  Segment* seg = static_cast<Segment*>(mem);  // zero-filled by the OS
  seg->magic = kSegmentMagic;
  seg->layout_version = kSegmentLayoutVersion;
  seg->spans[0].kind = SpanKind::kHeader;
  seg->spans[0].slices = 1;
  seg->free_mask = kAllSpanSlices;
  if (!AddSlot(seg)) {
    os::Unmap(mem, kSegmentSize);
    return nullptr;
  }
  // empty_since_ms stays 0: AllocSpan carves the new segment at once, and
  // only FreeSpan makes a segment wholly free again, stamping it then. (The
  // clock here cost every process a 64 KiB chunk of libc's text at start.)
  seg->prev = g_heap.tail;
  if (g_heap.tail != nullptr)
    g_heap.tail->next = seg;
  else
    g_heap.head = seg;
  g_heap.tail = seg;
  g_heap.stats.segments++;
  g_heap.stats.mapped += kSegmentSize;
  g_heap.stats.free_clean += kSegmentSize - kSliceSize;
  segment_map::Set(seg->Base(), true);
  ASSAY_PROBE2(heap_grow, seg->Base(), kSegmentSize);
  return seg;
}

void UnmapSegment(Segment* seg) {
  RemoveSlot(seg);
  segment_map::Set(seg->Base(), false);
  if (seg->prev != nullptr)
    seg->prev->next = seg->next;
  else
    g_heap.head = seg->next;
  if (seg->next != nullptr)
    seg->next->prev = seg->prev;
  else
    g_heap.tail = seg->prev;
  g_heap.stats.segments--;
  g_heap.stats.mapped -= kSegmentSize;
  g_heap.stats.free_clean -= kSegmentSize - kSliceSize;
  g_heap.stats.unmapped_total += kSegmentSize;
  ASSAY_PROBE2(heap_shrink, seg->Base(), kSegmentSize);
  os::Unmap(seg, kSegmentSize);
}

void MarkSpan(Segment* seg, size_t first, size_t n, SpanKind kind, uint8_t cls) {
  Span& s = seg->spans[first];
  s = Span{};
  s.kind = kind;
  s.cls = cls;
  s.first = static_cast<uint8_t>(first);
  s.slices = static_cast<uint8_t>(n);
  for (size_t i = first; i < first + n; ++i) {
    seg->slice_map[i].first = static_cast<uint8_t>(first);
    __atomic_store_n(&seg->slice_map[i].cls, kind == SpanKind::kSmall ? cls : 0, __ATOMIC_RELAXED);
  }
}

// Purges what has waited long enough: sparse slices dirty for decay_ms,
// dense ones for the dense decay (purge_pace.h; both decay_ms 0: all).
size_t PurgeLocked(uint64_t now_ms, uint64_t decay_ms) {
  const uint64_t dense_ms = purge_pace::DenseDecay(now_ms, decay_ms);
  size_t released = 0;
  // Through the mask index: segments with nothing free are not touched.
  for (size_t k = 0; k < g_heap.nslots;) {
    const MaskSlot slot = g_heap.slots[k];
    Segment* seg = slot.seg;
    uint64_t old = 0;
    uint64_t unclassified = 0;
    for (uint64_t d = slot.dirty_mask; d != 0; d &= d - 1) {
      const size_t i = static_cast<size_t>(std::countr_zero(d));
      const uint64_t stamp = seg->freed_at_ms[i];
      const uint64_t age = now_ms - purge_pace::TimeOf(stamp);
      if (age < decay_ms) continue;
      if (dense_ms == 0 || (purge_pace::IsDense(stamp) && age >= dense_ms)) {
        old |= uint64_t{1} << i;
      } else if (!purge_pace::IsDense(stamp)) {
        unclassified |= uint64_t{1} << i;
      }
    }
    if (unclassified != 0) {
      const uint64_t sparse = slice_purge::Sparse(seg, unclassified);
      old |= sparse;
      for (uint64_t d = unclassified & ~sparse; d != 0; d &= d - 1) {
        const size_t i = static_cast<size_t>(std::countr_zero(d));
        if (now_ms - purge_pace::TimeOf(seg->freed_at_ms[i]) >= dense_ms) old |= uint64_t{1} << i;
      }
    }
    if (old != 0) {
      const size_t n = slice_purge::Purge(seg, old, now_ms);
      seg->dirty_mask &= ~old;
      g_heap.slots[k].dirty_mask = seg->dirty_mask;
      g_heap.stats.dirty -= n;
      g_heap.stats.free_clean += n;
      g_heap.stats.purged_total += n;
      released += n;
    }
    if (slot.free_mask == kAllSpanSlices && seg->dirty_mask == 0 &&
        now_ms - seg->empty_since_ms >= decay_ms) {
      UnmapSegment(seg);       // removes slot k: the next segment moves into it
      released += kSliceSize;  // the header page(s) go too
      continue;
    }
    ++k;
  }
  return released;
}

}  // namespace

ASSAY_FIRST_USE Span* AllocSpan(size_t slices, SpanKind kind, uint8_t cls, bool* zeroed) {
  LockGuard lock(g_heap.mu);
  Segment* found = nullptr;
  int first = -1;
  // Prefer dirty slices (resident already: no page faults, less RSS), then
  // any free ones; oldest segment first so young segments can drain. A
  // sampled-pool span prefers clean slices instead: it holds the few sampled
  // blocks of its class and is carved lazily, so on clean slices it is
  // resident only where they lie, where on dirty ones every small class's
  // span would keep 64 KiB resident for a handful of blocks (3 MiB on
  // strbuild at 512 KiB). It also takes the highest run in its segment,
  // away from the low slices where runs are carved and grow upward: placed
  // first fit, sampled spans stood in the way of realloc's growable runs
  // (strbuild with the profiler moved 30 blocks of 128-256 KiB, 18 without).
  // Not under the debug heap, whose every block is in such spans: there
  // blocks keep the address order of their allocation, which the leak
  // report's split of a leaked cycle follows (as valgrind's does).
  const bool high = kind == SpanKind::kSampled && !debug::g_on;
  auto first_fit = [&](auto mask) {  // in the slices mask(slot) marks
    for (size_t i = 0; i < g_heap.nslots && found == nullptr; ++i) {
      first = FindRun(mask(g_heap.slots[i]), slices, high);
      if (first >= 0) found = g_heap.slots[i].seg;
    }
  };
  if (kind == SpanKind::kSampled)
    first_fit([](const MaskSlot& m) { return m.free_mask & ~m.dirty_mask; });
  first_fit([](const MaskSlot& m) { return m.dirty_mask; });
  first_fit([](const MaskSlot& m) { return m.free_mask; });
  if (found == nullptr) {
    found = NewSegment();
    if (found == nullptr) return nullptr;
    first = high ? static_cast<int>(kSlicesPerSegment - slices) : 1;
  }
  const uint64_t bits = RunBits(static_cast<size_t>(first), slices);
  ASSAY_ASSERT((found->free_mask & bits) == bits);
  const uint64_t dirty = found->dirty_mask & bits;
  *zeroed = dirty == 0;
  // Clean slices purged dense, faulted in again: the purge pace's signal.
  for (uint64_t c = purge_pace::g_any_dense ? bits & ~dirty : 0; c != 0; c &= c - 1) {
    const uint64_t stamp = found->freed_at_ms[std::countr_zero(c)];
    if (purge_pace::IsDense(stamp)) purge_pace::Reused(stamp);
  }
  found->free_mask &= ~bits;
  found->dirty_mask &= ~bits;
  SyncMasks(found);
  const size_t dirty_bytes = static_cast<size_t>(Popcount(dirty)) * kSliceSize;
  g_heap.stats.dirty -= dirty_bytes;
  g_heap.stats.free_clean -= slices * kSliceSize - dirty_bytes;
  MarkSpan(found, static_cast<size_t>(first), slices, kind, cls);
  if (kind == SpanKind::kLarge) {
    g_heap.stats.large_spans++;
    g_heap.stats.large_bytes += slices * kSliceSize;
  }
  ASSAY_CHECKED_ONLY(found->Validate());
  return &found->spans[first];
}

void FreeSpan(Span* span) {
  Segment* seg = SegmentOfSpan(span);
  const uint64_t now = os::NowMs();
  LockGuard lock(g_heap.mu);
  const size_t first = span->first;
  const size_t n = span->slices;
  // A span is freed once, whole, and (small ones) with no block handed out.
  ASSAY_ASSERT(&seg->spans[first] == span && n != 0 && span->kind != SpanKind::kFree &&
               span->kind != SpanKind::kHeader);
  ASSAY_ASSERT((seg->free_mask & RunBits(first, n)) == 0);
  ASSAY_ASSERT(span->kind == SpanKind::kLarge || span->used == 0);
  if (span->kind == SpanKind::kLarge) {
    g_heap.stats.large_spans--;
    g_heap.stats.large_bytes -= n * kSliceSize;
  }
  for (size_t i = first; i < first + n; ++i) {
    __atomic_store_n(&seg->slice_map[i].cls, 0, __ATOMIC_RELAXED);
    seg->freed_at_ms[i] = now;
  }
  *span = Span{};
  const uint64_t bits = RunBits(first, n);
  seg->free_mask |= bits;
  seg->dirty_mask |= bits;
  SyncMasks(seg);
  g_heap.stats.dirty += n * kSliceSize;
  if (seg->free_mask == kAllSpanSlices) seg->empty_since_ms = now;
  ASSAY_CHECKED_ONLY(seg->Validate());
}

bool ResizeLargeInPlace(Span* span, size_t slices) {
  Segment* seg = SegmentOfSpan(span);
  LockGuard lock(g_heap.mu);
  const size_t first = span->first;
  const size_t n = span->slices;
  if (slices == n) return true;
  if (first + slices > kSlicesPerSegment) return false;
  if (slices > n) {
    const uint64_t grow = RunBits(first + n, slices - n);
    if ((seg->free_mask & grow) != grow) return false;
    const size_t dirty_bytes = static_cast<size_t>(Popcount(seg->dirty_mask & grow)) * kSliceSize;
    seg->free_mask &= ~grow;
    seg->dirty_mask &= ~grow;
    SyncMasks(seg);
    g_heap.stats.dirty -= dirty_bytes;
    g_heap.stats.free_clean -= (slices - n) * kSliceSize - dirty_bytes;
  } else {
    const uint64_t shrink = RunBits(first + slices, n - slices);
    const uint64_t now = os::NowMs();
    for (size_t i = first + slices; i < first + n; ++i) seg->freed_at_ms[i] = now;
    seg->free_mask |= shrink;
    seg->dirty_mask |= shrink;
    SyncMasks(seg);
    g_heap.stats.dirty += (n - slices) * kSliceSize;
  }
  g_heap.stats.large_bytes += slices * kSliceSize;
  g_heap.stats.large_bytes -= n * kSliceSize;
  span->slices = static_cast<uint8_t>(slices);
  for (size_t i = first; i < first + slices; ++i)
    seg->slice_map[i].first = static_cast<uint8_t>(first);
  ASSAY_CHECKED_ONLY(seg->Validate());
  return true;
}

size_t Purge(uint64_t now_ms, uint64_t age_ms, bool wait) {
  if (wait) {
    g_heap.mu.Lock();
  } else if (!g_heap.mu.TryLock()) {
    return 0;
  }
  const size_t released = PurgeLocked(now_ms, age_ms);
  g_heap.mu.Unlock();
  return released;
}

ASSAY_FIRST_USE bool HasDirty() {
  return __atomic_load_n(&g_heap.stats.dirty, __ATOMIC_RELAXED) != 0;
}

ASSAY_FIRST_USE size_t MappedBytes() {
  return __atomic_load_n(&g_heap.stats.mapped, __ATOMIC_RELAXED);
}

Stats GetStats() {
  LockGuard lock(g_heap.mu);
  return g_heap.stats;
}

void ForEachSegment(void (*fn)(const Segment*, void*), void* arg) {
  LockGuard lock(g_heap.mu);
  ForEachSegmentLocked(fn, arg);
}

void ForEachSegmentLocked(void (*fn)(const Segment*, void*), void* arg) {
  for (Segment* seg = g_heap.head; seg != nullptr; seg = seg->next) fn(seg, arg);
}

ASSAY_STARTUP void DescribeLayout(AssayLayout* l) {
  l->segment_head_addr = reinterpret_cast<uint64_t>(&g_heap.head);
  l->seg_next_off = offsetof(Segment, next);
  l->seg_free_mask_off = offsetof(Segment, free_mask);
  l->seg_spans_off = offsetof(Segment, spans);
  l->span_size = sizeof(Span);
  l->span_free_list_off = offsetof(Span, free_list);
  l->span_bump_off = offsetof(Span, bump);
  l->span_used_off = offsetof(Span, used);
  l->span_kind_off = offsetof(Span, kind);
  l->span_cls_off = offsetof(Span, cls);
  l->span_first_off = offsetof(Span, first);
  l->span_slices_off = offsetof(Span, slices);
  l->span_sampled_off = offsetof(Span, sampled);
  l->span_purged_off = offsetof(Span, aux);  // small spans: span_purge::Purged
  l->span_purge_units = span_purge::kMaxUnits;
  l->span_cached_off = offsetof(Span, cached);
  l->span_kind_small = static_cast<uint64_t>(SpanKind::kSmall);
  l->span_kind_large = static_cast<uint64_t>(SpanKind::kLarge);
  l->span_kind_sampled = static_cast<uint64_t>(SpanKind::kSampled);
}

void LockForFork() { g_heap.mu.Lock(); }
void UnlockAfterFork(bool child) { g_heap.mu.UnlockAfterFork(child); }

}  // namespace page_heap
}  // namespace assay::internal
