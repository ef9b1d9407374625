// The leak scan's roots besides the threads (leak_roots.h).
#include "debug_heap/leak_roots.h"

#include <link.h>
#include <string.h>
#include <sys/auxv.h>

#include <algorithm>

namespace assay::internal::debug::leak {
namespace {

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

}  // namespace

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

}  // namespace assay::internal::debug::leak
