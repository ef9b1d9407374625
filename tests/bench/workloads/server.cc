// (a) A multi-threaded server: THREADS workers (default 4) serve "requests".
// Each request allocates a few short-lived temporaries (freed before the
// request ends) and one result block that replaces the block in a random
// slot of a table shared by all threads; the replaced block, which any
// thread may have allocated, is freed. Sizes are mostly small (8-512 B), some
// medium (up to 16 KiB) and a few large (up to 512 KiB); lifetimes are random
// (how long a block survives in the table; 1 in 8 results bypass the table
// and live only for the request).
#include <atomic>
#include <thread>
#include <vector>

#include "common.h"

namespace {

constexpr size_t kSlots = 1 << 16;
std::atomic<void*> g_slots[kSlots];

size_t PickSize(wl::Rng& r) {
  const uint64_t k = r.Below(1000);
  if (k < 900) return r.Range(8, 512);
  if (k < 995) return r.Range(513, 16 << 10);
  return r.Range(16 << 10, 512 << 10);
}

uint64_t Worker(int id, uint64_t requests) {
  wl::Rng r(1000 + id);
  uint64_t check = 0;
  void* temps[8];
  for (uint64_t q = 0; q < requests; ++q) {
    const int ntemp = static_cast<int>(r.Below(5));
    for (int i = 0; i < ntemp; ++i) {
      const size_t n = r.Range(16, 256);
      temps[i] = malloc(n);
      check += wl::Touch(temps[i], n, q);
    }
    const size_t n = PickSize(r);
    void* p = malloc(n);
    check += wl::Touch(p, n, q + id);
    if (r.Chance(1, 8)) {
      free(p);
    } else {
      void* old = g_slots[r.Below(kSlots)].exchange(p, std::memory_order_acq_rel);
      if (old != nullptr) {
        check += *static_cast<unsigned char*>(old);
        free(old);
      }
    }
    for (int i = 0; i < ntemp; ++i) free(temps[i]);
  }
  return check;
}

}  // namespace

int main(int argc, char** argv) {
  const wl::Args a = wl::Parse(argc, argv, 4);
  const uint64_t per_thread = wl::Scaled(a.scale, 6000000) / a.threads;
  wl::Timer t;
  std::vector<std::thread> ts;
  std::vector<uint64_t> checks(a.threads);
  for (int i = 0; i < a.threads; ++i)
    ts.emplace_back([&, i] { checks[i] = Worker(i, per_thread); });
  for (auto& th : ts) th.join();
  uint64_t check = 0;
  for (uint64_t c : checks) check += c;
  for (auto& s : g_slots) free(s.exchange(nullptr));
  wl::Report("server", a, t, check);
}
