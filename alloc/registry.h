// A registry of per-thread structs (thread caches, slice-run caches): the
// live ones doubly linked through their next/prev, those of exited threads
// on a spare list (linked by next) for the next thread to reuse, since
// metadata pages are never given back.
#pragma once

#include "base/base.h"
#include "base/lock.h"
#include "base/meta.h"

namespace assay::internal {

// Invariant, under mu: count == the length of the live list; a struct is on
// exactly one of the two lists once Link has put it on the live one.
template <class T>
struct Registry {
  Mutex mu;
  T* live = nullptr;
  T* spare = nullptr;
  size_t count = 0;  // written under mu; Count() reads it without the lock

  // A spare struct (its old contents left for the caller to keep what it
  // wants), else a fresh one from the metadata pages; nullptr if those are
  // exhausted. Takes mu.
  T* TakeSpareOrAlloc() {
    {
      LockGuard lock(mu);
      if (T* t = spare) {
        spare = t->next;
        return t;
      }
    }
    return static_cast<T*>(meta::Alloc(sizeof(T)));
  }

  // Puts t at the head of the live list. Takes mu.
  void Link(T* t) {
    LockGuard lock(mu);
    t->prev = nullptr;
    t->next = live;
    if (live != nullptr) live->prev = t;
    live = t;
    __atomic_store_n(&count, count + 1, __ATOMIC_RELAXED);
  }

  // Moves t from the live list to the spare list. The caller holds mu.
  void UnlinkLocked(T* t) {
    if (t->prev != nullptr) {
      t->prev->next = t->next;
    } else {
      live = t->next;
    }
    if (t->next != nullptr) t->next->prev = t->prev;
    t->prev = nullptr;
    t->next = spare;
    spare = t;
    __atomic_store_n(&count, count - 1, __ATOMIC_RELAXED);
  }

  size_t Count() const { return __atomic_load_n(&count, __ATOMIC_RELAXED); }
};

}  // namespace assay::internal
