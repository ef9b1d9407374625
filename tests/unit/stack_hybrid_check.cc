// The default stack method's hybrid walk (profiler/stack_capture.cc): frame
// pointers through code that keeps them, the thread's learned root below,
// libunwind otherwise. Every sampled stack must equal what libunwind gives at
// the allocation site: on the main thread and another, shallow and deeper
// than max_depth, through libc code without frame pointers (qsort calling
// back), with the root learned from the unwind tables, and on new threads
// that take their root from another thread's (its shape).
// A plain program, not a GoogleTest binary: Debian's libgtest.a is built
// without frame pointers, and linked in it would make this program's code
// count as code without them (fp_mappings), so the fast walk never ran.
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <optional>
#include <thread>
#include <vector>

#include "assay/profiler.hpp"
#include "fp_small_object.h"
#include "profiler/fp_mappings.h"
#include "profiler/stack_capture.h"
#include "profiler/stack_memo.h"
#include "profiler/unwinder.h"

namespace {

constexpr int kMaxDepth = 64;
int g_failures = 0;

#define CHECK(cond, ...)                                                 \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "%s:%d: failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                      \
      fprintf(stderr, "\n");                                             \
      ++g_failures;                                                      \
      return;                                                            \
    }                                                                    \
  } while (0)

struct Observed {
  void* address = nullptr;
  std::vector<uintptr_t> expected;  // libunwind's frames at the site, site first
  std::vector<uintptr_t> got;       // the sampled stack
};

thread_local Observed* t_pending = nullptr;
volatile uintptr_t g_sink;

// libunwind's stack at the caller (inlined: the caller's frames).
__attribute__((always_inline)) inline void Expect(Observed* o) {
  uintptr_t buf[512];
  const int n = unw_backtrace(reinterpret_cast<void**>(buf), 512);
  o->expected.assign(buf, buf + (n > 0 ? n : 0));
}

// A sampled block allocated and freed by the caller (inlined), its stack
// in o->got.
__attribute__((always_inline)) inline void AllocateObserved(Observed* o) {
  t_pending = o;
  void* p = malloc(64);
  t_pending = nullptr;
  o->address = p;
  g_sink = reinterpret_cast<uintptr_t>(p);
  free(p);
}

// Captures libunwind's stack, then allocates: the sampled stack must be the
// same from the caller on (frame 0 differs: two call sites in this function).
__attribute__((noinline, noclone)) void Site(Observed* o) {
  Expect(o);
  AllocateObserved(o);
}

__attribute__((noinline, noclone)) void Recurse(int depth, Observed* o) {
  if (depth == 0)
    Site(o);
  else
    Recurse(depth - 1, o);
  g_sink = g_sink + 1;  // not a tail call
}

Observed* g_qsort_obs = nullptr;
int g_qsort_calls = 0;
int Compare(const void* a, const void* b) {
  if (g_qsort_calls++ == 0) Recurse(3, g_qsort_obs);
  return *static_cast<const int*>(a) - *static_cast<const int*>(b);
}

void StartSession() {
  assay::ProfilerOptions o;
  o.rate = 1;
  o.seed = 3;
  o.max_depth = kMaxDepth;
  o.stack_method = assay::StackMethod::kUnwind;
  assay::Tracker t;
  // Callbacks run at the safe point at the end of the sampled malloc, while
  // t_pending still names the observation.
  t.on_alloc = [](const assay::SampledAllocation& a) -> std::optional<assay::Token> {
    if (t_pending != nullptr && t_pending->got.empty()) {
      t_pending->got.assign(a.stack.begin(), a.stack.end());
    }
    return std::nullopt;
  };
  if (!assay::Start(o, std::move(t))) {
    fprintf(stderr, "assay::Start failed\n");
    exit(1);
  }
}

