// Stack capture (stack_capture.h).
#include "profiler/stack_capture.h"

#include <cstring>

#include "base/base.h"
#include "base/entry_points.h"
#include "profiler/fp_mappings.h"
#include "profiler/fp_walk.h"
#include "profiler/unwinder.h"

namespace assay::profiler {
namespace {

using fp_walk::kMaxRoot;
using fp_walk::kOwnFrames;
using fp_walk::Root;
using fp_walk::tls_root;
using fp_walk::Walk;

ASSAY_TLS uint64_t tls_hybrid_walks;
ASSAY_TLS uint32_t tls_table_roots;

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
// Callers hold u, libunwind's functions (unwinder::Get).
__attribute__((always_inline)) inline size_t StepFrom(const unwinder::Functions& u,
                                                      unw_context_t* context, uintptr_t* out,
                                                      size_t max, uintptr_t* sps) {
  unw_cursor_t cursor;
  if (u.init_local(&cursor, context) != 0) return 0;
  size_t n = 0;
  while (n < max && u.step(&cursor) > 0) {
    unw_word_t ip, sp = 0;
    if (u.get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) break;
    if (sps != nullptr && u.get_reg(&cursor, UNW_REG_SP, &sp) != 0) sp = 0;
    if (sps != nullptr) sps[n] = sp;
    out[n++] = ip;
  }
  return n;
}

__attribute__((always_inline)) inline size_t StepLoop(const unwinder::Functions& u, uintptr_t* out,
                                                      size_t max) {
  unw_context_t context;
  if (u.getcontext(&context) != 0) return 0;
  return StepFrom(u, &context, out, max, nullptr);
}

// The whole stack with libunwind, own frames included. Callers checked that
// libunwind is loaded (CaptureStack).
__attribute__((always_inline)) inline size_t Unwind(uintptr_t* out, size_t max) {
  const unwinder::Functions& u = *unwinder::Get();
  if (tls_unwound_stacks < kSteppedStacks) {
    ++tls_unwound_stacks;
    return StepLoop(u, out, max);
  }
  const int got = u.backtrace(reinterpret_cast<void**>(out), static_cast<int>(max));
  return got > 0 ? static_cast<size_t>(got) : 0;
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
  const size_t n = StepFrom(*unwinder::Get(), context, buf, max, sps);
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
  ++fp_walk::tls_root_gen;
  fp_walk::PublishRoot(root);
  return n;
}

// A safety net for objects classified wrongly (fp_mappings decides per
// object: a mostly frame-pointer object may still hold a function without
// them that calls malloc, and the walk would skip its caller): a
// thread's 256th hybrid stack is taken again with the unwind tables (and
// with libunwind, about 7 000 instructions warm and 50 000 at a thread's
// first use, where they disagree), and then stacks further apart each time
// the check passes,
// the gap doubling up to 4096 (a check costs a long-running thread under 2
// instructions a stack where a fixed 256 cost 27, and 6 checks have passed
// by its 16 000th stack); if the program frames differ, the process walks
// with libunwind from then on.
constexpr uint64_t kFirstVerify = 256;
constexpr uint64_t kMaxVerifyGap = 4096;
// Walk count of the next check less kFirstVerify (zero-initialised: the
// 256th walk), and the checks made.
ASSAY_TLS uint64_t tls_verify_after;
ASSAY_TLS uint32_t tls_verify_count;
uint32_t g_hybrid_broken;  // atomic

// Whether the thread's walk number `walks` is checked against libunwind;
// schedules the next check.
ASSAY_INLINE bool VerifyDue(uint64_t walks) {
  if (walks < kFirstVerify + tls_verify_after) return false;
  const uint32_t made = ++tls_verify_count;
  const uint64_t gap = made >= 4 ? kMaxVerifyGap : kFirstVerify << made;  // 512, 1024, 2048, 4096
  tls_verify_after = walks + gap - kFirstVerify;
  return true;
}

ASSAY_TLS uint32_t tls_table_checks;

// Checks the walk's n program frames in out (at most max; first: the entry
// frame's record, the walk's start) against the unwind tables (StepTables,
// no libunwind), and where they disagree or cannot be followed against
// libunwind's stack, taken into buf (room for want frames), whose answer
// counts. Returns true if they agree; else libunwind's stack is in
// buf[0, *m).
__attribute__((noinline)) bool Verify(const uintptr_t* out, size_t n, size_t max, uintptr_t first,
                                      uintptr_t lo, uintptr_t hi, uintptr_t* buf, size_t want,
                                      size_t* m) {
  const fp_walk::TableSteps t = fp_walk::StepTables(first, lo, hi, buf, nullptr, max);
  if (t.ok && t.n == n && std::memcmp(out, buf, n * sizeof(uintptr_t)) == 0) {
    ++tls_table_checks;
    return true;
  }
  *m = StepLoop(*unwinder::Get(), buf, want);
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

// The hybrid walk that gave CaptureStack's last stack, if it went only
// through the program and assay itself (stack_memo.h): its entry frame's
// record and table. first 0: none.
struct MemoSource {
  uintptr_t first;
  uint64_t seq;
};
ASSAY_TLS MemoSource tls_memo_source;

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
  fp_walk::Result r = fp_walk::Hybrid(out, max, lo, hi, seq);
  if (r.walk == Walk::kStale && tls_stale++ % kStaleProbeEvery == 0) {
    const uint64_t now = fp_mappings::Begin();
    if (now != seq) r = fp_walk::Hybrid(out, max, lo, hi, now);
  }
  // A walk that stopped where no root is known yet learns it from the unwind
  // tables and walks again: no libunwind walk (its first use cost a program
  // ~80 000 instructions, its root ~7 000 a thread).
  if (r.walk == Walk::kFail && r.record != 0 &&
      fp_walk::LearnRootFromTables(r.record, r.root_pc, r.seq, lo, hi)) {
    ++tls_table_roots;
    r = fp_walk::Hybrid(out, max, lo, hi, r.seq);
  }
  if (r.walk == Walk::kOk) {
    tls_misses = 0;
    size_t m;
    if (VerifyDue(++tls_hybrid_walks) && !Verify(out, r.n, max, r.first, lo, hi, buf, want, &m))
      return m;
    if (r.pinned_only) tls_memo_source = {r.first, r.seq};
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
  if (unwinder::Get()->getcontext(&context) != 0) return 0;
  return LearnRoot(&context, buf, want, out, r.n, r.record, r.root_pc, lo, hi, r.seq);
}

}  // namespace

uint64_t ThreadHybridWalks() { return tls_hybrid_walks; }
uint32_t ThreadSteppedStacks() { return tls_unwound_stacks; }
uint32_t ThreadHybridChecks() { return tls_verify_count; }
uint32_t ThreadRootsFromTables() { return tls_table_roots; }
uint32_t ThreadTableChecks() { return tls_table_checks; }

bool LastStackWalked(uintptr_t* first, uint64_t* seq) {
  const MemoSource m = tls_memo_source;
  *first = m.first;
  *seq = m.seq;
  return m.first != 0;
}

bool CountRepeatedStack() {
  if (tls_root.disabled || __atomic_load_n(&g_hybrid_broken, __ATOMIC_RELAXED) != 0 ||
      tls_backoff != 0) {
    return false;
  }
  // A check is due: the stack is walked (and checked) instead.
  if (tls_hybrid_walks + 1 >= kFirstVerify + tls_verify_after) return false;
  ++tls_hybrid_walks;
  return true;
}

size_t CaptureStack(uintptr_t* out, size_t max, StackMethod method, uintptr_t stack_lo,
                    uintptr_t stack_hi) {
  if (max > kMaxStackDepth) max = kMaxStackDepth;
  tls_memo_source.first = 0;
  if (ASSAY_UNLIKELY(unwinder::Get() == nullptr)) {
    // libunwind not loaded (a stack taken before the constructors ran, or
    // none installed): the frame-pointer chain, exact where frames keep it.
    if (stack_hi <= stack_lo) return 0;
    const fp_walk::Result r = fp_walk::FramePointers(out, max, stack_lo, stack_hi);
    return r.walk == Walk::kOk ? r.n : 0;
  }
  uintptr_t buf[kMaxStackDepth + kOwnFrames];
  const size_t want = max + kOwnFrames;
  size_t n;
  if (method == StackMethod::kFramePointer && stack_hi > stack_lo) {
    const fp_walk::Result r = fp_walk::FramePointers(out, max, stack_lo, stack_hi);
    if (r.walk == Walk::kOk) return r.n;
    n = Unwind(buf, want);  // not called through an entry point, or a broken chain
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
