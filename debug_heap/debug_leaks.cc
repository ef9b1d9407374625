// The leak scan of the debug heap (ASSAY_DEBUG=leaks), run at exit from an
// atexit handler: a conservative mark, as LeakSanitizer takes its roots, then
// valgrind's split of the unreached blocks into direct and indirect leaks.
//
// Roots: the writable PT_LOAD segments of every loaded object; every live
// thread's registers, its stack from its stack pointer up (the other threads,
// stopped with ptrace by stop_world.cc, also the 128-byte x86-64 red zone
// below it) and its static TLS; anonymous read-write mappings the program
// made itself (valgrind scans them too; LSan does not, which would make every
// pointer held in, say, CPython's arenas look leaked); and, as LSan does, the
// blocks the dynamic linker allocated (DTVs, dynamic TLS blocks, link maps).
// Not roots: the dead area below each stack pointer, the cached stacks of
// exited threads (free memory: their stale frames must not hide leaks), the
// allocator's segments and mapped blocks, and the scan's own memory. A word
// reaching anywhere inside a block (an interior pointer) counts; freed blocks
// are not scanned. Uses no malloc until the report.
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

#include <algorithm>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "alloc/segment.h"
#include "base/os.h"
#include "debug_heap/debug.h"
#include "debug_heap/stop_world.h"
#include "profiler/dumper.h"
#include "profiler/profile_data.h"
#include "profiler/stack_table.h"

namespace assay::internal::debug {
namespace {

// A growable array in memory mapped for it (never malloc).
template <typename T>
struct RawArray {
  T* data = nullptr;
  size_t size = 0;
  size_t cap = 0;

  // Makes room for `want` elements in all; later pushes up to it never move the array.
  bool Reserve(size_t want) {
    if (want <= cap) return true;
    size_t ncap = cap == 0 ? 4096 : cap;
    while (ncap < want) ncap *= 2;
    return Grow(ncap);
  }
  bool Grow(size_t ncap) {
    T* d = static_cast<T*>(os::MapAligned(AlignUp(ncap * sizeof(T), kPageSize), kPageSize));
    if (d == nullptr) return false;
    if (data != nullptr) {
      memcpy(d, data, size * sizeof(T));
      os::Unmap(data, AlignUp(cap * sizeof(T), kPageSize));
    }
    data = d;
    cap = ncap;
    return true;
  }
  bool Push(const T& v) {
    if (size == cap && !Grow(cap == 0 ? 4096 : cap * 2)) return false;
    data[size++] = v;
    return true;
  }
  void Free() {
    if (data != nullptr) os::Unmap(data, AlignUp(cap * sizeof(T), kPageSize));
    data = nullptr;
    size = cap = 0;
  }
  uintptr_t Lo() const { return reinterpret_cast<uintptr_t>(data); }
  uintptr_t Hi() const { return Lo() + AlignUp(cap * sizeof(T), kPageSize); }
};

struct Range {
  uintptr_t lo, hi;
};

// A read-write mapping of /proc/self/maps.
struct Mapping {
  uintptr_t lo, hi;
  uint8_t kind;  // kAnon, kHeap, kMainStack, kFile
};
enum : uint8_t { kAnon, kHeap, kMainStack, kFile };

// What the scan knows of a block, beside it (never in its header: the other
// threads run again before the report).
enum : uint8_t { kUnreached, kReached, kIndirect };

struct Scan {
  RawArray<Block> blocks;               // live blocks, sorted by user address
  RawArray<uint8_t> state;              // per block: kUnreached, kReached, kIndirect
  RawArray<uint32_t> work;              // indices of blocks to scan
  RawArray<Range> excluded;             // memory that is not a root (sorted by lo)
  uintptr_t min_user = 0, max_end = 0;  // all blocks lie in [min_user, max_end]
  size_t root_bytes = 0;
  bool out_of_memory = false;
};

// The block whose [user, user + size) holds a (a zero-byte block: a == user),
// or -1. Not one past the end: that is where the next slot starts, and the
// allocator's free lists (and the program's end pointers) point there.
ptrdiff_t BlockAt(const Scan& s, uintptr_t a) {
  if (a < s.min_user || a > s.max_end) return -1;
  const Block* b = s.blocks.data;
  const Block* end = b + s.blocks.size;
  const Block* it = std::upper_bound(b, end, a, [](uintptr_t v, const Block& x) {
    return v < reinterpret_cast<uintptr_t>(x.user);
  });
  if (it == b) return -1;
  --it;
  const uint64_t size = it->header->size;
  if (a - reinterpret_cast<uintptr_t>(it->user) >= (size == 0 ? 1 : size)) return -1;
  return it - b;
}

void Reach(Scan& s, size_t i) {
  if (s.state.data[i] != kUnreached) return;
  s.state.data[i] = kReached;
  if (!s.work.Push(static_cast<uint32_t>(i))) s.out_of_memory = true;
}

void MarkWord(Scan& s, uintptr_t v) {
  const ptrdiff_t i = BlockAt(s, v);
  if (i >= 0) Reach(s, static_cast<size_t>(i));
}

void ScanWords(Scan& s, uintptr_t lo, uintptr_t hi) {
  lo = AlignUp(lo, sizeof(uintptr_t));
  for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t)) {
    MarkWord(s, *reinterpret_cast<const uintptr_t*>(a));
  }
}