void Check(const Observed& o, const char* what) {
  CHECK(o.expected.size() >= 2, "%s: libunwind found %zu frames", what, o.expected.size());
  CHECK(!o.got.empty(), "%s: no sampled stack", what);
  const size_t want = std::min<size_t>(o.expected.size(), kMaxDepth);
  CHECK(o.got.size() == want, "%s: %zu frames, libunwind %zu", what, o.got.size(), want);
  for (size_t i = 1; i < want; ++i) {
    CHECK(o.got[i] == o.expected[i], "%s: frame %zu of %zu: %#lx, libunwind %#lx", what, i, want,
          o.got[i], o.expected[i]);
  }
}

// Takes n stacks, at recursion depths 0 .. depths - 1 in turn, each checked
// against libunwind's.
void CheckStacks(int n, int depths, const char* what) {
  for (int i = 0; i < n; ++i) {
    Observed o;
    Recurse(i % depths, &o);
    Check(o, what);
  }
}

// A thread's root (libc's frames below main, or below the thread's start
// routine) is learned from the unwind tables: no stack of the thread is
// stepped with libunwind, and the stacks are still libunwind's.
void RootFromTables(const char* what) {
  CHECK(assay::profiler::ThreadRootsFromTables() >= 1, "%s: root not learned from the tables",
        what);
  CHECK(assay::profiler::ThreadSteppedStacks() == 0, "%s: %u stacks stepped with libunwind", what,
        assay::profiler::ThreadSteppedStacks());
}

void MainThreadAtManyDepths() {
  for (int rep = 0; rep < 3; ++rep) {
    for (int depth : {0, 1, 2, 5, 10, 20, 40, 61, 62, 63, 80}) {
      Observed o;
      Recurse(depth, &o);
      Check(o, "main thread");
    }
  }
  RootFromTables("main thread");
}

void OtherThread() {
  std::thread th([] {
    CheckStacks(20, 7, "other thread");
    CHECK(assay::profiler::ThreadHybridWalks() >= 20, "%lu hybrid walks",
          static_cast<unsigned long>(assay::profiler::ThreadHybridWalks()));
    RootFromTables("other thread");
  });
  th.join();
}

// Threads started like one whose root was learned (OtherThread) take their
// root from its shape (fp_walk.cc): their stacks are hybrid walks from the
// first, no root learned again, and still libunwind's.
void NewThreadsTakeTheLearnedShape() {
  for (int t = 0; t < 4; ++t) {
    std::thread th([] {
      CheckStacks(6, 4, "new thread");
      CHECK(assay::profiler::ThreadSteppedStacks() == 0, "%u stacks stepped with libunwind",
            assay::profiler::ThreadSteppedStacks());
      CHECK(assay::profiler::ThreadRootsFromTables() == 0, "%u roots learned from the tables",
            assay::profiler::ThreadRootsFromTables());
      CHECK(assay::profiler::ThreadHybridWalks() >= 6, "%lu hybrid walks",
            static_cast<unsigned long>(assay::profiler::ThreadHybridWalks()));
    });
    th.join();
  }
}

void ThroughLibcWithoutFramePointers() {
  for (int rep = 0; rep < 12; ++rep) {
    Observed o;
    g_qsort_obs = &o;
    g_qsort_calls = 0;
    int v[4] = {3, 1, 2, 0};
    qsort(v, 4, sizeof(int), Compare);
    Check(o, "through qsort");
  }
}

// More than the 256 stacks after which a thread's hybrid stack is checked
// against libunwind: the check must pass, so hybrid walks go on.
void ManyStacksPassTheCheck() {
  const uint64_t before = assay::profiler::ThreadHybridWalks();
  CheckStacks(600, 9, "many stacks");
  const uint64_t walks = assay::profiler::ThreadHybridWalks() - before;
  CHECK(walks >= 600, "%lu hybrid walks for 600 stacks", static_cast<unsigned long>(walks));
}

