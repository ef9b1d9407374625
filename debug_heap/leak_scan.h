// The leak scan's marking (debug_leaks.cc runs it): the live blocks sorted
// by address, a conservative mark from the roots (any word reaching inside
// a block, interior pointers included), and valgrind's split of what stays
// unreached into direct and indirect leaks. Its arrays are mapped, never
// malloc'd: the scan runs with the other threads stopped.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"
#include "base/os.h"
#include "debug_heap/debug.h"

namespace assay::internal::debug::leak {

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
ptrdiff_t BlockAt(const Scan& s, uintptr_t a);
// Marks block i reached and queues it for scanning.
void Reach(Scan& s, size_t i);
// Reaches the block holding v, if any.
void MarkWord(Scan& s, uintptr_t v);
// Scans [lo, hi) minus the excluded ranges.
void ScanRoot(Scan& s, uintptr_t lo, uintptr_t hi);
// Scans [lo, hi) but the allocator's segments.
void ScanOutsideSegments(Scan& s, uintptr_t lo, uintptr_t hi);
// Scans the queued blocks until none is left.
void Drain(Scan& s);
// Splits the unreached blocks into direct and indirect leaks (valgrind's
// cliques; see leak_scan.cc).
void SplitDirectIndirect(Scan& s);

}  // namespace assay::internal::debug::leak
