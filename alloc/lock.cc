// The contended path of Mutex (lock.h): spin briefly, then sleep on the futex.
#include "alloc/lock.h"

namespace assay::internal {

void Mutex::LockSlow() {
  for (int spin = 0; spin < 100; ++spin) {
    if (__atomic_load_n(&state_, __ATOMIC_RELAXED) == 0 && TryLock()) return;
    CpuRelax();
  }
  while (__atomic_exchange_n(&state_, 2, __ATOMIC_ACQUIRE) != 0) {
    os::FutexWait(&state_, 2, -1);
  }
}

}  // namespace assay::internal
