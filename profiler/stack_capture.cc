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

__attribute__((noinline)) size_t WalkFramePointers(uintptr_t* out, size_t max, uintptr_t lo,
                                                   uintptr_t hi) {
  const uintptr_t* fp = static_cast<const uintptr_t*>(__builtin_frame_address(0));
  size_t n = 0;
  while (n < max) {
    const uintptr_t f = reinterpret_cast<uintptr_t>(fp);
    // A frame record is two words inside the stack, 8-aligned.
    if (f < lo || f + 2 * sizeof(uintptr_t) > hi || (f & 7) != 0) break;
    const uintptr_t ret = fp[1];
    if (ret < 4096) break;
    out[n++] = ret;
    const uintptr_t* next = reinterpret_cast<const uintptr_t*>(fp[0]);
    if (next <= fp) break;  // frames grow toward higher addresses; anything else is garbage
    fp = next;
  }
  return n;
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

struct HybridResult {
  size_t n;          // frames written; meaningful if ok
  bool ok;           // else the caller walks with libunwind
  bool stale;        // the table missed a pc or names an object since unloaded
  uintptr_t record;  // where the walk stopped (for learning the root)
  uintptr_t root_pc;
};

// Walks with the table as of `seq`; the caller checks it was current.
__attribute__((noinline)) HybridResult WalkHybrid(uintptr_t* out, size_t max, uintptr_t lo,
                                                  uintptr_t hi, uint64_t seq) {
  HybridResult r{0, false, false, 0, 0};
  if ((seq & 1) != 0) return r;
  const uintptr_t* fp = static_cast<const uintptr_t*>(__builtin_frame_address(0));
  // cur is always a range of code with frame pointers (empty at first).
  uintptr_t cur_lo = 0, cur_size = 0;
  const uintptr_t room = hi - lo - 2 * sizeof(uintptr_t);
  size_t& n = r.n;  // also kept on failure: LearnRoot compares them
  while (n < max) {
    const uintptr_t f = reinterpret_cast<uintptr_t>(fp);
    // A frame record is two words inside the stack, 8-aligned.
    if (f - lo > room || (f & 7) != 0) return r;
    const uintptr_t ret = fp[1];
    if (ret - cur_lo >= cur_size) {
      fp_mappings::Range m;
      if (!LookUp(ret, seq, &m)) {
        r.stale = true;
        return r;
      }
      if (!m.fp) {
        const Root& root = tls_root;
        r.record = f;
        r.root_pc = ret;
        if (root.n == 0 || root.record != f || root.pcs[0] != ret || root.saved_rbp != fp[0])
          return r;
        for (uint32_t i = 1; i < root.n; ++i) {
          if (*reinterpret_cast<const uintptr_t*>(root.slots[i]) != root.pcs[i]) return r;
        }
        for (uint32_t i = 0; i < root.n && n < max; ++i) out[n++] = root.pcs[i];
        break;
      }
      if (!m.pinned && !fp_mappings::StillLoaded(m, ret)) {
        r.stale = true;
        return r;
      }
      cur_lo = m.lo;
      cur_size = m.hi - m.lo;
    }
    out[n++] = ret;
    const uintptr_t* next = reinterpret_cast<const uintptr_t*>(fp[0]);
    if (next <= fp) {
      if (next == nullptr) break;  // the outermost frame (_start clears %rbp)
      return r;                    // frames grow toward higher addresses; else garbage
    }
    fp = next;
  }
  r.ok = fp_mappings::Valid(seq);
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

// Walks with libunwind, stepping (which gives the stack slots), and learns
// the thread's root from where the hybrid walk stopped. Checks that the
// hybrid walk's program frames agree with libunwind's; if not, the thread
// walks with libunwind from then on.
// out holds the hybrid walk's walked_n frames on entry, libunwind's on return.
__attribute__((noinline)) size_t LearnRoot(unw_context_t* context, uintptr_t* out, size_t max,
                                           size_t walked_n, uintptr_t record, uintptr_t root_pc,
                                           uintptr_t lo, uintptr_t hi) {
  uintptr_t walked[kMaxStackDepth + kOwnFrames];
  std::memcpy(walked, out, walked_n * sizeof(uintptr_t));
  uintptr_t sps[kMaxStackDepth + kOwnFrames];
  const size_t n = StepFrom(context, out, max, sps);
  size_t k = 0;
  while (k < n && !(out[k] == root_pc && sps[k] - sizeof(uintptr_t) == record + sizeof(uintptr_t)))
    ++k;
  if (k == n || n - k > kMaxRoot || n == max) return n;  // no root here (or cut short)
  // The hybrid walk's program frames must be libunwind's up to the root.
  const size_t a = ProgramStart(walked, walked_n), b = ProgramStart(out, k);
  if (walked_n - a != k - b || std::memcmp(walked + a, out + b, (k - b) * sizeof(uintptr_t)) != 0) {
    tls_root.disabled = 1;
    return n;
  }
  Root root{record, *reinterpret_cast<const uintptr_t*>(record), 0, 0, {}, {}};
  for (size_t i = k; i < n; ++i) {
    const uintptr_t slot = sps[i] - sizeof(uintptr_t);
    // Each address in its slot on this stack (not so in a signal frame).
    if (slot < lo || slot + sizeof(uintptr_t) > hi ||
        *reinterpret_cast<const uintptr_t*>(slot) != out[i]) {
      return n;
    }
    root.pcs[root.n] = out[i];
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

// Replaces out[0, n) by libunwind's stack if it differs in its program frames.
__attribute__((noinline)) size_t Verify(uintptr_t* out, size_t n, size_t max) {
  uintptr_t check[kMaxStackDepth + kOwnFrames] = {};
  const size_t m = StepLoop(check, max);
  const size_t a = ProgramStart(out, n), b = ProgramStart(check, m);
  // libunwind may be cut by max where the walk was not: compare what both hold.
  if (n - a == m - b && std::memcmp(out + a, check + b, (n - a) * sizeof(uintptr_t)) == 0) return n;
  if (m == max && n - a >= m - b &&
      std::memcmp(out + a, check + b, (m - b) * sizeof(uintptr_t)) == 0) {
    return n;
  }
  __atomic_store_n(&g_hybrid_broken, 1, __ATOMIC_RELAXED);
  std::memcpy(out, check, m * sizeof(uintptr_t));
  return m;
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

// Inlined into CaptureStack so that libunwind steps no more frames than it did
// before the hybrid walk existed.
__attribute__((always_inline)) inline size_t Hybrid(uintptr_t* out, size_t max, uintptr_t lo,
                                                    uintptr_t hi) {
  if (tls_root.disabled || __atomic_load_n(&g_hybrid_broken, __ATOMIC_RELAXED) != 0)
    return Unwind(out, max);
  if (tls_backoff != 0) {
    --tls_backoff;
    return Unwind(out, max);
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
  if (r.stale && tls_stale++ % kStaleProbeEvery == 0) {
    const uint64_t now = fp_mappings::Begin();
    if (now != seq) r = WalkHybrid(out, max, lo, hi, now);
  }
  if (r.ok) {
    tls_misses = 0;
    if (++tls_hybrid_walks % kVerifyEvery == 0) return Verify(out, r.n, max);
    return r.n;
  }
  if (++tls_misses == kMissesBeforeBackoff) {
    tls_misses = 0;
    tls_backoff = kBackoff;
  }
  if (r.record == 0 || tls_unwound_stacks >= kSteppedStacks) return Unwind(out, max);
  ++tls_unwound_stacks;
  // The context is taken here, in CaptureStack (Hybrid is inlined), so that
  // libunwind starts where Unwind would and steps no extra frame for
  // LearnRoot's (about 840 instructions with its caches cold).
  unw_context_t context;
  if (unw_getcontext(&context) != 0) return 0;
  return LearnRoot(&context, out, max, r.n, r.record, r.root_pc, lo, hi);
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
    n = WalkFramePointers(buf, want, stack_lo, stack_hi);
  } else if (method == StackMethod::kUnwind && stack_hi > stack_lo) {
    n = Hybrid(buf, want, stack_lo, stack_hi);
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
