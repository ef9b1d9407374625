// Fill patterns and redzones: the bytes around a block (kRedzoneByte) and
// the checks that find them changed (an overrun, reported with its offset).
#pragma once

#include <string.h>

#include "debug_heap/debug_internal.h"

namespace assay::internal::debug {

inline void Fill(char* p, size_t n, uint8_t byte) { memset(p, byte, n); }

// Offset of the first byte of [p, p + n) that is not `byte`, or n.
inline size_t FirstNot(const char* p, size_t n, uint8_t byte) {
  const uint64_t word = 0x0101010101010101ull * byte;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w != word) break;
  }
  for (; i < n; ++i) {
    if (static_cast<uint8_t>(p[i]) != byte) return i;
  }
  return n;
}

inline constexpr size_t kTailCheck = 4096;  // redzone bytes checked past a block's end

// Fills b's redzones: the 16 bytes before a mapped block (not one that starts
// at a guard page; a small block's front zone is its header's canary), and
// up to kTailCheck bytes from its end.
void FillRedzones(const Block& b);

// Offset from the user pointer of the first changed redzone byte (negative:
// before the block), or kIntact.
inline constexpr ptrdiff_t kIntact = PTRDIFF_MAX;
ptrdiff_t RedzoneDamage(const Block& b);

// Reports an overrun (and aborts) if b's redzones changed; `when` names the check.
void CheckRedzones(const char* when, const Block& b);

}  // namespace assay::internal::debug
