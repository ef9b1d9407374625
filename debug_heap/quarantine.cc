// The quarantine (freecheck): freed blocks wait in a FIFO ring, oldest
// first, filled with kFreedByte (mapped ones made inaccessible), and have
// their fill checked when they leave and at exit (a use after free).
#include "debug_heap/quarantine.h"

#include "base/lock.h"
#include "base/os.h"
#include "debug_heap/redzones.h"

namespace assay::internal::debug {
namespace {

// Lock order: g_quarantine_mu before g_table_mu (mapped_blocks.cc): the exit
// check looks blocks up while holding it, and LockForFork takes both.
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

}  // namespace

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

void CheckQuarantineAtExit() {
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

void QuarantineCounts(uint64_t* blocks, uint64_t* bytes) {
  LockGuard g(g_quarantine_mu);
  *blocks = g_q_count;
  *bytes = g_q_bytes - g_q_count;
}

void LockQuarantineForFork() { g_quarantine_mu.Lock(); }

void UnlockQuarantineAfterFork(bool child) { g_quarantine_mu.UnlockAfterFork(child); }

}  // namespace assay::internal::debug
