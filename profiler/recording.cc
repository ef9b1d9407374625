// Recording: a sample point becomes an entry (stack captured and interned,
// weights from the sampling law, the address table, the young list for
// promotion, an alloc event); a sampled free takes the entry out again.
#include <pthread.h>

#include "base/os.h"
#include "base/probes.h"
#include "profiler/arena.h"
#include "profiler/dumper.h"
#include "profiler/profiler_state.h"
#include "profiler/stack_cache.h"
#include "profiler/stack_memo.h"
#include "profiler/stack_table.h"

extern "C" void* __libc_stack_end;  // glibc (ld.so): the stack pointer at process start

namespace assay::profiler {

uint64_t CurrentTid(ThreadState& ts) {
  const uint32_t gen = __atomic_load_n(&g_fork_gen, __ATOMIC_RELAXED);
  if (ts.tid == 0 || ts.fork_gen != gen) {
    ts.tid = internal::os::ThreadId();
    ts.fork_gen = gen;
    ts.stack_known = 0;
  }
  return ts.tid;
}

void LearnStackBounds(ThreadState& ts) {
  const bool main_thread = CurrentTid(ts) == static_cast<uint64_t>(internal::os::ProcessId());
  ts.stack_known = 1;
  const auto top = reinterpret_cast<uintptr_t>(__libc_stack_end);
  const auto here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  if (main_thread && here < top && top - here < (uintptr_t{8} << 20)) {
    // The main thread on the process's stack (not a fork child of another
    // thread): pthread_getattr_np would read /proc/self/maps (160 000
    // instructions and a FILE). The walks only climb from the current
    // frame, and all of the stack above it is mapped up to the page that
    // holds the stack pointer _start saw.
    ts.stack_lo = 0;
    ts.stack_hi = (top | 4095) + 1;
    return;
  }
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
  void* addr = nullptr;
  size_t size = 0;
  if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
    ts.stack_lo = reinterpret_cast<uintptr_t>(addr);
    ts.stack_hi = ts.stack_lo + size;
  }
  pthread_attr_destroy(&attr);
}

void YoungUnlinkLocked(Entry* e) {
  if (e->young_prev != nullptr)
    e->young_prev->young_next = e->young_next;
  else
    g_young_head = e->young_next;
  if (e->young_next != nullptr)
    e->young_next->young_prev = e->young_prev;
  else
    g_young_tail = e->young_prev;
  e->young_prev = e->young_next = nullptr;
  __atomic_store_n(&e->in_young, false, __ATOMIC_RELAXED);  // OnSampledFree peeks unlocked
}

// Moves entries born young_bytes or more before `clock` out of the young
// list, each with a promote event on this thread.
void PromoteOld(ThreadState& ts, uint64_t clock) {
  for (;;) {
    Entry* e;
    {
      LockGuard lock(g_young_mu);
      e = g_young_head;
      if (e == nullptr || clock - e->birth_clock < g_young_bytes) return;
      YoungUnlinkLocked(e);
    }
    // The young list's reference passes to the promote event.
    __atomic_fetch_or(&e->cb, kPromoteReq, __ATOMIC_SEQ_CST);
    Enqueue(ts, e, /*alloc=*/false);
  }
}

namespace {

// OnSamplePoint with guard sampling on: the countdown runs over the union of
// the profiler's and the guard's points (CombinedLaw, sampler.h); left < n
// is the block's first union point.
SampleDecision OnCombinedPoint(SampleCountdown* c, size_t n, int64_t left, Session* s,
                               ThreadState& ts) {
  if (s != nullptr && ts.rng_session != s->id) {
    SyncCountdown(c);  // the session changed: the countdown was drawn for another law
    return {0, false, false};
  }
  const CombinedLaw& law = s != nullptr ? g_guard_with_session : g_guard_alone;
  Rng& grng = GuardRng(ts);
  const uint8_t kind = law.DrawKind(grng);
  const uint64_t rest = n - static_cast<uint64_t>(left) - 1;  // fresh bytes after the point
  uint64_t points = (kind & CombinedLaw::kProfile) != 0 ? 1 : 0;
  if (s != nullptr && rest > 0) {
    int64_t p_left = g_rate.DrawLeft(ts.rng);
    if (static_cast<uint64_t>(p_left) < rest) points += g_rate.CountPoints(&p_left, rest, ts.rng);
  }
  const bool guard = (kind & CombinedLaw::kGuard) != 0 || law.AnyGuardPoint(rest, grng);
  internal::CountdownSet(c, law.DrawLeft(grng));
  if (points != 0) AdvanceClock(ts, points * g_rate.rate(), s != nullptr && s->promote);
  return {points, s != nullptr && points != 0 && ts.suspended == 0, guard};
}

}  // namespace