// Scans [lo, hi) minus the excluded ranges.
void ScanRoot(Scan& s, uintptr_t lo, uintptr_t hi) {
  if (lo >= hi) return;
  s.root_bytes += hi - lo;
  const Range* ex = s.excluded.data;
  const Range* ex_end = ex + s.excluded.size;
  const Range* it =
      std::lower_bound(ex, ex_end, lo, [](const Range& r, uintptr_t v) { return r.hi <= v; });
  while (lo < hi) {
    if (it == ex_end || it->lo >= hi) {
      ScanWords(s, lo, hi);
      return;
    }
    if (it->lo > lo) ScanWords(s, lo, it->lo);
    if (it->hi > lo) lo = it->hi;
    ++it;
  }
}

// Scans [lo, hi) but the allocator's segments (the kernel may list a segment
// merged with its neighbours: checked chunk by chunk).
void ScanOutsideSegments(Scan& s, uintptr_t lo, uintptr_t hi) {
  while (lo < hi) {
    const uintptr_t next = (lo & ~(uintptr_t{kSegmentSize} - 1)) + kSegmentSize;
    const uintptr_t end = next < hi ? next : hi;
    if (!segment_map::Contains(lo)) ScanRoot(s, lo, end);
    lo = end;
  }
}

void Drain(Scan& s) {
  while (s.work.size > 0) {
    const Block& b = s.blocks.data[s.work.data[--s.work.size]];
    const uintptr_t lo = reinterpret_cast<uintptr_t>(b.user);
    ScanWords(s, lo, lo + b.header->size);
  }
}

// valgrind's cliques (memcheck's mc_leakcheck.c): in address order, each
// block still unreached leads a clique: every unreached block it reaches,
// directly or through others, other than itself, becomes an indirect leak
// (an earlier leader too: the cliques merge). What stays unreached is a
// direct leak. So a block is direct iff no other leaked block points to it,
// except in a cycle that nothing else points to, where the member with the
// lowest address is direct and the rest indirect (as valgrind reports it).
void SplitDirectIndirect(Scan& s) {
  for (size_t leader = 0; leader < s.blocks.size; ++leader) {
    if (s.state.data[leader] != kUnreached) continue;
    s.work.size = 0;
    s.work.Push(static_cast<uint32_t>(leader));
    while (s.work.size > 0) {
      const Block& b = s.blocks.data[s.work.data[--s.work.size]];
      const uintptr_t lo = AlignUp(reinterpret_cast<uintptr_t>(b.user), sizeof(uintptr_t));
      const uintptr_t hi = reinterpret_cast<uintptr_t>(b.user) + b.header->size;
      for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t)) {
        const ptrdiff_t i = BlockAt(s, *reinterpret_cast<const uintptr_t*>(a));
        if (i < 0 || static_cast<size_t>(i) == leader || s.state.data[i] != kUnreached) continue;
        s.state.data[i] = kIndirect;
        s.work.Push(static_cast<uint32_t>(i));
      }
    }
  }
}

// Writable PT_LOAD segments of every loaded object (data, bss), and the text
// of the dynamic linker (to tell its allocations).
struct Objects {
  RawArray<Range> data;
  Range ldso_text{0, 0};
};