// The libunwind check backs off as it passes: a new thread's 256th hybrid
// stack is checked, then the 768th, 1 792nd, 3 840th, 7 936th, and every
// 4 096th after (12 032nd, ...): 5 checks in its first 10 000 stacks, where
// a fixed 1 in 256 made 39.
void ChecksBackOff() {
  std::thread t([] {
    CheckStacks(10000, 5, "backing off");
    // Every stack of this thread since it started (the test's own vectors
    // are sampled too), and the checks among them.
    const uint64_t walks = assay::profiler::ThreadHybridWalks();
    const uint32_t checks = assay::profiler::ThreadHybridChecks();
    uint32_t want = 0;
    for (uint64_t at = 256, gap = 512; at <= walks; at += gap, gap = gap < 4096 ? 2 * gap : gap) {
      ++want;
    }
    CHECK(walks >= 10000, "%lu hybrid walks for 10000 stacks", static_cast<unsigned long>(walks));
    CHECK(checks == want, "%u checks in %lu hybrid walks, want %u", checks,
          static_cast<unsigned long>(walks), want);
    // The unwind tables passed every check: libunwind never ran.
    CHECK(assay::profiler::ThreadTableChecks() == checks, "%u of %u checks passed by the tables",
          assay::profiler::ThreadTableChecks(), checks);
    CHECK(assay::profiler::ThreadSteppedStacks() == 0, "%u stacks stepped with libunwind",
          assay::profiler::ThreadSteppedStacks());
  });
  t.join();
}

// The code at pc (named what) lies in a range of the table that holds it
// and counts as code with frame pointers.
void CheckFramePointerCode(uintptr_t pc, const char* what) {
  namespace fm = assay::profiler::fp_mappings;
  CHECK((fm::Begin() & 1) == 0, "table being rebuilt");
  fm::Range r;
  CHECK(fm::Find(pc, &r), "no range holds %s", what);
  CHECK(r.fp, "%s counts as code without frame pointers", what);
  CHECK(r.lo <= pc && pc < r.hi, "%s: range [%#lx, %#lx)", what, r.lo, r.hi);
}

void ThisProgramKeepsFramePointers() {
  // This program is built like the library, with -fno-omit-frame-pointer.
  CheckFramePointerCode(reinterpret_cast<uintptr_t>(&Recurse), "this program (Recurse)");
  assay::profiler::fp_mappings::Range r;
  CHECK(!assay::profiler::fp_mappings::Find(4096, &r), "a range holds page 1");
}

// A small object built with frame pointers (fp_small_object.c: one function
// and the PLT) counts as such, though the PLT's FDE does not put the CFA on
// %rbp: counted, it was half of the object's FDEs, and stacks through the
// object (or through any small program) fell back to libunwind and its
// learned roots, one per call site.
void SmallObjectKeepsFramePointers() {
  CheckFramePointerCode(reinterpret_cast<uintptr_t>(&SmallObjectCall),
                        "the small object (SmallObjectCall)");
}

void ThroughSmallObject() {
  const uint64_t walks = assay::profiler::ThreadHybridWalks();
  for (int rep = 0; rep < 12; ++rep) {
    Observed o;
    SmallObjectCall([](void* arg) { Recurse(2, static_cast<Observed*>(arg)); }, &o);
    Check(o, "through the small object");
  }
  // Each observation samples two allocations (its vector of expected frames, then Site's).
  CHECK(assay::profiler::ThreadHybridWalks() - walks == 24, "%lu of 24 stacks walked hybrid",
        static_cast<unsigned long>(assay::profiler::ThreadHybridWalks() - walks));
}

// The stack memo (profiler/stack_memo.h): a stack repeated through the same
// frame records is taken without a walk, and is the walked stack. MemoSite
// is called from two callers with the same frame layout: the records up to
// MemoSite's are the same for both, only the return address into the
// caller differs, and each caller's stack must keep its own frame.
__attribute__((noinline, noclone)) void MemoSite(Observed* o, bool expect) {
  if (expect) Expect(o);
  AllocateObserved(o);
}

