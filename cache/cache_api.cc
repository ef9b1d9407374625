// The object caches' C API (<assay/cache.h>): create, the alloc and free
// fast paths (a pop or push on the thread's loaded magazine), destroy and
// reap; and PrintStats. Magazines, depots and slow paths: object_cache.cc.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <initializer_list>
#include <new>

#include "assay/cache.h"
#include "base/base.h"
#include "base/lock.h"
#include "cache/cache_types.h"
#include "cache/object_cache.h"
#include "profiler/profiler.h"

using namespace assay::internal;
using namespace assay::internal::object_cache;

extern "C" {

ASSAY_EXPORT assay_cache_t* assay_cache_create(const char* name, size_t size, size_t align,
                                               int (*ctor)(void*, void*),
                                               void (*dtor)(void*, void*), void* arg,
                                               unsigned flags) {
  if (size == 0 || (align != 0 && !IsPowerOfTwo(align)) || (flags & ~ASSAY_CACHE_GUARD) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  InitOnce();
  char copy[sizeof(assay_cache::name)];
  snprintf(copy, sizeof(copy), "%s", name != nullptr ? name : "unnamed");
  const char* label = assay::profiler::InternCacheName(copy);
  assay_cache* c;
  {
    assay::profiler::ScopedCacheLabel scope(label);
    c = static_cast<assay_cache*>(malloc(sizeof(assay_cache)));
  }
  if (c == nullptr) return nullptr;
  new (c) assay_cache();
  memcpy(c->name, copy, sizeof(copy));
  c->label = label;
  c->size = size < sizeof(void*) ? sizeof(void*) : size;
  c->align = align;
  if (flags & ASSAY_CACHE_GUARD) {
    size_t b = kPageSize;
    while (b < c->size) b <<= 1;
    c->guard_buffer = b;
  }
  c->ctor = ctor;
  c->dtor = dtor;
  c->arg = arg;
  LockGuard lock(g_registry.mu);
  c->slot = kMaxSlots;
  for (uint32_t i = 0; i < kMaxSlots; ++i) {
    if (!g_registry.slot_used[i]) {
      g_registry.slot_used[i] = true;
      c->slot = i;
      break;
    }
  }
  c->next = g_registry.caches;
  g_registry.caches = c;
  return c;
}

ASSAY_EXPORT void* assay_cache_alloc(assay_cache_t* c, unsigned) {
  ThreadMagazines* t = tls_mags;
  if (ASSAY_LIKELY(t != nullptr && c->slot < kMaxSlots)) {
    Magazine* m = t->loaded[c->slot];
    if (ASSAY_LIKELY(m != nullptr && m->rounds > 0)) return m->obj[--m->rounds];
  }
  return AllocSlow(c);
}

ASSAY_EXPORT void assay_cache_free(assay_cache_t* c, void* obj) {
  if (obj == nullptr) return;
  ThreadMagazines* t = tls_mags;
  if (ASSAY_LIKELY(t != nullptr && c->slot < kMaxSlots)) {
    Magazine* m = t->loaded[c->slot];
    if (ASSAY_LIKELY(m != nullptr && m->rounds < kRounds)) {
      m->obj[m->rounds++] = obj;
      return;
    }
  }
  FreeSlow(c, obj);
}

ASSAY_EXPORT void assay_cache_destroy(assay_cache_t* c) {
  if (c == nullptr) return;
  {
    // Take the cache's magazines from every thread (none uses it any more).
    LockGuard lock(g_registry.mu);
    for (assay_cache** link = &g_registry.caches; *link != nullptr; link = &(*link)->next) {
      if (*link == c) {
        *link = c->next;
        break;
      }
    }
    if (c->slot < kMaxSlots) {
      for (ThreadMagazines* t = g_registry.threads; t != nullptr; t = t->next) {
        for (Magazine** slot : {&t->loaded[c->slot], &t->previous[c->slot]}) {
          Magazine* m = *slot;
          if (m == nullptr) continue;
          *slot = nullptr;
          LockGuard depot(c->mu);
          m->next = c->full;
          c->full = m;
        }
      }
      g_registry.slot_used[c->slot] = false;
    }
  }
  ReapDepot(c);
  c->~assay_cache();
  free(c);
}

ASSAY_EXPORT size_t assay_cache_reap(void) {
  if (ThreadMagazines* t = tls_mags; t != nullptr) ReturnMagazines(t);
  size_t n = 0;
  // Caches are only destroyed by their owners, never concurrently with
  // their use: walking the list under the registry lock and reaping outside
  // it would race with a destroy, so reap under it (dtors must not create or
  // destroy caches).
  LockGuard lock(g_registry.mu);
  for (assay_cache* c = g_registry.caches; c != nullptr; c = c->next) n += ReapDepot(c);
  return n;
}

}  // extern "C"

namespace assay::internal::object_cache {

void PrintStats(FILE* f) {
  LockGuard lock(g_registry.mu);
  for (assay_cache* c = g_registry.caches; c != nullptr; c = c->next) {
    uint64_t in_depot = 0;
    uint64_t constructed, ctors, dtors;
    {
      LockGuard depot(c->mu);
      for (Magazine* m = c->full; m != nullptr; m = m->next) in_depot += m->rounds;
      constructed = c->constructed;
      ctors = c->ctor_calls;
      dtors = c->dtor_calls;
    }
    uint64_t in_threads = 0;
    if (c->slot < kMaxSlots) {
      for (ThreadMagazines* t = g_registry.threads; t != nullptr; t = t->next) {
        for (Magazine* m : {t->loaded[c->slot], t->previous[c->slot]}) {
          if (m != nullptr) in_threads += __atomic_load_n(&m->rounds, __ATOMIC_RELAXED);
        }
      }
    }
    const uint64_t free_objs = in_depot + in_threads;
    fprintf(f,
            "  cache %-20s %8zu bytes * %10llu objects (%llu in use, %llu free constructed; "
            "ctor %llu, dtor %llu)%s\n",
            c->name, c->guard_buffer != 0 ? c->guard_buffer : c->size,
            static_cast<unsigned long long>(constructed),
            static_cast<unsigned long long>(constructed > free_objs ? constructed - free_objs : 0),
            static_cast<unsigned long long>(free_objs), static_cast<unsigned long long>(ctors),
            static_cast<unsigned long long>(dtors), c->guard_buffer != 0 ? " guarded" : "");
  }
}

}  // namespace assay::internal::object_cache
