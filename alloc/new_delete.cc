// Every replaceable C++ operator new/delete form, as shims over the fast
// paths. A failed new calls the new_handler and retries, then throws
// std::bad_alloc (nothrow forms return nullptr).
#include <new>

#include "alloc/cxx_runtime.h"
#include "alloc/heap.h"
#include "alloc/thread_cache.h"

using namespace assay::internal;

// Marks the start of this file's code (see base/entry_points.h).
extern "C" ASSAY_NOINLINE __attribute__((used)) void assay_internal_new_begin() {
  asm volatile("");
}

// ASSAY_PREFIX (the TSan build, tests/sanitize/): operator new and delete
// stay the C++ runtime's, on the sanitizer's malloc; only the markers remain.
#ifndef ASSAY_PREFIX

namespace {

ASSAY_NOINLINE void* NewFailed(size_t n, size_t align, bool nothrow) {
  for (;;) {
    void* p = align == 0 ? Malloc(n) : heap::AlignedAlloc(align, n);
    if (p != nullptr) return p;
    std::new_handler handler = cxx::GetNewHandler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      cxx::ThrowBadAlloc();
    }
    if (nothrow) {
      try {
        handler();
      } catch (...) {
        cxx::BalanceCatch();
        return nullptr;
      }
    } else {
      handler();
    }
  }
}

ASSAY_INLINE void* New(size_t n) {
  void* p = Malloc(n);
  return ASSAY_LIKELY(p != nullptr) ? p : NewFailed(n, 0, false);
}

ASSAY_INLINE void* NewNothrow(size_t n) noexcept {
  void* p = Malloc(n);
  return ASSAY_LIKELY(p != nullptr) ? p : NewFailed(n, 0, true);
}

ASSAY_INLINE void* NewAligned(size_t n, std::align_val_t al) {
  void* p = heap::AlignedAlloc(static_cast<size_t>(al), n);
  return ASSAY_LIKELY(p != nullptr) ? p : NewFailed(n, static_cast<size_t>(al), false);
}

ASSAY_INLINE void* NewAlignedNothrow(size_t n, std::align_val_t al) noexcept {
  void* p = heap::AlignedAlloc(static_cast<size_t>(al), n);
  return ASSAY_LIKELY(p != nullptr) ? p : NewFailed(n, static_cast<size_t>(al), true);
}

}  // namespace

ASSAY_EXPORT void* operator new(size_t n) { return New(n); }
ASSAY_EXPORT void* operator new[](size_t n) { return New(n); }
ASSAY_EXPORT void* operator new(size_t n, const std::nothrow_t&) noexcept { return NewNothrow(n); }
ASSAY_EXPORT void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  return NewNothrow(n);
}
ASSAY_EXPORT void* operator new(size_t n, std::align_val_t al) { return NewAligned(n, al); }
ASSAY_EXPORT void* operator new[](size_t n, std::align_val_t al) { return NewAligned(n, al); }
ASSAY_EXPORT void* operator new(size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  return NewAlignedNothrow(n, al);
}
ASSAY_EXPORT void* operator new[](size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  return NewAlignedNothrow(n, al);
}

ASSAY_EXPORT void operator delete(void* p) noexcept { Free(p); }
ASSAY_EXPORT void operator delete[](void* p) noexcept { Free(p); }
ASSAY_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { Free(p); }
ASSAY_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { Free(p); }
ASSAY_EXPORT void operator delete(void* p, size_t) noexcept { Free(p); }
ASSAY_EXPORT void operator delete[](void* p, size_t) noexcept { Free(p); }
ASSAY_EXPORT void operator delete(void* p, std::align_val_t) noexcept { Free(p); }
ASSAY_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { Free(p); }
ASSAY_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  Free(p);
}
ASSAY_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  Free(p);
}
ASSAY_EXPORT void operator delete(void* p, size_t, std::align_val_t) noexcept { Free(p); }
ASSAY_EXPORT void operator delete[](void* p, size_t, std::align_val_t) noexcept { Free(p); }

#endif  // ASSAY_PREFIX

// Marks the end of this file's code (see base/entry_points.h).
extern "C" ASSAY_NOINLINE __attribute__((used)) void assay_internal_new_end() { asm volatile(""); }
