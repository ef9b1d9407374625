// What the object caches' files share: object_cache.cc (memory, magazines,
// the thread registry, the slow paths) and cache_api.cc (<assay/cache.h>:
// the C API, its fast paths, and PrintStats).
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/base.h"
#include "base/lock.h"

namespace assay::internal::object_cache {

constexpr uint32_t kRounds = 32;     // objects per magazine
constexpr uint32_t kMaxSlots = 256;  // caches with per-thread magazines; others use the depot

struct Magazine {
  Magazine* next;
  uint32_t rounds;
  void* obj[kRounds];
};

// Per thread: the magazines of each cache slot. Allocated on first use.
struct ThreadMagazines {
  Magazine* loaded[kMaxSlots];
  Magazine* previous[kMaxSlots];
  ThreadMagazines* next;  // registry of threads, for destroy and stats
  ThreadMagazines* prev;
};

}  // namespace assay::internal::object_cache

struct assay_cache {
  char name[64];
  const char* label;  // interned copy of name (never freed), for profile labels; may be null
  size_t size;
  size_t align;
  size_t guard_buffer;  // ASSAY_CACHE_GUARD: the power-of-two buffer size, else 0
  int (*ctor)(void*, void*);
  void (*dtor)(void*, void*);
  void* arg;
  uint32_t slot;  // < kMaxSlots: per-thread magazines; kMaxSlots: depot only
  assay::internal::Mutex mu;
  assay::internal::object_cache::Magazine* full = nullptr;   // depot, guarded by mu
  assay::internal::object_cache::Magazine* empty = nullptr;  // depot, guarded by mu
  uint64_t constructed = 0;                                  // objects in existence (guarded by mu)
  uint64_t ctor_calls = 0;
  uint64_t dtor_calls = 0;
  assay_cache* next = nullptr;  // registry
};

namespace assay::internal::object_cache {

// The caches and the threads with magazines (guarded by mu).
struct Registry {
  Mutex mu;
  assay_cache* caches = nullptr;
  bool slot_used[kMaxSlots] = {};
  ThreadMagazines* threads = nullptr;
};
extern Registry g_registry;
// The calling thread's magazines, or null until its first slow path.
extern ASSAY_TLS ThreadMagazines* tls_mags;

// Registers the thread-exit key and the fork handlers, once.
void InitOnce();
// Gives a thread's magazines of every cache back to the depots.
void ReturnMagazines(ThreadMagazines* t);
// The paths behind assay_cache_alloc and assay_cache_free when the thread's
// loaded magazine is empty (or full), or the cache has no per-thread slot.
void* AllocSlow(assay_cache* c);
void FreeSlow(assay_cache* c, void* obj);
// Destroys the objects of every full magazine in c's depot; frees its
// empty magazines. Returns objects destroyed.
size_t ReapDepot(assay_cache* c);

}  // namespace assay::internal::object_cache
