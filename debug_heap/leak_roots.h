// Where the leak scan finds its roots besides the threads: the writable
// segments of every loaded object (and ld.so's text, to tell the blocks the
// dynamic linker allocated), and the read-write mappings of
// /proc/self/maps, with the mark of a thread stack (its TCB).
#pragma once

#include <stdint.h>

#include "debug_heap/leak_scan.h"

struct dl_phdr_info;

namespace assay::internal::debug::leak {

// A read-write mapping of /proc/self/maps.
struct Mapping {
  uintptr_t lo, hi;
  uint8_t kind;  // kAnon, kHeap, kMainStack, kFile
};
enum : uint8_t { kAnon, kHeap, kMainStack, kFile };

// Writable PT_LOAD segments of every loaded object (data, bss), and the text
// of the dynamic linker (to tell its allocations).
struct Objects {
  RawArray<Range> data;
  Range ldso_text{0, 0};
};
// dl_iterate_phdr's callback filling an Objects (arg).
int OnObject(dl_phdr_info* info, size_t size, void* arg);

// The read-write mappings of /proc/self/maps, in address order. `maps` is
// reserved (and excluded from the roots) by the caller; a failure sets
// s.out_of_memory.
void ReadMappings(Scan& s, RawArray<Mapping>& maps);
// The mapping holding a, or nullptr.
const Mapping* MappingOf(const RawArray<Mapping>& maps, uintptr_t a);
// The thread pointer whose glibc TCB sits in the top 32 KiB of m, or 0.
uintptr_t TcbIn(const Mapping& m);

}  // namespace assay::internal::debug::leak