ReadingScope::ReadingScope() { SessionReader::Enter(); }
ReadingScope::~ReadingScope() { SessionReader::Leave(); }

SampleDecision OnSamplePoint(SampleCountdown* c, size_t n) {
  // No mapping can hold this many bytes: the request will fail, so its bytes
  // are not allocation and move neither the countdown nor the clock (2^62
  // bytes would have wrapped the clock in four calls, and drawn 2^43 gaps).
  if (n >= kImpossibleRequest) return {0, false, false};
  SessionReader reading;
  ThreadState& ts = tls;
  int64_t left = internal::CountdownLeftAfter(c, 0);
  Session* s = CurrentSession();
  if (ASSAY_UNLIKELY(__atomic_load_n(&g_guard_on, __ATOMIC_ACQUIRE))) {
    return OnCombinedPoint(c, n, left, s, ts);
  }
  if (s == nullptr || ts.rng_session != s->id) {
    SyncCountdown(c);  // stopped or restarted meanwhile: nothing to record from the old law
    return {0, false, false};
  }
  const uint64_t points = g_rate.CountPoints(&left, n, ts.rng);
  internal::CountdownSet(c, left);
  AdvanceClock(ts, points * g_rate.rate(), s->promote);
  return {points, ts.suspended == 0, false};
}

Entry* RecordAlloc(void* p, size_t requested, size_t usable, size_t alignment, uint64_t points,
                   uint32_t batch_index, uint32_t batch_size) {
  SessionReader reading;
  ThreadState& ts = tls;
  Session* s = CurrentSession();
  if (s == nullptr) return nullptr;
  ts.suspended++;  // the profiler's own work is never sampled
  const uint64_t tid = CurrentTid(ts);
  if (!ts.stack_known) LearnStackBounds(ts);  // both walks stay inside the stack
  const double q = g_rate.SampledProbability(requested == 0 ? 1 : requested);
  const double objects = q > 0 ? 1.0 / q : 0;
  const double bytes = objects * static_cast<double>(requested);
  uint8_t stack_slot;
  // A stack this thread walked before, through the same frame records, is
  // taken from the memo: no walk, no interning.
  const bool memo = g_method == StackMethod::kUnwind && ts.stack_hi > ts.stack_lo;
  const size_t max = g_depth < kMaxStackDepth ? g_depth : kMaxStackDepth;
  Stack* stack = memo ? stack_memo::Find(ts.stack_lo, ts.stack_hi, max, tls_cache_label, objects,
                                         bytes, &stack_slot)
                      : nullptr;
  if (stack == nullptr) {
    uintptr_t frames[kMaxStackDepth];
    const size_t depth = CaptureStack(frames, max, g_method, ts.stack_lo, ts.stack_hi);
    stack = stack_cache::Intern(frames, depth, objects, bytes, tls_cache_label, &stack_slot);
    if (memo && stack != nullptr) {
      stack_memo::Remember(frames, depth, max, tls_cache_label, stack, stack_slot, ts.stack_lo,
                           ts.stack_hi);
    }
  }
  // Uninitialised: every field is written below (no 128-byte memset).
  Entry* e = stack != nullptr ? static_cast<Entry*>(arena::AllocUninit(sizeof(Entry))) : nullptr;
  if (e == nullptr) {
    if (stack != nullptr) stack_table::Unref(stack);
    ts.suspended--;
    return nullptr;
  }
  e->address = reinterpret_cast<uintptr_t>(p);
  e->requested = requested;
  e->usable = usable;
  e->align_shift = AlignShiftOf(alignment);
  e->points = points;
  e->stack = stack;
  e->thread_id = static_cast<uint32_t>(tid);
  e->birth_clock = __atomic_load_n(&g_clock, __ATOMIC_RELAXED);
  e->batch_index = batch_index;
  e->batch_size = batch_size;
  e->alloc_gen = __atomic_load_n(&g_alloc_gen, __ATOMIC_RELAXED);
  e->weight_objects = objects;
  e->weight_bytes = bytes;
  e->session_id = s->callbacks ? static_cast<uint32_t>(s->id) : 0;
  e->cb = s->callbacks ? 0 : (kAllocDone | kDropped);
  e->refs = 1;  // the table's
  e->token = 0;
  e->table_next = nullptr;
  e->young_prev = e->young_next = nullptr;
  e->in_young = false;
  e->stack_slot = stack_slot;
  if (!entry_table::Insert(e)) {
    FreeEntry(e);
    ts.suspended--;
    return nullptr;
  }
  CountSample(1, static_cast<int64_t>(bytes));
  ASSAY_PROBE3(sample, p, requested, points);
  dumper::OnRecorded(__atomic_load_n(&g_clock, __ATOMIC_RELAXED), &TotalLiveBytes);
  if (s->callbacks) {
    if (s->promote) {
      e->refs++;
      LockGuard lock(g_young_mu);
      e->young_prev = g_young_tail;
      if (g_young_tail != nullptr)
        g_young_tail->young_next = e;
      else
        g_young_head = e;
      g_young_tail = e;
      e->in_young = true;
    }
    __atomic_fetch_add(&e->refs, 1, __ATOMIC_RELAXED);
    Enqueue(ts, e, /*alloc=*/true);
  }
  if (s->promote) PromoteOld(ts, __atomic_load_n(&g_clock, __ATOMIC_RELAXED));
  ts.suspended--;
  return e;
}

