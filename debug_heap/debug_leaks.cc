// The leak scan of the debug heap (ASSAY_DEBUG=leaks), run at exit: a
// conservative mark from the roots (writable data and bss of every loaded
// object, and every anonymous read-write mapping: thread stacks, with the
// calling thread's registers spilled onto its own, and memory the program
// mapped itself) through the live blocks; the live blocks no word reaches
// are leaks. A word reaching anywhere inside a block (an interior pointer)
// counts. Freed blocks are not scanned, so a block whose only pointer sat in
// a freed block is a leak. Uses no malloc until the report.
#include <fcntl.h>
#include <link.h>
#include <setjmp.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>

#include "debug_heap/debug.h"
#include "base/os.h"
#include "alloc/segment.h"
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

struct Scan {
  RawArray<Block> blocks;    // live blocks, sorted by user address
  RawArray<uint32_t> work;   // indices of marked blocks not yet scanned
  RawArray<Range> excluded;  // memory that is not a root (sorted by lo)
  bool out_of_memory = false;
};

// The block whose [user, user + size] holds a, or -1.
ptrdiff_t BlockAt(const Scan& s, uintptr_t a) {
  const Block* b = s.blocks.data;
  const Block* end = b + s.blocks.size;
  const Block* it = std::upper_bound(b, end, a, [](uintptr_t v, const Block& x) {
    return v < reinterpret_cast<uintptr_t>(x.user);
  });
  if (it == b) return -1;
  --it;
  if (a > reinterpret_cast<uintptr_t>(it->user) + it->header->size) return -1;
  return it - b;
}

void MarkWord(Scan& s, uintptr_t v) {
  if (v < 4096) return;
  const ptrdiff_t i = BlockAt(s, v);
  if (i < 0) return;
  Header* h = s.blocks.data[i].header;
  if ((h->flags & kMarked) != 0) return;
  h->flags |= kMarked;
  if (!s.work.Push(static_cast<uint32_t>(i))) s.out_of_memory = true;
}

void ScanWords(Scan& s, uintptr_t lo, uintptr_t hi) {
  lo = AlignUp(lo, sizeof(uintptr_t));
  for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t)) {
    MarkWord(s, *reinterpret_cast<const uintptr_t*>(a));
  }
}

// Scans [lo, hi) minus the excluded ranges.
void ScanRoot(Scan& s, uintptr_t lo, uintptr_t hi) {
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

void Drain(Scan& s) {
  while (s.work.size > 0) {
    const Block& b = s.blocks.data[s.work.data[--s.work.size]];
    const uintptr_t lo = reinterpret_cast<uintptr_t>(b.user);
    ScanWords(s, lo, lo + b.header->size);
  }
}

int OnObject(dl_phdr_info* info, size_t, void* arg) {
  Scan& s = *static_cast<Scan*>(arg);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) == 0) continue;
    const uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    ScanRoot(s, lo, lo + ph.p_memsz);
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

// Anonymous read-write mappings from /proc/self/maps, and [stack]. Lines look
// like "7f0c2a000000-7f0c2a021000 rw-p 00000000 00:00 0    [stack]".
// `maps` is reserved (and excluded from the roots) by the caller: it must not
// move, or the memory it moved out of would be listed and then gone.
void ScanAnonymousMappings(Scan& s, RawArray<Range>& maps) {
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[8192];
  size_t have = 0;
  for (;;) {
    const ssize_t got = read(fd, buf + have, sizeof(buf) - have);
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
      if (*p == '\0' || strcmp(p, "[stack]") == 0 || strcmp(p, "[heap]") == 0) {
        if (maps.size < maps.cap) {
          maps.Push(Range{lo, hi});
        } else {
          s.out_of_memory = true;
        }
      }
    }
    memmove(buf, buf + start, have - start);
    have -= start;
    if (have == sizeof(buf)) have = 0;  // a line longer than the buffer: drop it
  }
  close(fd);
  // Scanning may map memory (the work list), which changes /proc/self/maps:
  // the ranges were read first.
  for (size_t i = 0; i < maps.size; ++i) {
    const Range r = maps.data[i];
    // The kernel may list a segment merged with its neighbours: skip the
    // heap's own segments chunk by chunk.
    for (uintptr_t lo = r.lo; lo < r.hi;) {
      const uintptr_t next = (lo & ~(uintptr_t{kSegmentSize} - 1)) + kSegmentSize;
      const uintptr_t hi = next < r.hi ? next : r.hi;
      if (!segment_map::Contains(lo)) ScanRoot(s, lo, hi);
      lo = hi;
    }
  }
}

