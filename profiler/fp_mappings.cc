// The frame-pointer segment table (fp_mappings.h): rebuilt under a lock when
// dl_iterate_phdr's adds/subs counters move, read lock-free under a sequence
// number (odd while a rebuild runs). Never allocates: a fixed table.
#include "profiler/fp_mappings.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include <cstring>

#include "base/lock.h"

// Weak: glibc before 2.35 has no _dl_find_object (StillLoaded says false).
#pragma weak _dl_find_object

namespace assay::profiler::fp_mappings {
namespace {

constexpr size_t kMaxRanges = 256;
// FDEs read per object at most, evenly spaced over its table: enough to
// tell 50% from 7% (reading all of libc, libstdc++ and the rest took 4.6 M
// instructions at the first sample; 64 of each, about 30 000 each).
constexpr size_t kMaxScanned = 64;
// An object keeps frame pointers when at least this share (in 1/1000) of
// its FDEs that move the stack pointer put the CFA on %rbp (frameless
// leaves count for neither side: they call nothing). Measured on this
// machine: objects built with -fno-omit-frame-pointer read 75-98% (the rest
// are start-up stubs such as _init); the PLT's FDE, whose CFA is an
// expression, counts for neither side either (its stubs jump, never call:
// in a small program built with frame pointers, main and one helper, it
// was a third of the FDEs that count and made the program count as without
// them, so every walk fell back at its first frame); Debian's libc, libstdc++, libm,
// libgcc_s, ld.so, libunwind, libz and python3.11, built without, 0-13%; a
// test linking Debian's libgtest.a (no frame pointers) into frame-pointer
// code, 50%: such mixed objects count as without frame pointers.
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

uint64_t ReadU(const uint8_t*& p, int bytes) {
  uint64_t v = 0;
  std::memcpy(&v, p, bytes);
  p += bytes;
  return v;
}

uint64_t Uleb(const uint8_t*& p, const uint8_t* end) {
  uint64_t v = 0;
  int shift = 0;
  while (p < end) {
    const uint8_t b = *p++;
    if (shift < 64) v |= static_cast<uint64_t>(b & 0x7f) << shift;
    shift += 7;
    if ((b & 0x80) == 0) break;
  }
  return v;
}

// Bytes of a DW_EH_PE-encoded value (the low nibble), or 0 if unsupported.
int EncodedSize(uint8_t enc) {
  switch (enc & 0x0f) {
    case 0x00:
      return 8;  // absptr
    case 0x02:
    case 0x0a:
      return 2;
    case 0x03:
    case 0x0b:
      return 4;
    case 0x04:
    case 0x0c:
      return 8;
    default:
      return 0;
  }
}

// What the CFA instructions in [p, end) do with the CFA.
enum Cfa { kCfaUntouched, kCfaMoved, kCfaOnRbp, kCfaExpression, kCfaUnknown };

// kCfaOnRbp if they ever define the CFA on %rbp (DWARF register 6),
// kCfaExpression if they define it by an expression (the linker's FDE for
// the PLT: code that jumps and never calls), kCfaMoved if they only move it
// (pushes, stack adjustments), kCfaUntouched if they never do (a function
// that never moves its stack pointer makes no call: it needs no frame, with
// or without -fno-omit-frame-pointer).
Cfa ReadCfa(const uint8_t* p, const uint8_t* end, int addr_size) {
  Cfa result = kCfaUntouched;
  while (p < end) {
    const uint8_t op = *p++;
    switch (op >> 6) {
      case 1:
        continue;  // advance_loc
      case 2:
        Uleb(p, end);
        continue;  // offset
      case 3:
        continue;  // restore
      default:
        break;
    }
    switch (op) {
      case 0x00:
      case 0x0a:
      case 0x0b:
        break;  // nop, remember, restore_state
      case 0x01:
        p += addr_size;
        break;  // set_loc
      case 0x02:
        p += 1;
        break;
      case 0x03:
        p += 2;
        break;
      case 0x04:
        p += 4;
        break;
      case 0x06:  // restore_extended, undefined, same_value, GNU_args_size
      case 0x07:
      case 0x08:
      case 0x2e:
        Uleb(p, end);
        break;
      case 0x0e:  // def_cfa_offset(_sf): a push or a stack adjustment
      case 0x13:
        Uleb(p, end);
        result = kCfaMoved;
        break;
      case 0x05:
      case 0x09:
      case 0x11:
      case 0x14:
      case 0x15:
      case 0x2f:
        Uleb(p, end);
        Uleb(p, end);
        break;
      case 0x0c:
      case 0x12:  // def_cfa(_sf) reg, offset
        if (Uleb(p, end) == 6) return kCfaOnRbp;
        Uleb(p, end);
        result = kCfaMoved;
        break;
      case 0x0d:  // def_cfa_register
        if (Uleb(p, end) == 6) return kCfaOnRbp;
        result = kCfaMoved;
        break;
      case 0x0f:  // def_cfa_expression block
        return kCfaExpression;
      case 0x10:
      case 0x16: {  // (val_)expression reg, block
        Uleb(p, end);
        const uint64_t n = Uleb(p, end);
        p += n;
        break;
      }
      default:
        return kCfaUnknown;
    }
  }
  return result;
}

// Reads one FDE (its CIE's initial instructions, then its own).
Cfa ReadFde(const uint8_t* fde) {
  const uint8_t* p = fde;
  const uint32_t len = static_cast<uint32_t>(ReadU(p, 4));
  if (len == 0 || len == 0xffffffffu) return kCfaUnknown;
  const uint8_t* end = p + len;
  const uint8_t* id_at = p;
  const uint32_t cie_off = static_cast<uint32_t>(ReadU(p, 4));
  if (cie_off == 0) return kCfaUnknown;  // a CIE, not an FDE
  const uint8_t* c = id_at - cie_off;
  const uint32_t clen = static_cast<uint32_t>(ReadU(c, 4));
  if (clen == 0 || clen == 0xffffffffu) return kCfaUnknown;
  const uint8_t* cend = c + clen;
  if (ReadU(c, 4) != 0) return kCfaUnknown;
  const uint8_t version = *c++;
  const char* aug = reinterpret_cast<const char*>(c);
  c += std::strlen(aug) + 1;
  Uleb(c, cend);  // code alignment
  Uleb(c, cend);  // data alignment (sleb: only skipped)
  if (version == 1)
    c++;
  else
    Uleb(c, cend);
  uint8_t fde_enc = 0;  // absptr
  if (aug[0] == 'z') {
    const uint64_t alen = Uleb(c, cend);
    const uint8_t* a = c;
    for (const char* q = aug + 1; *q != '\0'; ++q) {
      if (*q == 'R') {
        fde_enc = *a++;
      } else if (*q == 'L') {
        a++;
      } else if (*q == 'P') {
        const uint8_t penc = *a++;
        const int sz = EncodedSize(penc);
        if (sz == 0) return kCfaUnknown;
        a += sz;
      } else if (*q != 'S') {
        return kCfaUnknown;
      }
    }
    c += alen;
  } else if (aug[0] != '\0') {
    return kCfaUnknown;
  }
  const int sz = EncodedSize(fde_enc);
  if (sz == 0 || c > cend) return kCfaUnknown;
  // The CIE's initial instructions set the CFA for every FDE of it (to
  // %rsp + 8 on x86-64: not a move).
  const Cfa initial = ReadCfa(c, cend, sz);
  if (initial == kCfaOnRbp || initial == kCfaExpression || initial == kCfaUnknown) return initial;
  p += 2 * sz;  // initial location, address range
  if (aug[0] == 'z') {
    const uint64_t alen = Uleb(p, end);
    p += alen;
  }
  if (p > end) return kCfaUnknown;
  return ReadCfa(p, end, sz);
}

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

// The CFA rule of the FDE covering pc, from the object's binary search
// table (version 1, table datarel sdata4, as ScanEhFrameHdr checks).
Cfa CfaAt(const uint8_t* hdr, uintptr_t pc) {
  if (hdr[0] != 1 || hdr[2] != 0x03 || hdr[3] != 0x3b) return kCfaUnknown;
  const int ptr_size = EncodedSize(hdr[1]);
  if (ptr_size == 0) return kCfaUnknown;
  const uint8_t* p = hdr + 4 + ptr_size;
  const uint32_t count = static_cast<uint32_t>(ReadU(p, 4));
  const auto base = reinterpret_cast<uintptr_t>(hdr);
  size_t lo = 0, hi = count;  // the last row whose start is <= pc
  while (hi - lo > 1) {
    const size_t mid = (lo + hi) / 2;
    int32_t start;
    std::memcpy(&start, p + mid * 8, 4);
    if (base + start <= pc) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  if (count == 0) return kCfaUnknown;
  int32_t fde_rel;
  std::memcpy(&fde_rel, p + lo * 8 + 4, 4);
  return ReadFde(hdr + fde_rel);
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
  return CfaAt(hdr, reinterpret_cast<uintptr_t>(&ClassifyLocked)) == kCfaOnRbp &&
         CfaAt(hdr, reinterpret_cast<uintptr_t>(&ScanEhFrameHdr)) == kCfaOnRbp;
}

// Classifies slot i's object (under g_build_mu, which the caller holds).
uint8_t ClassifyLocked(size_t i) {
  const Slot sl = Get(i);
  if (sl.state != kUnknown) return sl.state;
  size_t fdes = 0, fp_fdes = 0;
  const auto self = reinterpret_cast<uintptr_t>(&ClassifyLocked);
  const bool own = sl.lo <= self && self < sl.hi;
  const bool fp =
      sl.eh_frame_hdr != nullptr && (own ? OwnCodeKeepsFramePointers(sl.eh_frame_hdr)
                                         : ScanEhFrameHdr(sl.eh_frame_hdr, &fdes, &fp_fdes) &&
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

bool ScanEhFrameHdr(const uint8_t* hdr, size_t* fdes, size_t* fp_fdes) {
  *fdes = *fp_fdes = 0;
  // version 1; eh_frame_ptr encoding; count udata4; table datarel sdata4.
  if (hdr[0] != 1 || hdr[2] != 0x03 || hdr[3] != 0x3b) return false;
  const int ptr_size = EncodedSize(hdr[1]);
  if (ptr_size == 0) return false;
  const uint8_t* p = hdr + 4 + ptr_size;
  const uint32_t count = static_cast<uint32_t>(ReadU(p, 4));
  const size_t step = count > kMaxScanned ? count / kMaxScanned : 1;
  for (size_t i = 0; i < count; i += step) {
    const uint8_t* row = p + i * 8 + 4;
    int32_t fde_rel;
    std::memcpy(&fde_rel, row, 4);
    const Cfa cfa = ReadFde(hdr + fde_rel);
    // Frameless leaves and the PLT's stubs do not count.
    if (cfa == kCfaUnknown || cfa == kCfaUntouched || cfa == kCfaExpression) continue;
    ++*fdes;
    if (cfa == kCfaOnRbp) ++*fp_fdes;
  }
  return true;
}

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

bool Find(uintptr_t pc, Range* out) {
  size_t lo = 0, hi = __atomic_load_n(&g_count, __ATOMIC_RELAXED);
  if (hi > kMaxRanges) return false;
  const size_t n = hi;
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (__atomic_load_n(&g_ranges[mid].hi, __ATOMIC_RELAXED) <= pc)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo == n) return false;
  const Slot sl = Get(lo);
  if (sl.lo > pc || pc >= sl.hi) return false;
  uint8_t state = __atomic_load_n(&g_ranges[lo].state, __ATOMIC_ACQUIRE);
  if (state == kUnknown) {
    // Never waits (see Begin): unknown for now, so this walk uses libunwind.
    if (!g_build_mu.TryLock()) return false;
    state = ClassifyLocked(lo);
    g_build_mu.Unlock();
  }
  *out = Range{sl.lo, sl.hi, sl.eh_frame_hdr, state == kFp, sl.pinned != 0};
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
