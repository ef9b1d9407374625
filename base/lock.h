// Mutex: a futex lock with a short spin, usable before any constructor runs
// (zero is unlocked, constexpr constructor) and resettable in a fork child.
#pragma once

#include "base/base.h"
#include "base/os.h"

namespace assay::internal {

class Mutex {
 public:
  constexpr Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() {
    uint32_t expected = 0;
    if (ASSAY_LIKELY(__atomic_compare_exchange_n(&state_, &expected, 1, false, __ATOMIC_ACQUIRE,
                                                 __ATOMIC_RELAXED))) {
      return;
    }
    LockSlow();
  }
  bool TryLock() {
    uint32_t expected = 0;
    return __atomic_compare_exchange_n(&state_, &expected, 1, false, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
  }
  void Unlock() {
    if (ASSAY_UNLIKELY(UnlockNeedsWake())) WakeOne();
  }
  // Unlock in two halves, for fast paths that must not make a call that
  // returns (its saved registers would cost every pass a frame): releases
  // the lock and returns true when a waiter is to be woken with WakeOne.
  bool UnlockNeedsWake() { return __atomic_exchange_n(&state_, 0, __ATOMIC_RELEASE) == 2; }
  void WakeOne() { os::FutexWake(&state_, 1); }
  // Only in a fork child, where the thread that held it no longer exists.
  void ResetAfterFork() { __atomic_store_n(&state_, 0, __ATOMIC_RELAXED); }
  // Releases a lock taken before fork: unlocks in the parent, resets in the child.
  void UnlockAfterFork(bool child) {
    if (child) {
      ResetAfterFork();
    } else {
      Unlock();
    }
  }

 private:
  ASSAY_NOINLINE void LockSlow();

  // 0 unlocked, 1 locked, 2 locked with (possible) waiters.
  uint32_t state_ = 0;
};

class LockGuard {
 public:
  explicit LockGuard(Mutex& mu) : mu_(mu) { mu_.Lock(); }
  ~LockGuard() { mu_.Unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  Mutex& mu_;
};

}  // namespace assay::internal
