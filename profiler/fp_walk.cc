// The frame-pointer walks (fp_walk.h).
#include "profiler/fp_walk.h"

#include "base/base.h"
#include "base/entry_points.h"
#include "profiler/fp_mappings.h"

namespace assay::profiler::fp_walk {

ASSAY_TLS Root tls_root;
ASSAY_TLS uint32_t tls_root_gen;

namespace {

using internal::EntryRanges;

// The ranges this thread's walks went through lately, valid for the table's
// sequence number `seq` (a walk meets the library, the program and libc:
// without it each walk searched the table three times, 225 instructions).
constexpr size_t kCachedRanges = 4;
struct RangeCache {
  uint64_t seq;
  uint32_t next;
  fp_mappings::Range r[kCachedRanges];
};
ASSAY_TLS RangeCache tls_ranges;

// The range holding pc (from the cache, else the table), or false.
bool LookUp(uintptr_t pc, uint64_t seq, fp_mappings::Range* out) {
  RangeCache& c = tls_ranges;
  if (c.seq != seq) {
    c = RangeCache{};
    c.seq = seq;
  }
  for (const fp_mappings::Range& r : c.r) {
    if (pc - r.lo < r.hi - r.lo) {
      *out = r;
      return true;
    }
  }
  if (!fp_mappings::Find(pc, out)) return false;
  c.r[c.next++ % kCachedRanges] = *out;
  return true;
}

// A walk's current range of code with frame pointers, [lo, lo + size);
// from EnterRange also size kStaleRange (the table missed the pc or names an
// object since unloaded) or kNoFpRange (code without frame pointers: the
// root may follow). Returned in two registers.
struct CodeRange {
  uintptr_t lo;
  uintptr_t size;
};
constexpr uintptr_t kStaleRange = 0, kNoFpRange = 1;

// The last pinned range of frame-pointer code that a walk of this thread
// entered (the program's, mostly) for table `seq`: tried before the lookup.
struct LastRange {
  uint64_t seq;
  CodeRange r;
};
ASSAY_TLS LastRange tls_last_range;

// Set when the walk entered a range that is not pinned (an object that may
// be unloaded: checked with StillLoaded on every walk, so never memoized).
ASSAY_TLS bool tls_entered_unpinned;

__attribute__((noinline)) CodeRange EnterRange(uintptr_t ret, uint64_t seq) {
  const LastRange& last = tls_last_range;
  if (last.seq == seq && ret - last.r.lo < last.r.size) return last.r;
  fp_mappings::Range m;
  if (!LookUp(ret, seq, &m)) return {0, kStaleRange};
  if (!m.fp) return {0, kNoFpRange};
  if (!m.pinned && !fp_mappings::StillLoaded(m, ret)) return {0, kStaleRange};
  const CodeRange r{m.lo, m.hi - m.lo};
  if (m.pinned) {
    tls_last_range = LastRange{seq, r};
  } else {
    tls_entered_unpinned = true;
  }
  return r;
}

// Appends root's frames to out[0, n), as many as max leaves room for: the
// new length.
size_t AppendPcs(const Root& root, uintptr_t* out, size_t n, size_t max) {
  const size_t take = root.n < max - n ? root.n : max - n;
  for (size_t i = 0; i < take; ++i) out[n + i] = root.pcs[i];
  return n + take;
}

// Appends root to out[0, n) if each of its slots still holds its address
// (slot 0, the walk's last return address, was compared already): the new
// length, or 0 if not.
size_t AppendIfInPlace(const Root& root, uintptr_t* out, size_t n, size_t max) {
  return SlotsHold(root) ? AppendPcs(root, out, n, max) : 0;
}

// Appends the thread's root to out[0, n) if the walk stopped at the record
// it was learned from, unchanged (RootHolds): the new length, or 0 if not.
size_t AppendRoot(const uintptr_t* fp, uint64_t seq, uintptr_t* out, size_t n, size_t max) {
  return RootHolds(fp, seq) ? AppendPcs(tls_root, out, n, max) : 0;
}

// Root shapes: a root's return addresses and the offsets of their stack
// slots from the frame record the walk stops at. A thread's root frames sit
// at fixed offsets from that record: the record's return address (pcs[0])
// fixes the code the walk returns into, so its frame's size (the CFA rule
// at that pc), and so on down. Every thread started the same way (a
// program's pthread_create: start_thread, clone3) has the same shape, so a
// new thread takes its root from the shape the first one learned with
// libunwind, checking that each slot holds its address, instead of a
// stepped libunwind walk of its own (~7 000 instructions: most of what the
// profiler cost larson's short-lived threads). Published once, never
// changed: readers load the count with acquire and read below it. Not tied
// to a table: a shape is tried only where the current table places ret in
// code without frame pointers, and every slot must hold its address.
constexpr size_t kShapes = 4;
struct Shape {
  uint32_t n;
  uintptr_t pcs[kMaxRoot];
  uintptr_t offsets[kMaxRoot];  // slot - record
};
Shape g_shapes[kShapes];
uint32_t g_shape_count;  // atomic
uint32_t g_shape_lock;   // atomic: 1 while a shape is written

// Installs as the thread's root the published shape whose first return
// address is ret, if its slots above record fp (inside [lo, hi)) hold its
// addresses; appends it to out[0, n): the new length, or 0.
__attribute__((noinline)) size_t AppendShape(const uintptr_t* fp, uintptr_t ret, uint64_t seq,
                                             uintptr_t lo, uintptr_t hi, uintptr_t* out, size_t n,
                                             size_t max) {
  const uint32_t count = __atomic_load_n(&g_shape_count, __ATOMIC_ACQUIRE);
  const uintptr_t record = reinterpret_cast<uintptr_t>(fp);
  for (uint32_t k = 0; k < count; ++k) {
    const Shape& s = g_shapes[k];
    if (s.pcs[0] != ret) continue;
    Root root{record, fp[0], seq, s.n, 0, {}, {}};
    bool inside = true;
    for (uint32_t i = 0; i < s.n; ++i) {
      root.pcs[i] = s.pcs[i];
      root.slots[i] = record + s.offsets[i];
      inside = inside && root.slots[i] - lo <= hi - lo - sizeof(uintptr_t);
    }
    if (!inside) continue;
    const size_t with_root = AppendIfInPlace(root, out, n, max);
    if (with_root == 0) continue;
    tls_root = root;
    ++tls_root_gen;
    return with_root;
  }
  return 0;
}

// The code of the object that holds this file (libassay.so, or the program
// assay is linked into), if it keeps frame pointers: the profiler's and the
// allocator's own frames all lie in it. Pinned (never unloaded): looked up
// once. size 0: not known yet; 1: not frame-pointer code.
struct OwnCode {
  uintptr_t lo;
  uintptr_t size;
};
OwnCode g_own;  // relaxed atomics

__attribute__((noinline)) OwnCode LearnOwnCode(uint64_t seq) {
  fp_mappings::Range m;
  OwnCode own{0, 0};
  if (!LookUp(reinterpret_cast<uintptr_t>(&LearnOwnCode), seq, &m)) return own;
  own = m.fp && m.pinned ? OwnCode{m.lo, m.hi - m.lo} : OwnCode{0, 1};
  __atomic_store_n(&g_own.lo, own.lo, __ATOMIC_RELAXED);
  __atomic_store_n(&g_own.size, own.size, __ATOMIC_RELAXED);
  return own;
}

// Steps from frame record fp over the profiler's and the allocator's own
// frames (inside the stack: record - lo <= room), whose return addresses
// lie in own until the entry frames: the record of the program's first
// frame, the one after the outermost entry frame. Else nullptr and *why:
// kNoEntry (no entry frame within kOwnFrames: not called through malloc &
// co.) or kFail (a return address elsewhere first, or a broken chain).
// Inlined into both walks: called, it cost a walk ~30 instructions.
ASSAY_INLINE const uintptr_t* SkipOwnFrames(const uintptr_t* fp, uintptr_t lo, uintptr_t room,
                                            OwnCode own, Walk* why) {
  *why = Walk::kFail;
  if (reinterpret_cast<uintptr_t>(fp) - lo > room) return nullptr;
  const EntryRanges entry;
  bool seen = false;
  for (size_t k = 0;; ++k) {
    const uintptr_t ret = fp[1];
    if (entry.Holds(ret)) {
      seen = true;
    } else if (seen) {
      return fp;
    } else if (ret - own.lo >= own.size) {
      return nullptr;  // code of another object before any entry frame
    }
    if (k == kOwnFrames) {
      *why = Walk::kNoEntry;
      return nullptr;
    }
    // Frames grow toward higher addresses; anything else is garbage.
    const uintptr_t* next = reinterpret_cast<const uintptr_t*>(fp[0]);
    if (next <= fp || reinterpret_cast<uintptr_t>(next) - lo > room) return nullptr;
    fp = next;
  }
}

}  // namespace

void PublishRoot(const Root& root) {
  if (root.n == 0 || __atomic_load_n(&g_shape_count, __ATOMIC_ACQUIRE) >= kShapes) return;
  if (__atomic_exchange_n(&g_shape_lock, 1, __ATOMIC_ACQUIRE) != 0) return;  // another publishes
  const uint32_t count = __atomic_load_n(&g_shape_count, __ATOMIC_RELAXED);
  bool known = false;
  for (uint32_t k = 0; k < count; ++k) {
    known = known || g_shapes[k].pcs[0] == root.pcs[0];
  }
  if (!known && count < kShapes) {
    Shape& s = g_shapes[count];
    s.n = root.n;
    for (uint32_t i = 0; i < root.n; ++i) {
      s.pcs[i] = root.pcs[i];
      s.offsets[i] = root.slots[i] - root.record;
    }
    __atomic_store_n(&g_shape_count, count + 1, __ATOMIC_RELEASE);
  }
  __atomic_store_n(&g_shape_lock, 0, __ATOMIC_RELEASE);
}

__attribute__((noinline)) Result FramePointers(uintptr_t* out, size_t max, uintptr_t lo,
                                               uintptr_t hi) {
  Result r{0, Walk::kFail, false, 0, 0, 0, 0};
  const uintptr_t room = hi - lo - 2 * sizeof(uintptr_t);
  // Every return address counts as assay's own until the entry frames.
  const uintptr_t* fp = SkipOwnFrames(static_cast<const uintptr_t*>(__builtin_frame_address(0)), lo,
                                      room, OwnCode{0, ~uintptr_t{0}}, &r.walk);
  if (fp == nullptr) return r;
  r.walk = Walk::kOk;
  size_t n = 0;
  while (n < max) {
    const uintptr_t ret = fp[1];
    if (ret < 4096) break;
    out[n++] = ret;
    const uintptr_t* next = reinterpret_cast<const uintptr_t*>(fp[0]);
    if (next <= fp || reinterpret_cast<uintptr_t>(next) - lo > room) break;
    fp = next;
  }
  r.n = n;
  return r;
}

__attribute__((noinline)) Result Hybrid(uintptr_t* out, size_t max, uintptr_t lo, uintptr_t hi,
                                        uint64_t seq) {
  Result r{0, Walk::kFail, false, 0, 0, seq, 0};
  if ((seq & 1) != 0) return r;
  const uintptr_t room = hi - lo - 2 * sizeof(uintptr_t);
  OwnCode own{__atomic_load_n(&g_own.lo, __ATOMIC_RELAXED),
              __atomic_load_n(&g_own.size, __ATOMIC_RELAXED)};
  if (own.size == 0) own = LearnOwnCode(seq);
  if (own.size <= 1) return r;
  const uintptr_t* fp = SkipOwnFrames(static_cast<const uintptr_t*>(__builtin_frame_address(0)), lo,
                                      room, own, &r.walk);
  if (fp == nullptr) return r;
  r.first = reinterpret_cast<uintptr_t>(fp);
  tls_entered_unpinned = false;
  // cur is always a range of code with frame pointers (empty at first).
  CodeRange cur{0, 0};
  size_t n = 0;
  for (;;) {
    const uintptr_t ret = fp[1];
    if (ret - cur.lo >= cur.size) {
      // The learned root is in code without frame pointers (with this
      // table): no need to look its range up again.
      if (reinterpret_cast<uintptr_t>(fp) == tls_root.record) {
        const size_t with_root = AppendRoot(fp, seq, out, n, max);
        if (with_root != 0) {
          n = with_root;
          break;
        }
      }
      const CodeRange next = EnterRange(ret, seq);
      if (next.size == kNoFpRange) {
        r.record = reinterpret_cast<uintptr_t>(fp);
        r.root_pc = ret;
        // (The thread's own root was tried above: it was not this record.)
        const size_t with_root = AppendShape(fp, ret, seq, lo, hi, out, n, max);
        if (with_root != 0) {
          n = with_root;
          break;
        }
      }
      if (next.size <= kNoFpRange) {
        if (next.size == kStaleRange) r.walk = Walk::kStale;
        r.n = n;
        return r;
      }
      cur = next;
    }
    out[n++] = ret;
    if (n == max) break;
    const uintptr_t* next = reinterpret_cast<const uintptr_t*>(fp[0]);
    if (next <= fp) {
      if (next == nullptr) break;  // the outermost frame (_start clears %rbp)
      r.n = n;
      return r;  // frames grow toward higher addresses; else garbage
    }
    if (reinterpret_cast<uintptr_t>(next) - lo > room) {
      r.n = n;
      return r;
    }
    fp = next;
  }
  r.n = n;
  r.pinned_only = !tls_entered_unpinned;
  if (fp_mappings::Valid(seq)) r.walk = Walk::kOk;
  return r;
}

const uintptr_t* EntryRecord(uintptr_t lo, uintptr_t hi, uint64_t seq) {
  OwnCode own{__atomic_load_n(&g_own.lo, __ATOMIC_RELAXED),
              __atomic_load_n(&g_own.size, __ATOMIC_RELAXED)};
  if (own.size == 0) own = LearnOwnCode(seq);
  if (own.size <= 1) return nullptr;
  Walk why;
  return SkipOwnFrames(static_cast<const uintptr_t*>(__builtin_frame_address(0)), lo,
                       hi - lo - 2 * sizeof(uintptr_t), own, &why);
}

}  // namespace assay::profiler::fp_walk
