// Callback delivery: each thread queues the events it raises (alloc,
// promote, free); a safe point (the end of a sampled malloc or free, Poll,
// thread exit) runs them with sampling suspended, one callback of an entry
// at a time and in order (EntryBits), catching what a callback throws.
#include <cxxabi.h>

#include <cstdio>

#include "alloc/cxx_runtime.h"
#include "base/os.h"
#include "profiler/arena.h"
#include "profiler/profiler_state.h"
#include "profiler/stack_cache.h"
#include "profiler/stack_memo.h"
#include "profiler/stack_table.h"

namespace assay::profiler {

__thread void* tls_pending __attribute__((tls_model("initial-exec"))) = nullptr;

void FreeEntry(Entry* e) {
  // The entry's memory first, then the stack's reference, as a tail call:
  // no registers kept across a call.
  Stack* const stack = e->stack;
  const uint8_t slot = e->stack_slot;
  arena::Free(e, sizeof(Entry));
  stack_cache::Release(stack, slot);
}

void Unref(Entry* e) {
  if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  FreeEntry(e);
}

void Enqueue(ThreadState& ts, Entry* e, bool alloc) {
  Event* ev = static_cast<Event*>(arena::Alloc(sizeof(Event)));
  if (ev == nullptr) {  // no memory: the event is lost, but never its entry's reference
    Unref(e);
    return;
  }
  ev->entry = e;
  ev->alloc = alloc;
  if (ts.tail != nullptr) {
    ts.tail->next = ev;
  } else {
    tls_pending = ev;
  }
  ts.tail = ev;
}

namespace {

// Called inside the catch block: the callback threw through the program's runtime.
void ReportException(const char* which) {
  internal::cxx::BalanceCatch();
  __atomic_fetch_add(&g_exceptions, 1, __ATOMIC_RELAXED);
  if (__atomic_exchange_n(&g_exception_reported, 1, __ATOMIC_RELAXED) == 0) {
    char line[160];
    snprintf(line, sizeof(line),
             "assay: a profiler %s callback threw; the exception was caught and the entry dropped "
             "(reported once)\n",
             which);
    internal::os::WriteStderr(line);
  }
}

enum class Action { kAlloc, kPromote, kFree };

// Runs one callback of e. Returns the bits to add to e->cb.
uint32_t Run(Entry* e, Action act, bool dropped) {
  const uint32_t done = act == Action::kAlloc     ? kAllocDone
                        : act == Action::kPromote ? kPromoteDone
                                                  : kFreeDone;
  if (dropped) return done;
  // Counted until we return, or unwind: a thread may exit (pthread_exit,
  // cancellation) inside a callback.
  struct InFlight {
    InFlight() { __atomic_fetch_add(&g_in_flight, 1, __ATOMIC_SEQ_CST); }
    ~InFlight() { __atomic_fetch_sub(&g_in_flight, 1, __ATOMIC_SEQ_CST); }
  } in_flight;
  Session* s = CurrentSession();
  uint32_t result = done;
  if (s == nullptr || static_cast<uint32_t>(s->id) != e->session_id) {
    result |= kDropped;  // its session stopped: discard, never deliver to another
  } else if (act == Action::kAlloc) {
    if (s->tracker.on_alloc) {
      SampledAllocation info{reinterpret_cast<void*>(e->address),
                             e->requested,
                             e->usable,
                             AlignmentOf(*e),
                             e->points,
                             std::span<const uintptr_t>(e->stack->frames, e->stack->depth),
                             e->batch_index,
                             e->batch_size,
                             e->thread_id};
      try {
        const std::optional<Token> t = s->tracker.on_alloc(info);
        if (t.has_value())
          e->token = *t;
        else
          result |= kDropped;
      } catch (abi::__forced_unwind&) {
        throw;  // the thread is exiting: let it
      } catch (...) {
        ReportException("alloc");
        result |= kDropped;
      }
    }
  } else if (act == Action::kPromote) {
    if (s->tracker.on_promote) {
      try {
        const std::optional<Token> t = s->tracker.on_promote(e->token);
        if (t.has_value())
          e->token = *t;
        else
          result |= kDropped;
      } catch (abi::__forced_unwind&) {
        throw;
      } catch (...) {
        ReportException("promote");  // the block keeps its token and gets its on_free
      }
    }
  } else if (s->tracker.on_free) {
    try {
      s->tracker.on_free(e->token);
    } catch (abi::__forced_unwind&) {
      throw;
    } catch (...) {
      ReportException("free");
    }
  }
  return result;
}

// Delivers what is due for e, in order, unless another thread is running a
// callback of e (it will deliver our request when it finishes).
void Drive(Entry* e, bool alloc_event) {
  for (;;) {
    const uint32_t s = __atomic_load_n(&e->cb, __ATOMIC_SEQ_CST);
    if (s & kBusy) return;
    Action act;
    if (!(s & kAllocDone)) {
      if (!alloc_event) return;  // the allocating thread delivers alloc first, then the rest
      act = Action::kAlloc;
    } else if ((s & kFreeReq) && !(s & kFreeDone)) {
      act = Action::kFree;  // a promotion not yet delivered is moot once freed
    } else if ((s & kPromoteReq) && !(s & (kPromoteDone | kFreeReq | kFreeDone))) {
      act = Action::kPromote;
    } else {
      return;
    }
    uint32_t expected = s;
    if (!__atomic_compare_exchange_n(&e->cb, &expected, s | kBusy, false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST)) {
      continue;
    }
    // Releases the entry however Run ends: if the thread exits inside the
    // callback, the step counts as done and the tracker follows it no more.
    struct Release {
      Entry* e;
      uint32_t add;
      ~Release() {
        __atomic_fetch_or(&e->cb, add, __ATOMIC_SEQ_CST);
        __atomic_fetch_and(&e->cb, ~uint32_t{kBusy}, __ATOMIC_SEQ_CST);
      }
    } release{e, (act == Action::kAlloc     ? kAllocDone
                  : act == Action::kPromote ? kPromoteDone
                                            : kFreeDone) |
                     kDropped};
    release.add = Run(e, act, (s & kDropped) != 0);
  }
}

}  // namespace

void SafePointSlow() {
  ThreadState& ts = tls;
  if (ts.in_callback != 0) return;
  // Restores the thread's state however the loop ends (a callback may end
  // the thread: pthread_exit, cancellation); the rest of the queue waits for
  // the thread-exit safe point.
  struct Scope {
    ThreadState& ts;
    Event* current = nullptr;
    const char* cache_label;  // a callback's allocations are not the cache's
    explicit Scope(ThreadState& t) : ts(t), cache_label(tls_cache_label) {
      ts.in_callback = 1;
      ts.suspended++;
      tls_cache_label = nullptr;
    }
    ~Scope() {
      if (current != nullptr) {
        Unref(current->entry);
        arena::Free(current, sizeof(Event));
      }
      tls_cache_label = cache_label;
      ts.suspended--;
      ts.in_callback = 0;
    }
  } scope(ts);
  while (tls_pending != nullptr) {
    Event* ev = static_cast<Event*>(tls_pending);
    tls_pending = ev->next;
    if (tls_pending == nullptr) ts.tail = nullptr;
    scope.current = ev;
    Drive(ev->entry, ev->alloc);
    scope.current = nullptr;
    Unref(ev->entry);
    arena::Free(ev, sizeof(Event));
  }
}

void OnThreadExit() {
  SafePointSlow();
  if (tls.clock_owed != 0) AdvanceClock(tls, 0, /*exact=*/true);  // what it owes the clock
  ReleaseShard();                                                 // for the next thread to own
  stack_cache::FlushThread();  // before the arena's: a stack freed here goes to its lists
  stack_memo::FlushThread();
  arena::FlushThread();
}

}  // namespace assay::profiler