int OnObject(dl_phdr_info* info, size_t, void* arg) {
  Objects& o = *static_cast<Objects*>(arg);
  const bool ldso = info->dlpi_addr != 0 && info->dlpi_addr == getauxval(AT_BASE);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if ((ph.p_flags & PF_W) != 0) o.data.Push(Range{lo, lo + ph.p_memsz});
    if (ldso && (ph.p_flags & PF_X) != 0) o.ldso_text = Range{lo, lo + ph.p_memsz};
  }
  return 0;
}

uintptr_t ParseHex(const char*& p) {
  uintptr_t v = 0;
  for (;; ++p) {
    const char c = *p;
    if (c >= '0' && c <= '9') {
      v = v * 16 + static_cast<uintptr_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      v = v * 16 + static_cast<uintptr_t>(c - 'a' + 10);
    } else {
      return v;
    }
  }
}

// The read-write mappings of /proc/self/maps, in address order. Lines look
// like "7f0c2a000000-7f0c2a021000 rw-p 00000000 00:00 0    [stack]".
// `maps` is reserved (and excluded from the roots) by the caller.
void ReadMappings(Scan& s, RawArray<Mapping>& maps) {
  const int fd = os::OpenReadOnly("/proc/self/maps");
  if (fd < 0) {
    s.out_of_memory = true;
    return;
  }
  char buf[8192];
  size_t have = 0;
  for (;;) {
    const long got = os::ReadSome(fd, buf + have, sizeof(buf) - have);
    if (got <= 0) break;
    have += static_cast<size_t>(got);
    size_t start = 0;
    for (size_t i = 0; i < have; ++i) {
      if (buf[i] != '\n') continue;
      buf[i] = '\0';
      const char* p = buf + start;
      start = i + 1;
      const uintptr_t lo = ParseHex(p);
      if (*p++ != '-') continue;
      const uintptr_t hi = ParseHex(p);
      if (*p++ != ' ' || p[0] != 'r' || p[1] != 'w') continue;
      // Skip perms, offset, device, inode; what is left is the path, if any.
      for (int field = 0; field < 4 && *p != '\0'; ++field) {
        while (*p != ' ' && *p != '\0') ++p;
        while (*p == ' ') ++p;
      }
      uint8_t kind;
      if (*p == '\0') {
        kind = kAnon;
      } else if (strcmp(p, "[heap]") == 0) {
        kind = kHeap;
      } else if (strcmp(p, "[stack]") == 0) {
        kind = kMainStack;
      } else if (*p == '[') {
        continue;  // [vvar] and the like
      } else {
        kind = kFile;
      }
      if (maps.size < maps.cap) {
        maps.Push(Mapping{lo, hi, kind});
      } else {
        s.out_of_memory = true;
      }
    }
    memmove(buf, buf + start, have - start);
    have -= start;
    if (have == sizeof(buf)) have = 0;  // a line longer than the buffer: drop it
  }
  os::Close(fd);
}

const Mapping* MappingOf(const RawArray<Mapping>& maps, uintptr_t a) {
  const Mapping* begin = maps.data;
  const Mapping* end = begin + maps.size;
  const Mapping* it =
      std::upper_bound(begin, end, a, [](uintptr_t v, const Mapping& m) { return v < m.lo; });
  if (it == begin) return nullptr;
  --it;
  return a < it->hi ? it : nullptr;
}

// The thread pointer whose glibc TCB sits in the top 32 KiB of m, or 0: the
// mark of a thread stack (glibc puts the TCB and static TLS at the top of
// every thread's stack mapping). On x86-64 the TCB starts with pointers to
// itself (tcbhead_t: tcb, dtv, self), 64-aligned.
uintptr_t TcbIn(const Mapping& m) {
#if defined(__x86_64__)
  const uintptr_t top = (m.hi - 24) & ~uintptr_t{63};
  const uintptr_t bottom = m.hi - m.lo > (32u << 10) ? m.hi - (32u << 10) : m.lo;
  for (uintptr_t p = top; p >= bottom && p > 64; p -= 64) {
    const auto* w = reinterpret_cast<const uintptr_t*>(p);
    if (w[0] == p && w[2] == p) return p;
  }
#else
  (void)m;
#endif
  return 0;
}

struct LiveThread {
  uintptr_t sp, tp;
  size_t redzone;  // bytes below sp that are live (the x86-64 red zone)
};

