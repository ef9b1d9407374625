// The safe-linking key and the corrupted-link report (free_link.h).
#include "alloc/free_link.h"

#include "base/os.h"

namespace assay::internal::link {

constinit uint64_t g_key = 0;

void Enable() {
  uint64_t k = os::RandomU64();
  // Bit 63 set: every stored link is a non-canonical address, so one that
  // leaks reads as no pointer; never 0 (0 means off).
  __atomic_store_n(&g_key, k | (uint64_t{1} << 63), __ATOMIC_RELAXED);
}

namespace {
char* PutHex(char* out, uintptr_t a) {
  *out++ = '0';
  *out++ = 'x';
  bool started = false;
  for (int shift = 60; shift >= 0; shift -= 4) {
    const unsigned digit = (a >> shift) & 0xf;
    if (digit != 0 || started || shift == 0) {
      *out++ = "0123456789abcdef"[digit];
      started = true;
    }
  }
  return out;
}
char* Put(char* out, const char* s) {
  while (*s != '\0') *out++ = *s++;
  return out;
}
}  // namespace

void ReportCorrupt(const void* slot, uintptr_t decoded) {
  char buf[160];
  char* out = Put(buf, "assay: corrupted free list: the link in free block ");
  out = PutHex(out, reinterpret_cast<uintptr_t>(slot));
  out = Put(out, " decodes to ");
  out = PutHex(out, decoded);
  out = Put(out, " (heap overflow or use after free?)\n");
  os::WriteStderr(buf, static_cast<size_t>(out - buf));
  os::Abort();
}

void ReportDoubleFree(const void* p, size_t size) {
  char buf[160];
  char* out = Put(buf, "assay: double free of ");
  out = PutHex(out, reinterpret_cast<uintptr_t>(p));
  out = Put(out, " (a block of class size ");
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + size % 10);
    size /= 10;
  } while (size != 0);
  while (n > 0) *out++ = digits[--n];
  out = Put(out,
            " B, freed and not allocated since; ASSAY_OPTIONS=double_free=0 skips this check)\n");
  os::WriteStderr(buf, static_cast<size_t>(out - buf));
  os::Abort();
}

}  // namespace assay::internal::link
