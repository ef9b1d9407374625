// Stack capture (stack_capture.h).
#include "profiler/stack_capture.h"

// Local unwinding only: the unw_* names bind to libunwind.so's _UL* symbols.
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include <cstring>

#include "base/base.h"
#include "base/entry_points.h"
#include "profiler/fp_mappings.h"

namespace assay::profiler {
namespace {

// Room for the profiler's and allocator's own frames above the entry point.
constexpr size_t kOwnFrames = 32;

// unw_backtrace keeps a frame cache per thread: 256 KiB mapped and written
// (16384 slots: about 70 000 instructions and 64 page faults) on the
// thread's first call, unmapped at its exit. Warm, it walks a stack in about
// 1 100 instructions. An unw_step loop needs no such cache but goes through
// libunwind's global one, behind a lock that also blocks signals (two system
// calls a frame): about 7 000 instructions, and 10 us a stack against 1 us
// on the server workload at rate=1. The cache's 70 000 instructions are the
// extra cost of about ten stepped stacks, so a thread's first kSteppedStacks
// stacks are stepped: the many threads that sample once or twice
// (short-lived workers, pools at a low rate) never pay 256 KiB each.
constexpr uint32_t kSteppedStacks = 8;
ASSAY_TLS uint32_t tls_unwound_stacks;

// Steps from `context` (taken by a function still running: the walk starts
// there). sps (optional) receives each frame's stack pointer: the return
// address that leads into frame i sits at sps[i] - 8. Inlined: every frame
// between the capture and the program costs libunwind a step (about 840
// instructions while its caches are cold).
__attribute__((always_inline)) inline size_t StepFrom(unw_context_t* context, uintptr_t* out,
                                                      size_t max, uintptr_t* sps) {
  unw_cursor_t cursor;
  if (unw_init_local(&cursor, context) != 0) return 0;
  size_t n = 0;
  while (n < max && unw_step(&cursor) > 0) {
    unw_word_t ip, sp = 0;
    if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) break;
    if (sps != nullptr && unw_get_reg(&cursor, UNW_REG_SP, &sp) != 0) sp = 0;
    if (sps != nullptr) sps[n] = sp;
    out[n++] = ip;
  }
  return n;
}

__attribute__((always_inline)) inline size_t StepLoop(uintptr_t* out, size_t max) {
  unw_context_t context;
  if (unw_getcontext(&context) != 0) return 0;
  return StepFrom(&context, out, max, nullptr);
}

__attribute__((always_inline)) inline size_t Unwind(uintptr_t* out, size_t max) {
  if (tls_unwound_stacks < kSteppedStacks) {
    ++tls_unwound_stacks;
    return StepLoop(out, max);
  }
  const int got = unw_backtrace(reinterpret_cast<void**>(out), static_cast<int>(max));
  return got > 0 ? static_cast<size_t>(got) : 0;
}

// The entry-point ranges (base/entry_points.h), read once per walk.
struct EntryRanges {
  uintptr_t api_lo, api_size, new_lo, new_size;
  EntryRanges()
      : api_lo(reinterpret_cast<uintptr_t>(assay_internal_api_begin)),
        api_size(reinterpret_cast<uintptr_t>(assay_internal_api_end) - api_lo + 1),
        new_lo(reinterpret_cast<uintptr_t>(assay_internal_new_begin)),
        new_size(reinterpret_cast<uintptr_t>(assay_internal_new_end) - new_lo + 1) {}
  bool Holds(uintptr_t pc) const { return pc - api_lo < api_size || pc - new_lo < new_size; }
};

// The frame-pointer walks write the program's frames only: they step over
// the profiler's and the allocator's own frames (at most kOwnFrames), and
// start writing at the frame after the outermost entry frame; no copy and
// no second pass over the frames (ProgramStart) is needed.
enum class Walk : uint8_t {
  kOk,       // out holds the program's frames
  kFail,     // the caller walks with libunwind (record says where it stopped)
  kStale,    // the table missed a pc or names an object since unloaded
  kNoEntry,  // no entry frame within kOwnFrames: not called through malloc & co.
};

struct HybridResult {
  size_t n;  // program frames written; also kept on failure (LearnRoot compares them)
  Walk walk;
  uintptr_t record;  // where the walk stopped (for learning the root)
  uintptr_t root_pc;
  uint64_t seq;  // the table the walk used
};

// The frame-pointer chain from the caller's frame, trusting every frame
// (StackMethod::kFramePointer). kOk or kNoEntry.
__attribute__((noinline)) HybridResult WalkFramePointers(uintptr_t* out, size_t max, uintptr_t lo,
                                                         uintptr_t hi) {
  HybridResult r{0, Walk::kNoEntry, 0, 0, 0};
  const EntryRanges entry;
  const uintptr_t* fp = static_cast<const uintptr_t*>(__builtin_frame_address(0));
  const uintptr_t room = hi - lo - 2 * sizeof(uintptr_t);
  // A frame record is two words inside the stack.
  if (reinterpret_cast<uintptr_t>(fp) - lo > room) return r;
  bool seen = false;
  for (size_t own = 0;; ++own) {
    const uintptr_t ret = fp[1];
    const uintptr_t* next = reinterpret_cast<const uintptr_t*>(fp[0]);
    if (entry.Holds(ret)) {
      seen = true;
    } else if (seen) {
      break;  // fp is the program's first frame
    }
    // Frames grow toward higher addresses; anything else is garbage.
    if (own == kOwnFrames || next <= fp || reinterpret_cast<uintptr_t>(next) - lo > room) return r;
    fp = next;
  }
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

// The hybrid walk (StackMethod::kUnwind). Below the program's outermost
// frame-pointer frame lie a few frames, mostly of code without frame
// pointers, that never change while the thread runs (libc's
// __libc_start_call_main and __libc_start_main, then _start; start_thread
// and clone3): the thread's "root". It is learned once from a libunwind
// walk, with the stack slot of each of its return addresses, and reused
// while the walk ends at the same frame record, holding the same saved %rbp
// and return address, and every slot still holds its address: libunwind
// would find the same frames (each frame's place follows from its pc and
// the one below it), so the stack equals what libunwind gives.
constexpr size_t kMaxRoot = 6;
struct Root {
  uintptr_t record;     // frame record whose return address is pcs[0]
  uintptr_t saved_rbp;  // the record's first word
  uint64_t seq;         // the table it was learned with (pcs[0] in code without frame pointers)
  uint32_t n;           // 0: none learned
  uint32_t disabled;    // the walk once disagreed with libunwind: libunwind only
  uintptr_t pcs[kMaxRoot];
  uintptr_t slots[kMaxRoot];
};
ASSAY_TLS Root tls_root;
ASSAY_TLS uint64_t tls_hybrid_walks;

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

__attribute__((noinline)) CodeRange EnterRange(uintptr_t ret, uint64_t seq) {
  const LastRange& last = tls_last_range;
  if (last.seq == seq && ret - last.r.lo < last.r.size) return last.r;
  fp_mappings::Range m;
  if (!LookUp(ret, seq, &m)) return {0, kStaleRange};
  if (!m.fp) return {0, kNoFpRange};
  if (!m.pinned && !fp_mappings::StillLoaded(m, ret)) return {0, kStaleRange};
  const CodeRange r{m.lo, m.hi - m.lo};
  if (m.pinned) tls_last_range = LastRange{seq, r};
  return r;
}

// Appends the thread's root to out[0, n) if the walk stopped at the record
// it was learned from, unchanged: the new length, or 0 if not.
size_t AppendRoot(const uintptr_t* fp, uintptr_t ret, uint64_t seq, uintptr_t* out, size_t n,
                  size_t max) {
  const Root& root = tls_root;
  // No root learned: record is 0, never a frame's address.
  if (root.record != reinterpret_cast<uintptr_t>(fp) || root.pcs[0] != ret ||
      root.saved_rbp != fp[0] || root.seq != seq) {
    return 0;
  }
  const uint32_t count = root.n;
  for (uint32_t i = 1; i < count; ++i) {
    if (*reinterpret_cast<const uintptr_t*>(root.slots[i]) != root.pcs[i]) return 0;
  }
  const size_t take = count < max - n ? count : max - n;
  for (size_t i = 0; i < take; ++i) out[n + i] = root.pcs[i];
  return n + take;
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

// Walks with the table as of `seq`; the caller checks it was current.
// Own frames first (all in OwnCode), then the program's, written to out.
__attribute__((noinline)) HybridResult WalkHybrid(uintptr_t* out, size_t max, uintptr_t lo,
                                                  uintptr_t hi, uint64_t seq) {
  HybridResult r{0, Walk::kFail, 0, 0, seq};
  if ((seq & 1) != 0) return r;
  const EntryRanges entry;
  const uintptr_t* fp = static_cast<const uintptr_t*>(__builtin_frame_address(0));
  const uintptr_t room = hi - lo - 2 * sizeof(uintptr_t);
  // A frame record is two words inside the stack.
  if (reinterpret_cast<uintptr_t>(fp) - lo > room) return r;
  OwnCode own{__atomic_load_n(&g_own.lo, __ATOMIC_RELAXED),
              __atomic_load_n(&g_own.size, __ATOMIC_RELAXED)};
  if (own.size == 0) own = LearnOwnCode(seq);
  if (own.size <= 1) return r;
  bool seen = false;
  for (size_t k = 0;; ++k) {
    const uintptr_t ret = fp[1];
    if (entry.Holds(ret)) {
      seen = true;
    } else if (seen) {
      break;  // fp is the program's first frame
    } else if (ret - own.lo >= own.size) {
      return r;  // code of another object before any entry frame
    }
    const uintptr_t* next = reinterpret_cast<const uintptr_t*>(fp[0]);
    if (k == kOwnFrames) {
      r.walk = Walk::kNoEntry;
      return r;
    }
    // Frames grow toward higher addresses; anything else is garbage.
    if (next <= fp || reinterpret_cast<uintptr_t>(next) - lo > room) return r;
    fp = next;
  }
  // cur is always a range of code with frame pointers (empty at first).
  CodeRange cur{0, 0};
  size_t n = 0;
  for (;;) {
    const uintptr_t ret = fp[1];
    if (ret - cur.lo >= cur.size) {
      // The learned root is in code without frame pointers (with this
      // table): no need to look its range up again.
      if (reinterpret_cast<uintptr_t>(fp) == tls_root.record) {
        const size_t with_root = AppendRoot(fp, ret, seq, out, n, max);
        if (with_root != 0) {
          n = with_root;
          break;
        }
      }
      const CodeRange next = EnterRange(ret, seq);
      if (next.size == kNoFpRange) {
        r.record = reinterpret_cast<uintptr_t>(fp);
        r.root_pc = ret;
        const size_t with_root = AppendRoot(fp, ret, seq, out, n, max);
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
  if (fp_mappings::Valid(seq)) r.walk = Walk::kOk;
  return r;
}

// Index of the first program frame: the one after the entry-point frames
// (which are contiguous: an entry point calls no program code), or 0.
inline size_t ProgramStart(const uintptr_t* buf, size_t n) {
  size_t i = 0;
  while (i < n && !internal::IsEntryFrame(buf[i])) ++i;
  if (i == n) return 0;
  while (i < n && internal::IsEntryFrame(buf[i])) ++i;
  return i;
}

// Walks with libunwind into buf (room for max frames), stepping (which gives
// the stack slots), and learns the thread's root from where the hybrid walk
// stopped. Checks that the hybrid walk's program frames (walked) agree with
// libunwind's; if not, the thread walks with libunwind from then on.
// Returns the frames in buf, own frames included.
__attribute__((noinline)) size_t LearnRoot(unw_context_t* context, uintptr_t* buf, size_t max,
                                           const uintptr_t* walked, size_t walked_n,
                                           uintptr_t record, uintptr_t root_pc, uintptr_t lo,
                                           uintptr_t hi, uint64_t seq) {
  uintptr_t sps[kMaxStackDepth + kOwnFrames];
  const size_t n = StepFrom(context, buf, max, sps);
  size_t k = 0;
  while (k < n && !(buf[k] == root_pc && sps[k] - sizeof(uintptr_t) == record + sizeof(uintptr_t)))
    ++k;
  if (k == n || n - k > kMaxRoot || n == max) return n;  // no root here (or cut short)
  // The hybrid walk's program frames must be libunwind's up to the root.
  const size_t b = ProgramStart(buf, k);
  if (walked_n != k - b || std::memcmp(walked, buf + b, walked_n * sizeof(uintptr_t)) != 0) {
    tls_root.disabled = 1;
    return n;
  }
  Root root{record, *reinterpret_cast<const uintptr_t*>(record), seq, 0, 0, {}, {}};
  for (size_t i = k; i < n; ++i) {
    const uintptr_t slot = sps[i] - sizeof(uintptr_t);
    // Each address in its slot on this stack (not so in a signal frame).
    if (slot < lo || slot + sizeof(uintptr_t) > hi ||
        *reinterpret_cast<const uintptr_t*>(slot) != buf[i]) {
      return n;
    }
    root.pcs[root.n] = buf[i];
    root.slots[root.n] = slot;
    ++root.n;
  }
  tls_root = root;
  return n;
}

// A safety net for objects classified wrongly (fp_mappings decides per
// object: a mostly frame-pointer object may still hold a function without
// them that calls malloc, and the walk would skip its caller): every
// kVerifyEvery-th hybrid stack of a thread is taken again with libunwind
// (about 7 000 instructions: 27 a stack); if the program frames differ, the
// process walks with libunwind from then on.
constexpr uint64_t kVerifyEvery = 256;
uint32_t g_hybrid_broken;  // atomic

// Checks the walk's n program frames in out (at most max) against
// libunwind's stack, taken into buf (room for want frames). Returns true if
// they agree; else libunwind's stack is in buf[0, *m).
__attribute__((noinline)) bool Verify(const uintptr_t* out, size_t n, size_t max, uintptr_t* buf,
                                      size_t want, size_t* m) {
  *m = StepLoop(buf, want);
  const size_t b = ProgramStart(buf, *m), got = *m - b;
  // Either stack may be cut by its bound where the other was not: compare
  // what both hold.
  const bool lengths = n == got || (n == max && got > n) || (*m == want && got < n);
  const size_t common = n < got ? n : got;
  if (lengths && std::memcmp(out, buf + b, common * sizeof(uintptr_t)) == 0) return true;
  __atomic_store_n(&g_hybrid_broken, 1, __ATOMIC_RELAXED);
  return false;
}

// A thread whose walks keep failing (a program built without frame
// pointers fails at its first frame) tries again only every kBackoff
// stacks: each failed try costs the probe and the allocator's frames
// (about 450 instructions) on top of libunwind.
constexpr uint32_t kMissesBeforeBackoff = 8;
constexpr uint32_t kBackoff = 64;
ASSAY_TLS uint32_t tls_misses;
ASSAY_TLS uint32_t tls_backoff;
constexpr uint32_t kStaleProbeEvery = 64;
ASSAY_TLS uint32_t tls_stale;

// The hybrid walk with its fallbacks: the program's frames in out (at most
// max; returns how many, *full false), or the whole stack, own frames
// included, in buf (room for want; *full true). Inlined into CaptureStack
// so that libunwind steps no more frames than it did before the hybrid walk
// existed.
__attribute__((always_inline)) inline size_t Hybrid(uintptr_t* out, size_t max, uintptr_t* buf,
                                                    size_t want, uintptr_t lo, uintptr_t hi,
                                                    bool* full) {
  *full = true;
  if (tls_root.disabled || __atomic_load_n(&g_hybrid_broken, __ATOMIC_RELAXED) != 0)
    return Unwind(buf, want);
  if (tls_backoff != 0) {
    --tls_backoff;
    return Unwind(buf, want);
  }
  // The table is probed (dl_iterate_phdr: the loader's lock, 260
  // instructions; at rate=1 four threads of the server workload queued on
  // that lock) only when a walk finds it out of date, and then the walk
  // runs again with the new one; at most once in kStaleProbeEvery such
  // walks (code outside any object, such as a JIT's, is never in it). A
  // stale table costs speed only: a walk that meets it falls back.
  uint64_t seq = fp_mappings::Current();
  if (seq == 0) seq = fp_mappings::Begin();
  HybridResult r = WalkHybrid(out, max, lo, hi, seq);
  if (r.walk == Walk::kStale && tls_stale++ % kStaleProbeEvery == 0) {
    const uint64_t now = fp_mappings::Begin();
    if (now != seq) r = WalkHybrid(out, max, lo, hi, now);
  }
  if (r.walk == Walk::kOk) {
    tls_misses = 0;
    size_t m;
    if (++tls_hybrid_walks % kVerifyEvery == 0 && !Verify(out, r.n, max, buf, want, &m)) return m;
    *full = false;
    return r.n;
  }
  if (r.walk == Walk::kNoEntry) return Unwind(buf, want);
  if (++tls_misses == kMissesBeforeBackoff) {
    tls_misses = 0;
    tls_backoff = kBackoff;
  }
  if (r.record == 0 || tls_unwound_stacks >= kSteppedStacks) return Unwind(buf, want);
  ++tls_unwound_stacks;
  // The context is taken here, in CaptureStack (Hybrid is inlined), so that
  // libunwind starts where Unwind would and steps no extra frame for
  // LearnRoot's (about 840 instructions with its caches cold).
  unw_context_t context;
  if (unw_getcontext(&context) != 0) return 0;
  return LearnRoot(&context, buf, want, out, r.n, r.record, r.root_pc, lo, hi, r.seq);
}

}  // namespace

uint64_t ThreadHybridWalks() { return tls_hybrid_walks; }

size_t CaptureStack(uintptr_t* out, size_t max, StackMethod method, uintptr_t stack_lo,
                    uintptr_t stack_hi) {
  if (max > kMaxStackDepth) max = kMaxStackDepth;
  uintptr_t buf[kMaxStackDepth + kOwnFrames];
  const size_t want = max + kOwnFrames;
  size_t n;
  if (method == StackMethod::kFramePointer && stack_hi > stack_lo) {
    const HybridResult r = WalkFramePointers(out, max, stack_lo, stack_hi);
    if (r.walk == Walk::kOk) return r.n;
    n = Unwind(buf, want);  // not called through an entry point
  } else if (method == StackMethod::kUnwind && stack_hi > stack_lo) {
    bool full;
    n = Hybrid(out, max, buf, want, stack_lo, stack_hi, &full);
    if (!full) return n;
  } else {
    n = Unwind(buf, want);
  }
  // The program's frames start after the entry-point frames.
  const size_t start = ProgramStart(buf, n);
  size_t count = n - start;
  if (count > max) count = max;
  std::memcpy(out, buf + start, count * sizeof(uintptr_t));
  return count;
}

}  // namespace assay::profiler
