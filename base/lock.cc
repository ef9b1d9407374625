// The contended path of Mutex (lock.h): spin briefly, then sleep on the futex.
#include "base/lock.h"

#include "base/probes.h"

namespace assay::internal {

void Mutex::LockSlow() {
  const uint64_t start = os::NowNs();
  for (int spin = 0; spin < 100; ++spin) {
    if (__atomic_load_n(&state_, __ATOMIC_RELAXED) == 0 && TryLock()) {
      ASSAY_PROBE2(lock_wait, this, os::NowNs() - start);
      return;
    }
    CpuRelax();
  }
  while (__atomic_exchange_n(&state_, 2, __ATOMIC_ACQUIRE) != 0) {
    os::FutexWait(&state_, 2, -1);
  }
  ASSAY_PROBE2(lock_wait, this, os::NowNs() - start);
}

}  // namespace assay::internal
