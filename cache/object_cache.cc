// Object caches (<assay/cache.h>), after libumem's magazine design.
//
// Each thread keeps, per cache, a loaded magazine and a previous one
// (arrays of up to kRounds constructed objects): alloc pops from loaded,
// free pushes onto it; when loaded is empty (or full) it swaps with
// previous; only when both are exhausted does the thread trade a whole
// magazine with the cache's depot, under the cache's lock. Objects are
// constructed when the depot has none to give, and destroyed only by reap or
// destroy. A thread's magazines go back to the depot when it exits.
//
// Heap profiles: the cache's own memory (its objects, its magazines, the
// cache itself) is malloc'ed with the profiler's thread-local cache label set
// to the cache's interned name, so sampled blocks carry the pprof label
// cache=NAME. Guarded objects are mapped directly, never sampled.
//
// This file: object memory, magazines, the thread registry, fork, the slow
// paths and reaping; the C API and its fast paths: cache_api.cc.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/thread_cache.h"
#include "base/base.h"
#include "base/lock.h"
#include "base/os.h"
#include "cache/cache_types.h"
#include "profiler/profiler.h"

namespace assay::internal::object_cache {

constinit Registry g_registry;
ASSAY_TLS ThreadMagazines* tls_mags = nullptr;

namespace {

pthread_key_t g_key;
pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

// ---- Object memory ----

void* NewMemory(assay_cache* c) {
  if (c->guard_buffer == 0) {
    assay::profiler::ScopedCacheLabel label(c->label);
    void* p = nullptr;
    if (c->align <= kMinAlign) return malloc(c->size);
    return posix_memalign(&p, c->align, c->size) == 0 ? p : nullptr;
  }
  // [guard page][buffer][guard page], the buffer pre-faulted.
  char* m = static_cast<char*>(os::MapAligned(c->guard_buffer + 2 * kPageSize, kPageSize));
  if (m == nullptr) return nullptr;
  if (!os::ProtectNone(m, kPageSize) ||
      !os::ProtectNone(m + kPageSize + c->guard_buffer, kPageSize)) {
    os::Unmap(m, c->guard_buffer + 2 * kPageSize);
    return nullptr;
  }
  memset(m + kPageSize, 0, c->guard_buffer);
  return m + kPageSize;
}

void FreeMemory(assay_cache* c, void* p) {
  if (c->guard_buffer == 0) {
    free(p);
  } else {
    os::Unmap(static_cast<char*>(p) - kPageSize, c->guard_buffer + 2 * kPageSize);
  }
}

// Destroys n objects (dtor, then memory). Call without c->mu held.
void DestroyObjects(assay_cache* c, void* const* objs, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    if (c->dtor != nullptr) c->dtor(objs[i], c->arg);
    FreeMemory(c, objs[i]);
  }
  LockGuard lock(c->mu);
  c->constructed -= n;
  c->dtor_calls += c->dtor != nullptr ? n : 0;
}

void* Construct(assay_cache* c) {
  void* p = NewMemory(c);
  if (p == nullptr) return nullptr;
  if (c->ctor != nullptr && c->ctor(p, c->arg) != 0) {
    FreeMemory(c, p);
    return nullptr;
  }
  LockGuard lock(c->mu);
  c->constructed++;
  c->ctor_calls += c->ctor != nullptr;
  return p;
}

Magazine* NewMagazine(assay_cache* c) {
  Magazine* m;
  {
    assay::profiler::ScopedCacheLabel label(c->label);
    m = static_cast<Magazine*>(malloc(sizeof(Magazine)));
  }
  if (m != nullptr) {
    m->next = nullptr;
    m->rounds = 0;
  }
  return m;
}

}  // namespace

void ReturnMagazines(ThreadMagazines* t) {
  LockGuard lock(g_registry.mu);
  for (assay_cache* c = g_registry.caches; c != nullptr; c = c->next) {
    if (c->slot >= kMaxSlots) continue;
    for (Magazine** slot : {&t->loaded[c->slot], &t->previous[c->slot]}) {
      Magazine* m = *slot;
      if (m == nullptr) continue;
      *slot = nullptr;
      LockGuard depot(c->mu);
      Magazine*& list = m->rounds > 0 ? c->full : c->empty;
      m->next = list;
      list = m;
    }
  }
}

namespace {

void OnThreadExit(void* arg) {
  auto* t = static_cast<ThreadMagazines*>(arg);
  tls_mags = nullptr;
  ReturnMagazines(t);
  {
    LockGuard lock(g_registry.mu);
    if (t->prev != nullptr)
      t->prev->next = t->next;
    else
      g_registry.threads = t->next;
    if (t->next != nullptr) t->next->prev = t->prev;
  }
  free(t);
}

// Fork: the registry and every depot lock are taken, so the child never
// inherits one held by a thread that does not exist there.
void ForkPrepare() {
  g_registry.mu.Lock();
  for (assay_cache* c = g_registry.caches; c != nullptr; c = c->next) c->mu.Lock();
}
void ForkParent() {
  for (assay_cache* c = g_registry.caches; c != nullptr; c = c->next) c->mu.Unlock();
  g_registry.mu.Unlock();
}
void ForkChild() {
  for (assay_cache* c = g_registry.caches; c != nullptr; c = c->next) c->mu.ResetAfterFork();
  g_registry.mu.ResetAfterFork();
}

}  // namespace

