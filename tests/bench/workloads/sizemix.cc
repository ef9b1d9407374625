// (h) Many size classes live across threads: THREADS workers (default 4)
// each keep 512 blocks live, of sizes log-uniform in 16 B - 256 KiB (every
// small and medium class, a few slice runs), and replace a random one per
// step; the memory is used (a byte per 4 KiB page written), and 1 in 8
// blocks is handed to the next worker through a lock-free ring, which frees
// it (or its maker does, when the ring is full). The check sums bytes read
// back at every free: it does not depend on which thread freed a block.
#include <atomic>
#include <thread>
#include <vector>

#include "common.h"

namespace {

constexpr size_t kLive = 512;
constexpr size_t kRing = 1024;  // a power of two

// Single producer (the previous worker), single consumer (the owner).
struct Inbox {
  alignas(64) std::atomic<uint64_t> head{0};  // next to read (consumer)
  alignas(64) std::atomic<uint64_t> tail{0};  // next to write (producer)
  void* slots[kRing];

  bool Push(void* p) {
    const uint64_t t = tail.load(std::memory_order_relaxed);
    if (t - head.load(std::memory_order_acquire) == kRing) return false;
    slots[t % kRing] = p;
    tail.store(t + 1, std::memory_order_release);
    return true;
  }
  void* Pop() {
    const uint64_t h = head.load(std::memory_order_relaxed);
    if (h == tail.load(std::memory_order_acquire)) return nullptr;
    void* p = slots[h % kRing];
    head.store(h + 1, std::memory_order_release);
    return p;
  }
};

// Writes the block's first and last bytes and one per 4 KiB page.
uint64_t Use(void* p, size_t n, uint64_t v) {
  auto* c = static_cast<unsigned char*>(p);
  for (size_t off = 4096; off < n; off += 4096) c[off] = static_cast<unsigned char>(v);
  return wl::Touch(p, n, v);
}

uint64_t Release(void* p) {
  const uint64_t b = *static_cast<unsigned char*>(p);
  free(p);
  return b;
}

uint64_t Worker(int id, uint64_t steps, Inbox* mine, Inbox* next) {
  wl::Rng r(77 + id);
  uint64_t check = 0;
  std::vector<void*> live(kLive, nullptr);
  for (uint64_t s = 0; s < steps; ++s) {
    const size_t i = r.Below(kLive);
    if (live[i] != nullptr) {
      if (r.Chance(1, 8) && next->Push(live[i])) {
        live[i] = nullptr;
      } else {
        check += Release(live[i]);
      }
    }
    const size_t n = r.LogRange(16, 256 << 10);
    live[i] = malloc(n);
    check += Use(live[i], n, s + id);
    if (s % 16 == 0) {
      while (void* p = mine->Pop()) check += Release(p);
    }
  }
  for (void* p : live) {
    if (p != nullptr) check += Release(p);
  }
  return check;
}

}  // namespace

int main(int argc, char** argv) {
  const wl::Args a = wl::Parse(argc, argv, 4);
  const uint64_t per_thread = wl::Scaled(a.scale, 1000000) / a.threads;
  std::vector<Inbox> inboxes(a.threads);
  std::vector<uint64_t> checks(a.threads);
  std::atomic<int> running{a.threads};
  wl::Timer t;
  std::vector<std::thread> ts;
  for (int i = 0; i < a.threads; ++i) {
    ts.emplace_back([&, i] {
      checks[i] = Worker(i, per_thread, &inboxes[i], &inboxes[(i + 1) % a.threads]);
      // Blocks keep arriving until every worker is done: drain until then.
      running.fetch_sub(1);
      while (running.load() != 0) {
        while (void* p = inboxes[i].Pop()) checks[i] += Release(p);
        std::this_thread::yield();
      }
    });
  }
  for (auto& th : ts) th.join();
  uint64_t check = 0;
  for (uint64_t c : checks) check += c;
  for (Inbox& in : inboxes) {
    while (void* p = in.Pop()) check += Release(p);
  }
  wl::Report("sizemix", a, t, check);
}
