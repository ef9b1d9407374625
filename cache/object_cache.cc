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
#include "cache/object_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

#include "alloc/thread_cache.h"
#include "assay/cache.h"
#include "base/base.h"
#include "base/lock.h"
#include "base/os.h"
#include "profiler/profiler.h"

namespace assay::internal::object_cache {
namespace {

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

}  // namespace
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
namespace {

struct Registry {
  Mutex mu;
  assay_cache* caches = nullptr;
  bool slot_used[kMaxSlots] = {};
  ThreadMagazines* threads = nullptr;
};
constinit Registry g;
pthread_key_t g_key;
pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
ASSAY_TLS ThreadMagazines* tls_mags = nullptr;

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

// Gives a thread's magazines of every cache back to the depots.
void ReturnMagazines(ThreadMagazines* t) {
  LockGuard lock(g.mu);
  for (assay_cache* c = g.caches; c != nullptr; c = c->next) {
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

void OnThreadExit(void* arg) {
  auto* t = static_cast<ThreadMagazines*>(arg);
  tls_mags = nullptr;
  ReturnMagazines(t);
  {
    LockGuard lock(g.mu);
    if (t->prev != nullptr)
      t->prev->next = t->next;
    else
      g.threads = t->next;
    if (t->next != nullptr) t->next->prev = t->prev;
  }
  free(t);
}

// Fork: the registry and every depot lock are taken, so the child never
// inherits one held by a thread that does not exist there.
void ForkPrepare() {
  g.mu.Lock();
  for (assay_cache* c = g.caches; c != nullptr; c = c->next) c->mu.Lock();
}
void ForkParent() {
  for (assay_cache* c = g.caches; c != nullptr; c = c->next) c->mu.Unlock();
  g.mu.Unlock();
}
void ForkChild() {
  for (assay_cache* c = g.caches; c != nullptr; c = c->next) c->mu.ResetAfterFork();
  g.mu.ResetAfterFork();
}

void InitOnce() {
  pthread_once(&g_key_once, [] {
    pthread_key_create(&g_key, OnThreadExit);
    os::AtFork(ForkPrepare, ForkParent, ForkChild);
  });
}

ThreadMagazines* Mine() {
  if (tls_mags != nullptr) return tls_mags;
  InitOnce();
  auto* t = static_cast<ThreadMagazines*>(calloc(1, sizeof(ThreadMagazines)));
  if (t == nullptr) return nullptr;
  {
    LockGuard lock(g.mu);
    t->next = g.threads;
    if (g.threads != nullptr) g.threads->prev = t;
    g.threads = t;
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

// Destroys the objects of every full magazine in c's depot; frees its
// empty magazines. Returns objects destroyed.
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
  LockGuard lock(g.mu);
  c->slot = kMaxSlots;
  for (uint32_t i = 0; i < kMaxSlots; ++i) {
    if (!g.slot_used[i]) {
      g.slot_used[i] = true;
      c->slot = i;
      break;
    }
  }
  c->next = g.caches;
  g.caches = c;
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
    LockGuard lock(g.mu);
    for (assay_cache** link = &g.caches; *link != nullptr; link = &(*link)->next) {
      if (*link == c) {
        *link = c->next;
        break;
      }
    }
    if (c->slot < kMaxSlots) {
      for (ThreadMagazines* t = g.threads; t != nullptr; t = t->next) {
        for (Magazine** slot : {&t->loaded[c->slot], &t->previous[c->slot]}) {
          Magazine* m = *slot;
          if (m == nullptr) continue;
          *slot = nullptr;
          LockGuard depot(c->mu);
          m->next = c->full;
          c->full = m;
        }
      }
      g.slot_used[c->slot] = false;
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
  LockGuard lock(g.mu);
  for (assay_cache* c = g.caches; c != nullptr; c = c->next) n += ReapDepot(c);
  return n;
}

}  // extern "C"

namespace assay::internal::object_cache {

void PrintStats(FILE* f) {
  LockGuard lock(g.mu);
  for (assay_cache* c = g.caches; c != nullptr; c = c->next) {
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
      for (ThreadMagazines* t = g.threads; t != nullptr; t = t->next) {
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
