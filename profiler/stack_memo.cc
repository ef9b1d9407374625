// The stack memo (stack_memo.h).
#include "profiler/stack_memo.h"

#include "base/base.h"
#include "profiler/arena.h"
#include "profiler/fp_mappings.h"
#include "profiler/fp_walk.h"
#include "profiler/stack_capture.h"

namespace assay::profiler::stack_memo {
namespace {

// Chains of up to kFrames records; kSets sets of two a thread, chosen by
// the entry frame's record and return address (two call sites in one
// function, at one depth, share both: two ways hold them). 4 KiB from the
// profiler arena, taken at the thread's second stack it could remember: a
// thread that samples once (larson's ~1 000 short-lived threads sample two
// or three times) never pays for them.
constexpr size_t kFrames = 28;
constexpr size_t kSets = 4;

enum End : uint8_t {
  kEndMax,    // the walk filled max frames
  kEndOuter,  // the last record's saved %rbp is 0 (_start cleared it)
  kEndRoot,   // the thread's root follows, at root_record
};

struct Memo {
  uint64_t seq;  // the fp_mappings table; 0: empty
  Stack* stack;  // the memo holds 1 + spare references to it
  const char* label;
  uint32_t spare;  // references to hand out, as a stack cache slot's
  uint8_t slot;    // the stack's stack-cache slot (stack_cache::Release)
  uint8_t end;
  uint16_t n;      // records[0, n): records[0] is the entry frame's
  uint16_t depth;  // the stack's frames: n, plus the root's
  uint16_t max;
  uint32_t root_gen;      // kEndRoot: fp_walk::tls_root_gen of the root it ends with
  uintptr_t root_record;  // kEndRoot: the record whose return address starts the root
  uintptr_t records[kFrames];
  uintptr_t rets[kFrames];  // records[i][1]: the stack's frames[i]
};

struct Memos {
  Memo way[kSets][2];
  uint8_t last_hit[kSets];  // the way Remember keeps
};
static_assert(sizeof(Memos) <= 4096);  // one arena block of 4 KiB

ASSAY_TLS Memos* tls_memos;

// The own frames Find last climbed to the entry frame's record: from Find's
// own record, each record's address and return address. The same chain
// leads fp_walk::EntryRecord to the same record: compared, it costs half
// the climb.
constexpr size_t kOwnChain = 10;
struct OwnChain {
  uint32_t n;  // 0: none
  uintptr_t records[kOwnChain];
  uintptr_t rets[kOwnChain];
  uintptr_t entry;  // the entry frame's record the chain leads to
};
ASSAY_TLS OwnChain tls_own;

// The entry frame's record above Find's record `fp`, as EntryRecord finds
// it; remembered as the thread's own chain.
__attribute__((noinline)) const uintptr_t* ClimbToEntry(const uintptr_t* fp, uintptr_t lo,
                                                        uintptr_t hi, uint64_t seq) {
  const uintptr_t* entry = fp_walk::EntryRecord(lo, hi, seq);
  OwnChain& c = tls_own;
  c.n = 0;
  if (entry == nullptr) return nullptr;
  uint32_t n = 0;
  for (const uintptr_t* f = fp; f != entry; f = reinterpret_cast<const uintptr_t*>(f[0])) {
    if (n == kOwnChain || f > entry) return entry;  // (records below entry, each above the last)
    c.records[n] = reinterpret_cast<uintptr_t>(f);
    c.rets[n] = f[1];
    ++n;
  }
  c.entry = reinterpret_cast<uintptr_t>(entry);
  c.n = n;
  return entry;
}
ASSAY_TLS bool tls_off;  // flushed at thread exit
ASSAY_TLS uint64_t tls_hits;
ASSAY_TLS uint64_t tls_lookups;

// A thread whose stacks do not repeat (kMisses lookups running without a
// hit) rests the memo for kRest samples, then looks up and remembers one
// stack again: a miss costs the lookup and remembering the chain (about
// 300 instructions for 20 frames), a rest one in 32 of that.
constexpr uint32_t kMisses = 32;
constexpr uint32_t kRest = 31;
ASSAY_TLS uint32_t tls_misses;
ASSAY_TLS uint32_t tls_rest;
ASSAY_TLS bool tls_remember;  // Find looked up: Remember keeps what the walk gives
ASSAY_TLS bool tls_one_walk;  // a stack could have been remembered once (no memos yet)

Stack* Miss() {
  if (++tls_misses >= kMisses) {
    tls_misses = kMisses - 1;  // after the rest, one more miss rests again
    tls_rest = kRest;
  }
  return nullptr;
}

// Follows the chain from record *f while each record is records[i] holding
// return address rets[i], i < n; true (and *f the record after the last)
// if all n are. A record is read only once its address equals one a walk
// found inside this thread's stack.
bool Follow(const uintptr_t** f, const uintptr_t* records, const uintptr_t* rets, size_t n) {
  const uintptr_t* r = *f;
  for (size_t i = 0; i < n; ++i) {
    if (reinterpret_cast<uintptr_t>(r) != records[i] || r[1] != rets[i]) return false;
    r = reinterpret_cast<const uintptr_t*>(r[0]);
  }
  *f = r;
  return true;
}

size_t SetOf(uintptr_t record, uintptr_t ret) {
  return ((record ^ (ret * 0x9E3779B97F4A7C15ull)) * 0xff51afd7ed558ccdull) >> (64 - 2);
}
static_assert(kSets == 4);

// Whether memo m holds the chain from the entry frame's record f, for
// this table, depth limit and cache label: the stack Hybrid would walk.
bool Matches(const Memo& m, const uintptr_t* f, uint64_t seq, size_t max, const char* label) {
  if (m.seq != seq || m.max != max || m.label != label || !Follow(&f, m.records, m.rets, m.n)) {
    return false;
  }
  const uintptr_t after = reinterpret_cast<uintptr_t>(f);
  if (m.end == kEndOuter && after != 0) return false;
  // The root the stack ends with is still the thread's (not learned again
  // since), and the walk would append it here (fp_walk::RootHolds).
  if (m.end == kEndRoot && (after != m.root_record || m.root_gen != fp_walk::tls_root_gen ||
                            !fp_walk::RootHolds(f, seq))) {
    return false;
  }
  return true;
}

// Drops what memo m holds; m is empty after.
void Drop(Memo& m) {
  if (m.seq != 0) stack_table::UnrefN(m.stack, 1 + m.spare);
  m.seq = 0;
  m.stack = nullptr;
  m.spare = 0;
}

}  // namespace

Stack* Find(uintptr_t lo, uintptr_t hi, size_t max, const char* label, double objects, double bytes,
            uint8_t* slot) {
  if (tls_rest != 0) {
    --tls_rest;
    tls_remember = false;
    return nullptr;
  }
  tls_remember = true;
  Memos* ms = tls_memos;
  if (ms == nullptr) return nullptr;
  const uint64_t seq = fp_mappings::Current();
  if (seq == 0 || (seq & 1) != 0) return nullptr;
  ++tls_lookups;
  const uintptr_t* const here = static_cast<const uintptr_t*>(__builtin_frame_address(0));
  const OwnChain& own = tls_own;
  const uintptr_t* f = here;
  // The same own frames lead to the same entry record; else climb.
  if (own.n == 0 || !Follow(&f, own.records, own.rets, own.n) ||
      reinterpret_cast<uintptr_t>(f) != own.entry) {
    f = ClimbToEntry(here, lo, hi, seq);
    if (f == nullptr) return Miss();
  }
  const size_t set = SetOf(reinterpret_cast<uintptr_t>(f), f[1]);
  size_t w = ms->last_hit[set];
  if (!Matches(ms->way[set][w], f, seq, max, label)) {
    w ^= 1;
    if (!Matches(ms->way[set][w], f, seq, max, label)) return Miss();
  }
  Memo& m = ms->way[set][w];
  if (!CountRepeatedStack()) return nullptr;
  tls_misses = 0;
  stack_table::HandOutHeld(m.stack, &m.spare, objects, bytes);  // the memo holds one
  *slot = m.slot;
  ms->last_hit[set] = static_cast<uint8_t>(w);
  ++tls_hits;
  return m.stack;
}

void Remember(const uintptr_t* frames, size_t depth, size_t max, const char* label, Stack* stack,
              uint8_t slot, uintptr_t lo, uintptr_t hi) {
  uintptr_t first;
  uint64_t seq;
  if (!tls_remember || !LastStackWalked(&first, &seq) || depth == 0 || tls_off) return;
  if (tls_memos == nullptr) {
    if (!tls_one_walk) {
      tls_one_walk = true;
      return;
    }
    // Uninitialised (a zeroed 4 KiB cost each short-lived thread ~1 000
    // instructions): a memo is empty while its seq is 0.
    Memos* ms = static_cast<Memos*>(arena::AllocUninit(sizeof(Memos)));
    if (ms == nullptr) return;
    for (auto& set : ms->way) {
      for (Memo& m : set) m.seq = 0;
    }
    for (uint8_t& w : ms->last_hit) w = 0;
    tls_memos = ms;
  }
  const uintptr_t* f = reinterpret_cast<const uintptr_t*>(first);
  if (f[1] != frames[0]) return;
  // The way not hit last: the other keeps the stack the thread repeats.
  const size_t set = SetOf(first, frames[0]);
  Memo& m = tls_memos->way[set][tls_memos->last_hit[set] ^ 1];
  Drop(m);  // empty until complete
  m.records[0] = first;
  m.rets[0] = frames[0];
  const uintptr_t room = hi - lo - 2 * sizeof(uintptr_t);
  const fp_walk::Root& root = fp_walk::tls_root;
  size_t n = 1;
  for (;;) {
    const uintptr_t* next = reinterpret_cast<const uintptr_t*>(f[0]);
    if (n == depth) {
      if (depth == max) {
        m.end = kEndMax;
      } else if (next == nullptr) {
        m.end = kEndOuter;
      } else {
        return;
      }
      break;
    }
    if (root.n != 0 && reinterpret_cast<uintptr_t>(next) == root.record) {
      // The walk appended the root here: all of it, or what max left room for.
      const size_t take = root.n < max - n ? root.n : max - n;
      if (n + take != depth) return;
      for (size_t i = 0; i < take; ++i) {
        if (frames[n + i] != root.pcs[i]) return;
      }
      m.end = kEndRoot;
      m.root_record = root.record;
      m.root_gen = fp_walk::tls_root_gen;
      break;
    }
    // The walk's own bounds: a record inside the stack, above the last.
    if (n == kFrames || next <= f || reinterpret_cast<uintptr_t>(next) - lo > room) return;
    if (next[1] != frames[n]) return;
    m.records[n] = reinterpret_cast<uintptr_t>(next);
    m.rets[n] = frames[n];
    ++n;
    f = next;
  }
  stack_table::RefHeld(stack);  // the memo's own (the caller holds one: no lock)
  m.stack = stack;
  m.spare = 0;
  m.label = label;
  m.slot = slot;
  m.n = static_cast<uint16_t>(n);
  m.depth = static_cast<uint16_t>(depth);
  m.max = static_cast<uint16_t>(max);
  m.seq = seq;
}

void FlushThread() {
  tls_off = true;
  if (tls_memos == nullptr) return;
  for (auto& set : tls_memos->way) {
    for (Memo& m : set) Drop(m);
  }
  arena::Free(tls_memos, sizeof(Memos));
  tls_memos = nullptr;
}

uint64_t ThreadHits() { return tls_hits; }
uint64_t ThreadLookups() { return tls_lookups; }

}  // namespace assay::profiler::stack_memo
