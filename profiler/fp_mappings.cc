// The frame-pointer segment table (fp_mappings.h): rebuilt under a lock when
// dl_iterate_phdr's adds/subs counters move, read lock-free under a sequence
// number (odd while a rebuild runs). Never allocates: a fixed table.
#include "profiler/fp_mappings.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include "base/lock.h"
#include "profiler/eh_frame.h"

// Weak: glibc before 2.35 has no _dl_find_object (StillLoaded says false).
#pragma weak _dl_find_object

namespace assay::profiler::fp_mappings {
namespace {

constexpr size_t kMaxRanges = 256;
// An object keeps frame pointers when at least this share (in 1/1000) of
// its FDEs that move the stack pointer put the CFA on %rbp (eh_frame::Scan:
// frameless leaves and the PLT's stubs count for neither side; counted, the
// PLT's FDE was a third of a small program's, which then counted as without
// them and fell back at its first frame). Measured on this machine: objects
// built with -fno-omit-frame-pointer read 75-98% (the rest are start-up
// stubs such as _init); Debian's libc, libstdc++, libm, libgcc_s, ld.so,
// libunwind, libz and python3.11, built without, 0-13%; a test linking
// Debian's libgtest.a (no frame pointers) into frame-pointer code, 50%:
// such mixed objects count as without frame pointers.
constexpr size_t kFpPermille = 700;

internal::Mutex g_build_mu;
uint64_t g_seq;  // atomic; odd while a rebuild writes the table
uint64_t g_adds = ~uint64_t{0};
uint64_t g_subs = ~uint64_t{0};
// An executable segment; its object is classified the first time a walk
// meets it (most programs' walks meet the library, the program and libc,
// not the dozens of other objects loaded).
enum : uint8_t { kUnknown = 0, kFp = 1, kNoFp = 2 };
struct Slot {
  uintptr_t lo, hi;
  const uint8_t* eh_frame_hdr;  // null: no unwind table (never frame pointers)
  uint8_t state;
  uint8_t pinned;
};
size_t g_count;             // atomic
Slot g_ranges[kMaxRanges];  // sorted by lo; fields read and written atomically

struct Probe {
  uint64_t adds, subs;
};

int ProbeCallback(struct dl_phdr_info* info, size_t size, void* arg) {
  auto* pr = static_cast<Probe*>(arg);
  if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
    pr->adds = info->dlpi_adds;
    pr->subs = info->dlpi_subs;
  }
  return 1;  // the counters are the same in every record: one is enough
}

void Put(size_t i, const Slot& r) {
  __atomic_store_n(&g_ranges[i].lo, r.lo, __ATOMIC_RELAXED);
  __atomic_store_n(&g_ranges[i].hi, r.hi, __ATOMIC_RELAXED);
  __atomic_store_n(&g_ranges[i].eh_frame_hdr, r.eh_frame_hdr, __ATOMIC_RELAXED);
  __atomic_store_n(&g_ranges[i].state, r.state, __ATOMIC_RELAXED);
  __atomic_store_n(&g_ranges[i].pinned, r.pinned, __ATOMIC_RELAXED);
}

Slot Get(size_t i) {
  return {__atomic_load_n(&g_ranges[i].lo, __ATOMIC_RELAXED),
          __atomic_load_n(&g_ranges[i].hi, __ATOMIC_RELAXED),
          __atomic_load_n(&g_ranges[i].eh_frame_hdr, __ATOMIC_RELAXED),
          __atomic_load_n(&g_ranges[i].state, __ATOMIC_RELAXED),
          __atomic_load_n(&g_ranges[i].pinned, __ATOMIC_RELAXED)};
}

uint8_t ClassifyLocked(size_t i);

// Whether this library's own code keeps frame pointers. Its object also
// holds a private copy of libstdc++ (linked statically, hidden), built
// without them, which outnumbers our functions: the object's share says
// "without", yet every frame of the object on a sampled stack (from the
// capture up to malloc) is our code. Our sources share their flags: two of
// our functions that call others tell. (A stack through the private
// libstdc++, which the profiler's own code runs with sampling suspended,
// would be caught by the periodic check against libunwind.)
bool OwnCodeKeepsFramePointers(const uint8_t* hdr) {
  return eh_frame::CfaAt(hdr, reinterpret_cast<uintptr_t>(&ClassifyLocked)) ==
             eh_frame::kCfaOnRbp &&
         eh_frame::CfaAt(hdr, reinterpret_cast<uintptr_t>(&eh_frame::Scan)) == eh_frame::kCfaOnRbp;
}

// Classifies slot i's object (under g_build_mu, which the caller holds).
uint8_t ClassifyLocked(size_t i) {
  const Slot sl = Get(i);
  if (sl.state != kUnknown) return sl.state;
  size_t fdes = 0, fp_fdes = 0;
  const auto self = reinterpret_cast<uintptr_t>(&ClassifyLocked);
  const bool own = sl.lo <= self && self < sl.hi;
  const bool fp = sl.eh_frame_hdr != nullptr &&
                  (own ? OwnCodeKeepsFramePointers(sl.eh_frame_hdr)
                       : eh_frame::Scan(sl.eh_frame_hdr, kFpPermille, &fdes, &fp_fdes) &&
                             fdes > 0 && fp_fdes * 1000 >= fdes * kFpPermille);
  const uint8_t state = fp ? kFp : kNoFp;
  __atomic_store_n(&g_ranges[i].state, state, __ATOMIC_RELEASE);
  return state;
}

int BuildCallback(struct dl_phdr_info* info, size_t, void*) {
  const uint8_t* hdr = nullptr;
  // The program (listed first, without a name) and the object holding this
  // code are never unloaded while it runs.
  const auto self = reinterpret_cast<uintptr_t>(&BuildCallback);
  bool pinned = info->dlpi_name == nullptr || info->dlpi_name[0] == '\0';
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_GNU_EH_FRAME)
      hdr = reinterpret_cast<const uint8_t*>(info->dlpi_addr + ph.p_vaddr);
  }
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && lo <= self && self < lo + ph.p_memsz) pinned = true;
  }
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    size_t n = __atomic_load_n(&g_count, __ATOMIC_RELAXED);
    if (n == kMaxRanges) return 1;  // the rest stay unknown: walked with libunwind
    const Slot r{info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz, hdr,
                 hdr != nullptr ? kUnknown : kNoFp, pinned};
    size_t j = n;
    while (j > 0 && Get(j - 1).lo > r.lo) {  // insertion sort: few objects
      Put(j, Get(j - 1));
      --j;
    }
    Put(j, r);
    __atomic_store_n(&g_count, n + 1, __ATOMIC_RELAXED);
  }
  return 0;
}

}  // namespace