__attribute__((noinline, noclone)) void MemoCallerA(Observed* o, bool expect) {
  MemoSite(o, expect);
  g_sink = g_sink + 1;  // not a tail call
}

__attribute__((noinline, noclone)) void MemoCallerB(Observed* o, bool expect) {
  MemoSite(o, expect);
  g_sink = g_sink + 1;  // not a tail call
}

// One call site for both callers: their stacks differ in the caller's frame only.
__attribute__((noinline, noclone)) void CallMemo(bool b, Observed* o, bool expect) {
  void (*const caller)(Observed*, bool) = b ? MemoCallerB : MemoCallerA;
  caller(o, expect);
  g_sink = g_sink + 1;  // not a tail call
}

void RepeatedStacksFromTheMemo() {
  std::thread t([] {
    constexpr int kRepeats = 400;
    Observed first[2];
    uint64_t hits = 0, walks = 0;
    // One loop, one call site: the first two stacks (A, then B) are checked
    // against libunwind, every later one must equal its caller's first.
    for (int i = 0; i < kRepeats + 2; ++i) {
      if (i == 2) {
        Check(first[0], "memo: caller A");
        Check(first[1], "memo: caller B");
        CHECK(first[0].got.size() > 2 && first[0].got.size() == first[1].got.size() &&
                  first[0].got[1] != first[1].got[1],
              "memo: the two callers' stacks do not differ in the caller's frame");
        hits = assay::profiler::stack_memo::ThreadHits();
        walks = assay::profiler::ThreadHybridWalks();
      }
      const int b = i < 2 ? i : (i % 3) == 1;
      Observed o;
      CallMemo(b, &o, i < 2);
      if (i < 2) {
        first[b] = o;
      } else {
        CHECK(o.got == first[b].got, "memo: repeat %d (caller %c) differs", i - 2, b ? 'B' : 'A');
      }
    }
    // Each repeat is one sample. The memo misses at most: each caller's
    // first repeat (the expected frames' vectors were sampled between them)
    // and the check at the thread's 256th stack, which walks.
    const uint64_t got = assay::profiler::stack_memo::ThreadHits() - hits;
    CHECK(got >= kRepeats - 4, "memo: %lu hits in %d repeated stacks",
          static_cast<unsigned long>(got), kRepeats);
    // Hits count as hybrid walks: the checks keep their schedule.
    CHECK(assay::profiler::ThreadHybridWalks() - walks == kRepeats, "memo: %lu walks for %d",
          static_cast<unsigned long>(assay::profiler::ThreadHybridWalks() - walks), kRepeats);
    CHECK(assay::profiler::ThreadHybridChecks() == 1, "memo: %u checks",
          assay::profiler::ThreadHybridChecks());
  });
  t.join();
}

// Stacks that do not repeat soon enough for the memo (21 recursion depths in
// turn, two samples each: 42 chains for its 8 memos) rest it: after 32
// lookups without a hit it looks up one sample in 32, and every stack is
// still libunwind's.
void MemoRestsWhenStacksDoNotRepeat() {
  std::thread t([] {
    constexpr int kObservations = 640;
    const uint64_t lookups = assay::profiler::stack_memo::ThreadLookups();
    const uint64_t hits = assay::profiler::stack_memo::ThreadHits();
    CheckStacks(kObservations, 21, "memo resting");
    const uint64_t looked = assay::profiler::stack_memo::ThreadLookups() - lookups;
    const uint64_t hit = assay::profiler::stack_memo::ThreadHits() - hits;
    // 1 280 samples: 32 lookups, then one in 32 (each hit buys 32 more).
    const uint64_t bound = 32 + 2 * kObservations / 32 + 32 * hit;
    CHECK(looked <= bound, "memo: %lu lookups (%lu hits) in %d samples, want <= %lu",
          static_cast<unsigned long>(looked), static_cast<unsigned long>(hit), 2 * kObservations,
          static_cast<unsigned long>(bound));
    CHECK(hit < 64, "memo: %lu hits for stacks that do not repeat",
          static_cast<unsigned long>(hit));
  });
  t.join();
}

