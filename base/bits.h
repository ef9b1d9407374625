// Bit counting without libgcc: x86-64's baseline has no popcnt instruction,
// so std::popcount compiles to a call of libgcc's __popcountdi2, which the
// linker puts at the very end of libassay.so's text; its first call, in the
// first span a process carves, faulted in the last 64 KiB of the text.
#pragma once

#include <cstdint>

namespace assay::internal {

// Number of set bits of x (the classic SWAR sum: pairs, nibbles, bytes).
inline int Popcount(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<int>((x * 0x0101010101010101ull) >> 56);
}

}  // namespace assay::internal