// The callee-saved registers (the ones that may still hold the program's
// values when its exit handlers run), read at the scan's entry.
constexpr size_t kSavedRegs = 12;
__attribute__((always_inline)) inline void SpillCalleeSaved(uintptr_t* r) {
#if defined(__x86_64__)
  __asm__ __volatile__(
      "mov %%rbx, 0(%0)\n\tmov %%rbp, 8(%0)\n\tmov %%r12, 16(%0)\n\t"
      "mov %%r13, 24(%0)\n\tmov %%r14, 32(%0)\n\tmov %%r15, 40(%0)"
      :
      : "r"(r)
      : "memory");
#elif defined(__aarch64__)
  __asm__ __volatile__(
      "stp x19, x20, [%0]\n\tstp x21, x22, [%0, #16]\n\tstp x23, x24, [%0, #32]\n\t"
      "stp x25, x26, [%0, #48]\n\tstp x27, x28, [%0, #64]\n\tstp x29, x30, [%0, #80]"
      :
      : "r"(r)
      : "memory");
#else
  __builtin_memset(r, 0, kSavedRegs * sizeof(uintptr_t));
#endif
}

using TlsInfoFn = void (*)(size_t* size, size_t* align);

// ---- The report ----

struct Site {
  const profiler::Stack* stack;
  size_t blocks, bytes;                // all leaked blocks from here
  size_t direct_blocks, direct_bytes;  // those no other leaked block reaches
};

void WriteLeakProfile(const Site* sites, size_t n, const char* path) {
  RawArray<AssayProfileSample> samples;
  RawArray<uintptr_t> frames;
  for (size_t i = 0; i < n; ++i) {
    AssayProfileSample smp{};
    smp.frame_offset = static_cast<uint32_t>(frames.size);
    const profiler::Stack* st = sites[i].stack;
    smp.depth = st != nullptr ? st->depth : 0;
    for (uint32_t f = 0; f < smp.depth; ++f) frames.Push(st->frames[f]);
    const int64_t objects = static_cast<int64_t>(sites[i].blocks);
    const int64_t bytes = static_cast<int64_t>(sites[i].bytes);
    smp.values[0] = smp.values[2] = objects;
    smp.values[1] = smp.values[3] = bytes;
    smp.requested_bytes = -1;
    smp.batch_index = -1;
    samples.Push(smp);
  }
  AssayProfileData data{};
  data.kind = "leak";
  data.default_sample_type = 3;
  data.time_nanos = 0;
  data.period = 1;
  data.samples = samples.data;
  data.nsamples = samples.size;
  data.frames = frames.data;
  data.nframes = frames.size;
  data.comment = "assay debug heap: blocks no pointer reaches at exit (ASSAY_DEBUG=leaks)";
  if (profiler::dumper::WriteProfileData(&data, path) == 0) {
    Print("assay: leak profile written to %s\n", path);
  }
  samples.Free();
  frames.Free();
}

const char* Plural(size_t n) { return n == 1 ? "" : "s"; }