void InitOnce() {
  pthread_once(&g_key_once, [] {
    pthread_key_create(&g_key, OnThreadExit);
    os::AtFork(ForkPrepare, ForkParent, ForkChild);
  });
}

namespace {

ThreadMagazines* Mine() {
  if (tls_mags != nullptr) return tls_mags;
  InitOnce();
  auto* t = static_cast<ThreadMagazines*>(calloc(1, sizeof(ThreadMagazines)));
  if (t == nullptr) return nullptr;
  {
    LockGuard lock(g_registry.mu);
    t->next = g_registry.threads;
    if (g_registry.threads != nullptr) g_registry.threads->prev = t;
    g_registry.threads = t;
  }
  tls_mags = t;
  pthread_setspecific(g_key, t);
  return t;
}

}  // namespace

ASSAY_NOINLINE void* AllocSlow(assay_cache* c) {
  ThreadMagazines* t = c->slot < kMaxSlots ? Mine() : nullptr;
  if (t != nullptr) {
    Magazine*& loaded = t->loaded[c->slot];
    Magazine*& previous = t->previous[c->slot];
    if (previous != nullptr && previous->rounds > 0) {
      Magazine* m = previous;
      previous = loaded;
      loaded = m;
      return loaded->obj[--loaded->rounds];
    }
    // Trade an empty magazine for a full one from the depot.
    Magazine* full = nullptr;
    {
      LockGuard lock(c->mu);
      if (c->full != nullptr) {
        full = c->full;
        c->full = full->next;
        if (previous != nullptr) {  // the empty previous goes to the depot
          previous->next = c->empty;
          c->empty = previous;
        }
        previous = loaded;
        loaded = full;
      }
    }
    if (full != nullptr) return loaded->obj[--loaded->rounds];
  } else {
    LockGuard lock(c->mu);  // depot only: take one object from a full magazine
    if (c->full != nullptr) {
      Magazine* m = c->full;
      void* p = m->obj[--m->rounds];
      if (m->rounds == 0) {
        c->full = m->next;
        m->next = c->empty;
        c->empty = m;
      }
      return p;
    }
  }
  return Construct(c);
}

ASSAY_NOINLINE void FreeSlow(assay_cache* c, void* obj) {
  ThreadMagazines* t = c->slot < kMaxSlots ? Mine() : nullptr;
  if (t != nullptr) {
    Magazine*& loaded = t->loaded[c->slot];
    Magazine*& previous = t->previous[c->slot];
    if (previous != nullptr && previous->rounds < kRounds) {
      Magazine* m = previous;
      previous = loaded;
      loaded = m;
      loaded->obj[loaded->rounds++] = obj;
      return;
    }
    // Trade the full previous for an empty magazine.
    Magazine* empty = nullptr;
    {
      LockGuard lock(c->mu);
      empty = c->empty;
      if (empty != nullptr) c->empty = empty->next;
    }
    if (empty == nullptr) empty = NewMagazine(c);
    if (empty != nullptr) {
      LockGuard lock(c->mu);
      if (previous != nullptr) {
        previous->next = c->full;
        c->full = previous;
      }
      previous = loaded;
      loaded = empty;
      loaded->obj[loaded->rounds++] = obj;
      return;
    }
  } else {
    LockGuard lock(c->mu);
    if (c->empty != nullptr || c->full != nullptr) {
      Magazine* m = c->full != nullptr && c->full->rounds < kRounds ? c->full : c->empty;
      if (m != nullptr) {
        if (m == c->empty) {
          c->empty = m->next;
          m->next = c->full;
          c->full = m;
        }
        m->obj[m->rounds++] = obj;
        return;
      }
    }
  }
  if (Magazine* m = NewMagazine(c); m != nullptr) {  // depot only, or no magazine to trade
    m->obj[m->rounds++] = obj;
    LockGuard lock(c->mu);
    m->next = c->full;
    c->full = m;
    return;
  }
  DestroyObjects(c, &obj, 1);  // no memory even for a magazine: let the object go
}

size_t ReapDepot(assay_cache* c) {
  Magazine* full;
  Magazine* empty;
  {
    LockGuard lock(c->mu);
    full = c->full;
    empty = c->empty;
    c->full = c->empty = nullptr;
  }
  size_t n = 0;
  for (Magazine* m = full; m != nullptr;) {
    Magazine* next = m->next;
    DestroyObjects(c, m->obj, m->rounds);
    n += m->rounds;
    free(m);
    m = next;
  }
  for (Magazine* m = empty; m != nullptr;) {
    Magazine* next = m->next;
    free(m);
    m = next;
  }
  return n;
}

}  // namespace assay::internal::object_cache