void CancelAlloc(void* p) {
  Entry* e = entry_table::Remove(reinterpret_cast<uintptr_t>(p));
  if (e == nullptr) return;
  __atomic_fetch_or(&e->cb, kAllocDone | kFreeDone | kDropped, __ATOMIC_SEQ_CST);
  {
    LockGuard lock(g_young_mu);
    if (e->in_young) {
      YoungUnlinkLocked(e);
      __atomic_fetch_sub(&e->refs, 1, __ATOMIC_RELAXED);  // the table's remains
    }
  }
  CountSample(-1, -static_cast<int64_t>(e->weight_bytes));
  Unref(e);
}

void OnSampledFree(void* p) {
  Entry* e = entry_table::Remove(reinterpret_cast<uintptr_t>(p));
  if (e == nullptr) return;  // recorded by no session (or forgotten for lack of memory)
  CountSample(0, -static_cast<int64_t>(e->weight_bytes));
  // A hint read without the lock (a promotion may clear it meanwhile: TSan
  // saw that race when it was a plain read); re-checked under the lock.
  if (__atomic_load_n(&e->in_young, __ATOMIC_RELAXED)) {
    LockGuard lock(g_young_mu);
    if (e->in_young) {
      YoungUnlinkLocked(e);
      __atomic_fetch_sub(&e->refs, 1, __ATOMIC_RELAXED);  // the table's remains
    }
  }
  // An entry only the table followed (a session without callbacks: its
  // alloc callback skipped, no event queued, never young) is this thread's
  // alone once removed: freed without the two locked operations below.
  // Acquire: a holder that dropped its reference is done with the entry.
  constexpr uint32_t kUnfollowed = kDropped | kAllocDone;
  if (__atomic_load_n(&e->refs, __ATOMIC_ACQUIRE) == 1 &&
      (__atomic_load_n(&e->cb, __ATOMIC_RELAXED) & kUnfollowed) == kUnfollowed) {
    FreeEntry(e);
    return;
  }
  const uint32_t s = __atomic_fetch_or(&e->cb, kFreeReq, __ATOMIC_SEQ_CST);
  if ((s & kDropped) && (s & kAllocDone)) {
    Unref(e);  // nobody follows it: no event
    return;
  }
  Enqueue(tls, e, /*alloc=*/false);  // the table's reference passes to the event
}

}  // namespace assay::profiler