// Prints the blocks the scan did not reach, grouped by allocation site with
// their direct and indirect parts, ending with LSan's summary line (and
// writes the leak profile); returns how many there are.
size_t Report(const Scan& s, uint64_t scan_ns, size_t threads, bool stopped) {
  struct Lost {
    const Header* h;
    bool direct;
  };
  RawArray<Site> sites;
  RawArray<Lost> lost;
  size_t lost_bytes = 0, direct_blocks = 0, direct_bytes = 0;
  for (size_t i = 0; i < s.blocks.size; ++i) {
    if (s.state.data[i] == kReached) continue;
    const Header* h = s.blocks.data[i].header;
    const bool direct = s.state.data[i] == kUnreached;
    lost.Push(Lost{h, direct});
    lost_bytes += h->size;
    if (direct) {
      ++direct_blocks;
      direct_bytes += h->size;
    }
  }
  const double ms = static_cast<double>(scan_ns) / 1e6;
  if (lost.size == 0) {
    Print("assay: leaks: none among %zu live blocks at exit (scan %.1f ms)\n", s.blocks.size, ms);
    return 0;
  }
  std::sort(lost.data, lost.data + lost.size,
            [](const Lost& a, const Lost& b) { return a.h->alloc_stack < b.h->alloc_stack; });
  for (size_t i = 0; i < lost.size; ++i) {
    const Header* h = lost.data[i].h;
    if (sites.size == 0 || sites.data[sites.size - 1].stack != h->alloc_stack) {
      sites.Push(Site{h->alloc_stack, 0, 0, 0, 0});
    }
    Site& site = sites.data[sites.size - 1];
    site.blocks++;
    site.bytes += h->size;
    if (lost.data[i].direct) {
      site.direct_blocks++;
      site.direct_bytes += h->size;
    }
  }
  // Sites with direct leaks first (fixing those frees the rest), biggest first.
  std::sort(sites.data, sites.data + sites.size, [](const Site& a, const Site& b) {
    if (a.direct_bytes != b.direct_bytes) return a.direct_bytes > b.direct_bytes;
    return a.bytes > b.bytes;
  });
  Print("assay: leaks: %zu blocks (%zu bytes) not reachable at exit, from %zu allocation sites\n",
        lost.size, lost_bytes, sites.size);
  Print(
      "assay: leaks: direct %zu bytes in %zu block%s, indirect %zu bytes in %zu block%s "
      "(scan %.1f ms, %zu live blocks, %zu thread%s%s)\n",
      direct_bytes, direct_blocks, Plural(direct_blocks), lost_bytes - direct_bytes,
      lost.size - direct_blocks, Plural(lost.size - direct_blocks), ms, s.blocks.size, threads,
      Plural(threads), stopped ? " stopped" : "");
  const size_t shown = sites.size < 20 ? sites.size : 20;
  for (size_t i = 0; i < shown; ++i) {
    const Site& site = sites.data[i];
    Print(
        "  %zu bytes in %zu block%s (direct %zu bytes in %zu, indirect %zu bytes in %zu) "
        "allocated at:\n",
        site.bytes, site.blocks, Plural(site.blocks), site.direct_bytes, site.direct_blocks,
        site.bytes - site.direct_bytes, site.blocks - site.direct_blocks);
    if (site.stack != nullptr) {
      WriteStack(site.stack, 16);
    } else {
      os::WriteStderr("    (stack not recorded)\n");
    }
  }
  if (shown < sites.size) {
    Print("  ... and %zu more sites (see the leak profile)\n", sites.size - shown);
  }
  if (GetConfig().leak_profile[0] != '\0') {
    WriteLeakProfile(sites.data, sites.size, GetConfig().leak_profile);
  }
  Print("SUMMARY: assay: %zu byte(s) leaked in %zu allocation(s).\n", lost_bytes, lost.size);
  const size_t leaked = lost.size;
  sites.Free();
  lost.Free();
  return leaked;
}