// A function without frame pointers in this frame-pointer program
// (fp_mappings judges whole objects): NoFramePointer(o, fn) calls fn(o) from
// a frame of its own that keeps %rbp as its caller left it (assembly, so no
// compiler or sanitizer can add a frame pointer), with its CFI. The walk
// follows %rbp past it and skips the frame of its caller. The check at the
// thread's 256th stack catches it (the tables, then libunwind, disagree with
// the walk), and from then on the process takes its stacks with libunwind:
// right again. Last: the hybrid walk stays off for the process.
extern "C" void NoFramePointer(Observed* o, void (*fn)(Observed*));
asm(R"(
  .text
  .globl NoFramePointer
  .type NoFramePointer, @function
NoFramePointer:
  .cfi_startproc
  sub $24, %rsp
  .cfi_def_cfa_offset 32
  call *%rsi
  add $24, %rsp
  .cfi_def_cfa_offset 8
  ret
  .cfi_endproc
  .size NoFramePointer, .-NoFramePointer
)");

__attribute__((noinline, noclone)) void CallsNoFramePointer(Observed* o) {
  NoFramePointer(o, &Site);
  g_sink = g_sink + 1;  // not a tail call
}

void WrongFrameCaughtByCheck() {
  std::thread t([] {
    int wrong_before = 0;
    for (int i = 0; i < 200; ++i) {
      Observed o;
      CallsNoFramePointer(&o);
      // Each observation samples twice (its vector, then Site's block): the
      // 256th stack comes at the 128th.
      if (i < 100) {
        wrong_before += o.got.size() < 3 || o.expected.size() < 3 || o.got[2] != o.expected[2];
      } else if (i >= 150) {
        Check(o, "after the check");
      }
    }
    CHECK(wrong_before == 100, "%d of the first 100 stacks skipped the caller's frame",
          wrong_before);
    CHECK(assay::profiler::ThreadHybridChecks() == 1, "%u checks",
          assay::profiler::ThreadHybridChecks());
    CHECK(assay::profiler::ThreadTableChecks() == 0, "the tables passed the wrong walk");
  });
  t.join();
}

}  // namespace

int main() {
  ThisProgramKeepsFramePointers();
  SmallObjectKeepsFramePointers();
  // libassay loads libunwind itself, only to take stacks (profiler/unwinder.h):
  // not before a session starts (this program links libunwind, but that does
  // not count), and by the time the session's first sample is taken.
  if (assay::profiler::unwinder::Get() != nullptr) {
    fprintf(stderr, "libunwind loaded before any session started\n");
    ++g_failures;
  }
  StartSession();
  if (assay::profiler::unwinder::Get() == nullptr) {
    fprintf(stderr, "libunwind not loaded by the session's start\n");
    ++g_failures;
  }
  const uint64_t before = assay::profiler::ThreadHybridWalks();
  MainThreadAtManyDepths();
  const uint64_t main_walks = assay::profiler::ThreadHybridWalks() - before;
  OtherThread();
  NewThreadsTakeTheLearnedShape();
  ThroughSmallObject();  // before: walks through libc fail, and the thread backs off
  ThroughLibcWithoutFramePointers();
  ManyStacksPassTheCheck();
  ChecksBackOff();
  RepeatedStacksFromTheMemo();
  MemoRestsWhenStacksDoNotRepeat();
  WrongFrameCaughtByCheck();
  assay::Stop();
  if (main_walks < 20) {
    fprintf(stderr, "only %lu hybrid walks on the main thread\n",
            static_cast<unsigned long>(main_walks));
    ++g_failures;
  }
  if (g_failures != 0) {
    fprintf(stderr, "%d failures\n", g_failures);
    return 1;
  }
  printf("ok: %lu hybrid walks on the main thread\n", static_cast<unsigned long>(main_walks));
  return 0;
}