uint64_t Begin() {
  Probe pr{0, 0};
  dl_iterate_phdr(ProbeCallback, &pr);
  if (__atomic_load_n(&g_adds, __ATOMIC_ACQUIRE) == pr.adds &&
      __atomic_load_n(&g_subs, __ATOMIC_ACQUIRE) == pr.subs) {
    return __atomic_load_n(&g_seq, __ATOMIC_ACQUIRE);
  }
  // Never waits: a thread that finds another rebuilding walks with libunwind
  // (an odd sequence number is never Valid), and a fork child whose parent
  // was rebuilding keeps doing so.
  if (!g_build_mu.TryLock()) return 1;
  if (g_adds != pr.adds || g_subs != pr.subs) {
    __atomic_fetch_add(&g_seq, 1, __ATOMIC_SEQ_CST);  // odd: readers distrust the table
    __atomic_store_n(&g_count, 0, __ATOMIC_RELAXED);
    dl_iterate_phdr(BuildCallback, nullptr);
    __atomic_store_n(&g_adds, pr.adds, __ATOMIC_RELEASE);
    __atomic_store_n(&g_subs, pr.subs, __ATOMIC_RELEASE);
    __atomic_fetch_add(&g_seq, 1, __ATOMIC_SEQ_CST);
  }
  g_build_mu.Unlock();
  return __atomic_load_n(&g_seq, __ATOMIC_ACQUIRE);
}

void ResetAfterFork() {
  g_build_mu.ResetAfterFork();
  if ((__atomic_load_n(&g_seq, __ATOMIC_RELAXED) & 1) != 0) {
    __atomic_store_n(&g_count, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&g_adds, ~uint64_t{0}, __ATOMIC_RELAXED);
    __atomic_fetch_add(&g_seq, 1,
                       __ATOMIC_RELAXED);  // even: an empty table, rebuilt at the next miss
  }
}

uint64_t Current() { return __atomic_load_n(&g_seq, __ATOMIC_ACQUIRE); }

namespace {

// The index of the slot whose range holds pc, or kMaxRanges.
size_t SlotOf(uintptr_t pc) {
  size_t lo = 0, hi = __atomic_load_n(&g_count, __ATOMIC_RELAXED);
  if (hi > kMaxRanges) return kMaxRanges;
  const size_t n = hi;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (__atomic_load_n(&g_ranges[mid].hi, __ATOMIC_RELAXED) <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == n) return kMaxRanges;
  const Slot sl = Get(lo);
  return sl.lo <= pc && pc < sl.hi ? lo : kMaxRanges;
}

}  // namespace

bool Find(uintptr_t pc, Range* out) {
  const size_t i = SlotOf(pc);
  if (i == kMaxRanges) return false;
  const Slot sl = Get(i);
  uint8_t state = __atomic_load_n(&g_ranges[i].state, __ATOMIC_ACQUIRE);
  if (state == kUnknown) {
    // Never waits (see Begin): unknown for now, so this walk uses libunwind.
    if (!g_build_mu.TryLock()) return false;
    state = ClassifyLocked(i);
    g_build_mu.Unlock();
  }
  *out = Range{sl.lo, sl.hi, sl.eh_frame_hdr, state == kFp, sl.pinned != 0};
  return true;
}

bool FindUnclassified(uintptr_t pc, Range* out) {
  const size_t i = SlotOf(pc);
  if (i == kMaxRanges) return false;
  const Slot sl = Get(i);
  *out = Range{sl.lo, sl.hi, sl.eh_frame_hdr, sl.state == kFp, sl.pinned != 0};
  return true;
}

bool StillLoaded(const Range& r, uintptr_t pc) {
  if (r.pinned) return true;
  if (&_dl_find_object == nullptr) return false;  // glibc before 2.35
  dl_find_object o;
  if (_dl_find_object(reinterpret_cast<void*>(pc), &o) != 0) return false;
  return o.dlfo_eh_frame == r.eh_frame_hdr &&
         reinterpret_cast<uintptr_t>(o.dlfo_map_start) <= r.lo &&
         r.hi <= reinterpret_cast<uintptr_t>(o.dlfo_map_end);
}

bool Valid(uint64_t seq) {
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  return (seq & 1) == 0 && __atomic_load_n(&g_seq, __ATOMIC_RELAXED) == seq;
}

}  // namespace assay::profiler::fp_mappings