// The scan proper; returns the time it took (ns).
uint64_t MarkAndSplit(Scan& s, uintptr_t self_sp, const uintptr_t* self_regs, size_t* nthreads,
                      bool* stopped_out) {
  const uint64_t t0 = os::NowNs();
  // Before any lock: dlsym and dl_iterate_phdr take the loader's locks (a
  // thread stopped inside dlopen holds them).
  static TlsInfoFn tls_info =
      reinterpret_cast<TlsInfoFn>(dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info"));
  size_t tls_size = 0, tls_align = 0;
  if (tls_info != nullptr) tls_info(&tls_size, &tls_align);
  Objects objects;
  RawArray<Mapping> maps;
  RawArray<LiveThread> live;
  if (!objects.data.Reserve(4096) || !maps.Reserve(1 << 16) ||
      !live.Reserve(stop_world::kMaxThreads + 1)) {
    s.out_of_memory = true;
  }
  dl_iterate_phdr(OnObject, &objects);

  // The locks ForEachLive needs, then the other threads (none may be stopped
  // holding one of them).
  LockForLeakScan();
  stop_world::World world;
  const long threads = stop_world::CountThreads();
  const bool alone = threads == 1;
  const bool stopped = !alone && stop_world::Stop(&world);
  ForEachLiveLocked(
      [](const Block& b, void* arg) {
        Scan& sc = *static_cast<Scan*>(arg);
        if (!sc.blocks.Push(b)) sc.out_of_memory = true;
      },
      &s);
  std::sort(s.blocks.data, s.blocks.data + s.blocks.size,
            [](const Block& a, const Block& b) { return a.user < b.user; });
  if (s.blocks.size > 0) {
    s.min_user = reinterpret_cast<uintptr_t>(s.blocks.data[0].user);
    for (size_t i = 0; i < s.blocks.size; ++i) {
      const uintptr_t end =
          reinterpret_cast<uintptr_t>(s.blocks.data[i].user) + s.blocks.data[i].header->size;
      if (end > s.max_end) s.max_end = end;
    }
  }
  // Sized now, so that they never move during the scan (they are excluded).
  if (!s.state.Reserve(s.blocks.size + 1) || !s.work.Reserve(s.blocks.size + 1) ||
      !s.excluded.Reserve(s.blocks.size + 16)) {
    s.out_of_memory = true;
  }
  s.state.size = s.blocks.size;  // zeroed by the mapping: all kUnreached
  for (size_t i = 0; i < s.blocks.size; ++i) {
    uintptr_t lo, hi;
    if (MappedExtent(s.blocks.data[i].header, &lo, &hi)) s.excluded.Push(Range{lo, hi});
  }
  uintptr_t tracer_lo, tracer_hi;
  stop_world::SharedExtent(world, &tracer_lo, &tracer_hi);
  for (const Range r : {Range{s.blocks.Lo(), s.blocks.Hi()}, Range{s.state.Lo(), s.state.Hi()},
                        Range{s.work.Lo(), s.work.Hi()}, Range{s.excluded.Lo(), s.excluded.Hi()},
                        Range{maps.Lo(), maps.Hi()}, Range{live.Lo(), live.Hi()},
                        Range{objects.data.Lo(), objects.data.Hi()}, Range{tracer_lo, tracer_hi}}) {
    if (r.lo < r.hi) s.excluded.Push(r);
  }
  std::sort(s.excluded.data, s.excluded.data + s.excluded.size,
            [](const Range& a, const Range& b) { return a.lo < b.lo; });
  ReadMappings(s, maps);

  // The live threads: this one (its stack from CheckLeaks' frame up: the
  // scan's own frames hold only its own data) and the stopped ones (registers scanned here, red
  // zone included: a leaf function may keep a pointer there without moving sp).
  live.Push(LiveThread{self_sp, stop_world::SelfThreadPointer(), 0});
  for (size_t r = 0; r < kSavedRegs; ++r) MarkWord(s, self_regs[r]);
#if defined(__x86_64__)
  constexpr size_t kRedZone = 128;
#else
  constexpr size_t kRedZone = 0;
#endif
  bool threads_known = alone || stopped;
  for (size_t i = 0; i < world.count; ++i) {
    const stop_world::Thread& t = world.threads[i];
    for (size_t r = 0; r < t.nregs; ++r) MarkWord(s, t.regs[r]);
    if (t.sp == 0) {
      threads_known = false;  // its registers could not be read
      continue;
    }
    live.Push(LiveThread{t.sp, t.tp, kRedZone});
  }
  *nthreads = live.size;
  *stopped_out = stopped;

  if (s.blocks.size > 0) {
    for (size_t i = 0; i < objects.data.size; ++i) {
      ScanRoot(s, objects.data.data[i].lo, objects.data.data[i].hi);
    }
    for (size_t i = 0; i < live.size; ++i) {
      const LiveThread& t = live.data[i];
      if (const Mapping* m = MappingOf(maps, t.sp); m != nullptr) {
        ScanRoot(s, t.sp - t.redzone > m->lo ? t.sp - t.redzone : m->lo, m->hi);
      }
      // Static TLS and the TCB lie within tls_size of the thread pointer (below
      // it on x86-64, above on aarch64): take both sides, within its mapping.
      if (const Mapping* m = MappingOf(maps, t.tp); m != nullptr && tls_size > 0) {
        const uintptr_t lo = t.tp - m->lo > tls_size ? t.tp - tls_size : m->lo;
        const uintptr_t hi = m->hi - t.tp > tls_size ? t.tp + tls_size : m->hi;
        ScanRoot(s, lo, hi);
      }
    }
    // The program's own anonymous memory, but thread stacks: a live one was
    // scanned from its sp; a dead one (a TCB no live thread owns: a cached
    // stack) is free memory.
    for (size_t i = 0; i < maps.size; ++i) {
      const Mapping& m = maps.data[i];
      if (m.kind == kFile) continue;
      bool holds_sp = false;
      for (size_t t = 0; t < live.size && !holds_sp; ++t) {
        holds_sp = live.data[t].sp >= m.lo && live.data[t].sp < m.hi;
      }
      if (holds_sp) continue;
      if (threads_known && m.kind == kAnon) {
        const uintptr_t tcb = TcbIn(m);
        bool owned = false;
        for (size_t t = 0; t < live.size && !owned; ++t) owned = live.data[t].tp == tcb;
        if (tcb != 0 && !owned) continue;
      }
      ScanOutsideSegments(s, m.lo, m.hi);
    }
    // Blocks the dynamic linker allocated are roots, as in LSan: a thread's
    // DTV and dynamic TLS blocks (also those of exited threads, whose stacks
    // glibc caches and whose DTVs it frees on reuse), link maps.
    const Range ld = objects.ldso_text;
    for (size_t i = 0; i < s.blocks.size && ld.lo < ld.hi; ++i) {
      const profiler::Stack* st = s.blocks.data[i].header->alloc_stack;
      if (st != nullptr && st->depth > 0 && st->frames[0] > ld.lo && st->frames[0] <= ld.hi) {
        Reach(s, i);
      }
    }
    Drain(s);
  }
  if (stopped) stop_world::Resume(&world);
  UnlockAfterLeakScan();
  if (!alone && !stopped) {
    Print(
        "assay: leaks: could not stop the other threads (%s): their stacks are scanned whole, "
        "so leaks may be missed\n",
        strerror(world.error));
  }
  // The unreached blocks: only this thread can reach them now.
  SplitDirectIndirect(s);
  objects.data.Free();
  maps.Free();
  live.Free();
  return os::NowNs() - t0;
}

// The scan, below CheckLeaks' frame.
ASSAY_NOINLINE size_t CheckLeaksFrom(uintptr_t sp, const uintptr_t* regs) {
  const int saved_errno = errno;
  Scan s;
  size_t threads = 0;
  bool stopped = false;
  const uint64_t ns = MarkAndSplit(s, sp, regs, &threads, &stopped);
  if (s.out_of_memory) {
    os::WriteStderr("assay: leaks: out of memory during the scan; the report may be incomplete\n");
  }
  const size_t leaked = Report(s, ns, threads, stopped);
  s.blocks.Free();
  s.state.Free();
  s.work.Free();
  s.excluded.Free();
  errno = saved_errno;
  return leaked;
}

}  // namespace

