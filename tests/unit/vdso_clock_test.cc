// base/vdso.h: the vDSO's clock_gettime found from the vDSO's own symbols,
// read between two readings of libc's clock_gettime (which calls the same
// vDSO code), and os::NowNs / NowMs on top of it.
#include <sys/auxv.h>
#include <time.h>

#include <cstdint>

#include "base/os.h"
#include "base/vdso.h"
#include "gtest/gtest.h"

namespace {

using assay::internal::vdso::ClockGettime;
namespace os = assay::internal::os;

int64_t Ns(const timespec& ts) { return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec; }

TEST(VdsoClock, FoundWhereTheProcessHasAVdso) {
  if (getauxval(AT_SYSINFO_EHDR) == 0) {
    EXPECT_EQ(ClockGettime(), nullptr);  // valgrind hides the vDSO: libc's clock is used
  } else {
    EXPECT_NE(ClockGettime(), nullptr);
  }
  EXPECT_EQ(ClockGettime(), ClockGettime());  // looked up once
}

TEST(VdsoClock, ReadsTheClocksLibcReads) {
  const auto f = ClockGettime();
  if (f == nullptr) GTEST_SKIP() << "no vDSO in this process";
  for (const clockid_t id : {CLOCK_MONOTONIC, CLOCK_REALTIME}) {
    for (int i = 0; i < 100; ++i) {
      timespec a, b, c;
      ASSERT_EQ(clock_gettime(id, &a), 0);
      ASSERT_EQ(f(id, &b), 0);
      ASSERT_EQ(clock_gettime(id, &c), 0);
      if (id == CLOCK_MONOTONIC) {
        EXPECT_LE(Ns(a), Ns(b));
        EXPECT_LE(Ns(b), Ns(c));
      }
      // (The wall clock may be stepped meanwhile: only near each other.)
      EXPECT_LT(Ns(b) - Ns(a), int64_t{1000000000}) << "clock " << id;
      EXPECT_GT(Ns(b) - Ns(a), -int64_t{1000000000}) << "clock " << id;
    }
  }
  // The coarse clock ticks at most a jiffy (<= 10 ms at HZ=100) behind.
  timespec fine, coarse;
  ASSERT_EQ(clock_gettime(CLOCK_MONOTONIC, &fine), 0);
  ASSERT_EQ(f(CLOCK_MONOTONIC_COARSE, &coarse), 0);
  EXPECT_LE(Ns(coarse), Ns(fine));
  EXPECT_LT(Ns(fine) - Ns(coarse), int64_t{20000000});
}

TEST(VdsoClock, OsClocksAreMonotonicAndAgreeWithLibc) {
  timespec a, c;
  ASSERT_EQ(clock_gettime(CLOCK_MONOTONIC, &a), 0);
  const uint64_t ns = os::NowNs();
  const uint64_t ms = os::NowMs();
  ASSERT_EQ(clock_gettime(CLOCK_MONOTONIC, &c), 0);
  EXPECT_GE(ns, static_cast<uint64_t>(Ns(a)));
  EXPECT_LE(ns, static_cast<uint64_t>(Ns(c)));
  EXPECT_LE(ms, static_cast<uint64_t>(Ns(c)) / 1000000);
  EXPECT_GE(ms + 20, static_cast<uint64_t>(Ns(a)) / 1000000);
  uint64_t last = os::NowNs();
  for (int i = 0; i < 1000; ++i) {
    const uint64_t now = os::NowNs();
    EXPECT_GE(now, last);
    last = now;
  }
}

}  // namespace
