// Free-list links: how a free block names the next one in its first word,
// and the check of a link read back. Every list of free blocks (thread
// caches off their fast paths, central transfer batches, span free lists,
// the debug heap's magazines) stores and loads its links here.
//
// Plain by default: the link is the next block's address, and the fast
// paths of thread_cache.h push and pop with plain loads and stores, with no
// test of any switch. With ASSAY_OPTIONS=harden=1 links are safe-linked
// (glibc 2.32's tcache, plus a per-process key as mimalloc's secure mode):
//   stored = next ^ (slot >> 12) ^ key
// where slot is the block holding the link. A heap overflow that rewrites a
// link without knowing the key (64 random bits) and the slot's address
// decodes to a wild value, which Load rejects (not 8-aligned, or not inside
// a segment) with one line on stderr and abort, instead of handing it out.
// The fast paths never see a hardened list: with harden=1 a thread's
// tls_cache stays g_empty_cache (every malloc and free takes its slow path,
// as the debug heap's blocks do) and its real cache is reached through
// thread_cache::Current() only. See SECURITY.md for the costs.
#pragma once

#include "alloc/segment.h"

namespace assay::internal::link {

inline constexpr unsigned kShift = 12;  // page bits: the slot's ASLR-random bits move down

// 0: links are plain pointers. Else the process's key; set once, by
// Enable(), before the first block is linked, and never changed.
extern uint64_t g_key;

// Turns safe-linking on (init/init.cc, from ASSAY_OPTIONS, before any block
// is handed out).
void Enable();

[[noreturn]] void ReportCorrupt(const void* slot, uintptr_t decoded);
// "assay: double free of 0x... (...)", then abort.
[[noreturn]] void ReportDoubleFree(const void* p, size_t size);

ASSAY_INLINE uintptr_t Mask(const void* slot) {
  return (reinterpret_cast<uintptr_t>(slot) >> kShift) ^ g_key;
}

// True when links are plain pointers (harden off). Loops over many links
// test it once and then link with plain loads and stores: a test per link
// cost the allocation-heavy workloads 1.6% of their instructions.
ASSAY_INLINE bool Plain() { return ASSAY_LIKELY(g_key == 0); }

// Writes "next" into the first word of block `slot`.
ASSAY_INLINE void Store(void* slot, void* next) {
  uintptr_t v = reinterpret_cast<uintptr_t>(next);
  if (ASSAY_UNLIKELY(g_key != 0)) v ^= Mask(slot);
  *static_cast<uintptr_t*>(slot) = v;
}

// The next block after `slot`, checked when hardened: a block is at least
// 8-aligned and lies in a segment (small blocks, the only ones on lists).
ASSAY_INLINE void* Load(const void* slot) {
  uintptr_t v = *static_cast<const uintptr_t*>(slot);
  if (ASSAY_UNLIKELY(g_key != 0)) {
    v ^= Mask(slot);
    if (v != 0 && ASSAY_UNLIKELY((v & 7) != 0 || !segment_map::Contains(v))) ReportCorrupt(slot, v);
  }
  return reinterpret_cast<void*>(v);
}

}  // namespace assay::internal::link