namespace {

// The frame that called exit(): its stack pointer and its callee-saved
// registers as they were at the call (recovered by libunwind from where
// exit's frames saved them). The frames of exit and of its handlers lie
// below: they overlay the dead frames of the program (main's callees) and
// keep stale pointers in their padding, which would hide leaks (LSan's and
// valgrind's exit paths happen to overwrite them). False if exit is not on
// the stack (the scan then starts at CheckLeaks' frame).
bool ExitCaller(uintptr_t* sp, uintptr_t* regs) {
#if defined(__x86_64__)
  unw_context_t context;
  unw_cursor_t cursor;
  if (unw_getcontext(&context) != 0 || unw_init_local(&cursor, &context) != 0) return false;
  const auto exit_fn = reinterpret_cast<unw_word_t>(&exit);
  for (int depth = 0; depth < 32 && unw_step(&cursor) > 0; ++depth) {
    unw_proc_info_t info;
    if (unw_get_proc_info(&cursor, &info) != 0 || info.start_ip != exit_fn) continue;
    if (unw_step(&cursor) <= 0) return false;
    unw_word_t v = 0;
    if (unw_get_reg(&cursor, UNW_REG_SP, &v) != 0) return false;
    *sp = v;
    const int saved[] = {UNW_X86_64_RBX, UNW_X86_64_RBP, UNW_X86_64_R12,
                         UNW_X86_64_R13, UNW_X86_64_R14, UNW_X86_64_R15};
    size_t n = 0;
    for (const int r : saved) regs[n++] = unw_get_reg(&cursor, r, &v) == 0 ? v : 0;
    while (n < kSavedRegs) regs[n++] = 0;
    return true;
  }
#else
  (void)sp, (void)regs;
#endif
  return false;
}

}  // namespace

// This thread's registers and stack as the program left them at its call to
// exit (else as CheckLeaks' caller left them, from this frame up).
size_t CheckLeaks() {
  uintptr_t regs[kSavedRegs] = {};
  SpillCalleeSaved(regs);
  uintptr_t sp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  uintptr_t caller_regs[kSavedRegs];
  if (ExitCaller(&sp, caller_regs)) memcpy(regs, caller_regs, sizeof(regs));
  return CheckLeaksFrom(sp, regs);
}

}  // namespace assay::internal::debug