// ---- The report ----

struct Site {
  const profiler::Stack* stack;
  size_t blocks;
  size_t bytes;
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

// Prints the summary of the blocks the scan did not mark (and writes the leak
// profile); returns how many there are.
size_t Report(const Scan& s) {
  RawArray<Site> sites;
  RawArray<Block> lost;
  size_t lost_bytes = 0;
  for (size_t i = 0; i < s.blocks.size; ++i) {
    if ((s.blocks.data[i].header->flags & kMarked) != 0) continue;
    lost.Push(s.blocks.data[i]);
    lost_bytes += s.blocks.data[i].header->size;
  }
  if (lost.size == 0) {
    Print("assay: leaks: none among %zu live blocks at exit\n", s.blocks.size);
    return 0;
  }
  std::sort(lost.data, lost.data + lost.size, [](const Block& a, const Block& b) {
    return a.header->alloc_stack < b.header->alloc_stack;
  });
  for (size_t i = 0; i < lost.size; ++i) {
    const Header* h = lost.data[i].header;
    if (sites.size > 0 && sites.data[sites.size - 1].stack == h->alloc_stack) {
      sites.data[sites.size - 1].blocks++;
      sites.data[sites.size - 1].bytes += h->size;
    } else {
      sites.Push(Site{h->alloc_stack, 1, h->size});
    }
  }
  std::sort(sites.data, sites.data + sites.size,
            [](const Site& a, const Site& b) { return a.bytes > b.bytes; });
  Print("assay: leaks: %zu blocks (%zu bytes) not reachable at exit, from %zu allocation sites\n",
        lost.size, lost_bytes, sites.size);
  const size_t shown = sites.size < 20 ? sites.size : 20;
  for (size_t i = 0; i < shown; ++i) {
    Print("  %zu bytes in %zu block%s allocated at:\n", sites.data[i].bytes, sites.data[i].blocks,
          sites.data[i].blocks == 1 ? "" : "s");
    if (sites.data[i].stack != nullptr) {
      WriteStack(sites.data[i].stack, 8);
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
  const size_t leaked = lost.size;
  sites.Free();
  lost.Free();
  return leaked;
}

}  // namespace

size_t CheckLeaks() {
  Scan s;
  ForEachLive(
      [](const Block& b, void* arg) {
        Scan& sc = *static_cast<Scan*>(arg);
        b.header->flags &= ~kMarked;
        if (!sc.blocks.Push(b)) sc.out_of_memory = true;
      },
      &s);
  std::sort(s.blocks.data, s.blocks.data + s.blocks.size,
            [](const Block& a, const Block& b) { return a.user < b.user; });
  // Not roots: the scan's own arrays and every mapped block's own mapping
  // (a leaked mapped block must not keep what it points to alive). Both
  // arrays are sized now so that they never move during the scan.
  RawArray<Range> maps;
  if (!s.work.Reserve(s.blocks.size + 1) || !s.excluded.Reserve(s.blocks.size + 5) ||
      !maps.Reserve(1 << 16)) {
    s.out_of_memory = true;
  }
  for (size_t i = 0; i < s.blocks.size; ++i) {
    uintptr_t lo, hi;
    if (MappedExtent(s.blocks.data[i].header, &lo, &hi)) s.excluded.Push(Range{lo, hi});
  }
  s.excluded.Push(Range{s.blocks.Lo(), s.blocks.Hi()});
  s.excluded.Push(Range{s.work.Lo(), s.work.Hi()});
  s.excluded.Push(Range{s.excluded.Lo(), s.excluded.Hi()});
  s.excluded.Push(Range{maps.Lo(), maps.Hi()});
  std::sort(s.excluded.data, s.excluded.data + s.excluded.size,
            [](const Range& a, const Range& b) { return a.lo < b.lo; });
  if (s.blocks.size > 0) {
    // The registers of this thread, spilled into its stack frame.
    jmp_buf regs;
    setjmp(regs);
    __asm__ __volatile__("" : : "r"(&regs) : "memory");
    dl_iterate_phdr(OnObject, &s);
    ScanAnonymousMappings(s, maps);
    Drain(s);
  }
  if (s.out_of_memory) {
    os::WriteStderr("assay: leaks: out of memory during the scan; the report may be incomplete\n");
  }
  const size_t leaked = Report(s);
  for (size_t i = 0; i < s.blocks.size; ++i) s.blocks.data[i].header->flags &= ~kMarked;
  s.blocks.Free();
  s.work.Free();
  s.excluded.Free();
  maps.Free();
  return leaked;
}

}  // namespace assay::internal::debug
