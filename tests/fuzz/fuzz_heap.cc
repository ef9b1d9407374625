// fuzz_heap: libFuzzer drives the allocator with an operation sequence
// decoded from its input and checks every result against a shadow model
// (contents, alignment, usable size, errno on failure), then the heap's
// invariants (assay_check_heap of the checked build) at the end of each input.
//
// assay is linked whole-archive and without ASan, so it serves every
// allocation of the process, libFuzzer's own included (tests/fuzz/README.md).
#include <errno.h>
#include <fuzzer/FuzzedDataProvider.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "assay/assay.h"
#include "assay/profiler.hpp"
#include "tests/check_heap.h"

extern "C" void free_sized(void* p, size_t size) noexcept;

namespace {

#define FUZZ_CHECK(cond)                                                                    \
  do {                                                                                      \
    if (!(cond)) {                                                                          \
      fprintf(stderr, "fuzz_heap: check failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
      abort();                                                                              \
    }                                                                                       \
  } while (0)

// How a block was allocated decides how it may be freed.
enum class Kind : uint8_t { kMalloc, kNew, kNewAligned };

struct Block {
  unsigned char* p = nullptr;
  size_t size = 0;   // bytes requested (the model's view of the contents)
  size_t align = 0;  // alignment asked for (0: the default)
  uint32_t id = 0;
  Kind kind = Kind::kMalloc;
};

constexpr size_t kSlots = 64;
// Blocks above this are filled and checked only at their ends and every
// kStride bytes: a few MiB per block would otherwise dominate the run time.
constexpr size_t kFullCheck = 64 << 10;
constexpr size_t kEdge = 4096;
constexpr size_t kStride = 4093;  // odd, so the samples walk through the pages

inline unsigned char Pattern(uint32_t id, size_t i) {
  return static_cast<unsigned char>((id * 0x9e3779b1u >> 24) ^ (i * 31) ^ (i >> 9));
}

template <typename F>
void ForEachChecked(size_t size, F f) {
  if (size <= kFullCheck) {
    for (size_t i = 0; i < size; ++i) f(i);
    return;
  }
  for (size_t i = 0; i < kEdge; ++i) f(i);
  for (size_t i = kEdge; i < size - kEdge; i += kStride) f(i);
  for (size_t i = size - kEdge; i < size; ++i) f(i);
}

void Fill(const Block& b) {
  ForEachChecked(b.size, [&](size_t i) { b.p[i] = Pattern(b.id, i); });
}

// Checks the bytes of b's pattern (those Fill wrote) below n.
void Verify(const Block& b, size_t n) {
  ForEachChecked(b.size, [&](size_t i) {
    if (i < n && b.p[i] != Pattern(b.id, i)) {
      fprintf(stderr, "fuzz_heap: block %u (%zu bytes at %p) byte %zu is %02x, wrote %02x\n", b.id,
              b.size, static_cast<void*>(b.p), i, b.p[i], Pattern(b.id, i));
      abort();
    }
  });
}

// Checks a fresh block: alignment, usable size; then fills it.
void Adopt(Block* b) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(b->p);
  FUZZ_CHECK(a % 8 == 0);
  if (b->size > 8) FUZZ_CHECK(a % 16 == 0);
  if (b->align != 0) FUZZ_CHECK(a % b->align == 0);
  FUZZ_CHECK(malloc_usable_size(b->p) >= b->size);
  Fill(*b);
}

// The second thread of two-thread inputs: frees the blocks it is handed
// (cross-thread frees into its own cache and the central lists).
class Remote {
 public:
  Remote() : thread_([this] { Run(); }) {}

  void Push(const Block& b) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(b);
    cv_.notify_one();
  }

  // Waits until every block handed over is freed and the thread has checked
  // its own cache.
  void Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    drain_ = true;
    cv_.notify_one();
    cv_.wait(lock, [this] { return queue_.empty() && !drain_; });
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return !queue_.empty() || drain_; });
      while (!queue_.empty()) {
        const Block b = queue_.back();
        queue_.pop_back();
        lock.unlock();
        Verify(b, b.size);
        if (b.kind == Kind::kMalloc) {
          free(b.p);
        } else if (b.kind == Kind::kNew) {
          ::operator delete(b.p);
        } else {
          ::operator delete (b.p, std::align_val_t{b.align});
        }
        lock.lock();
      }
      if (drain_) {
        lock.unlock();
        assay_check_heap(0);  // this thread's cache and the shared structures
        lock.lock();
        drain_ = false;
        cv_.notify_all();
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Block> queue_;
  bool drain_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

Remote* GetRemote() {
  static Remote* remote = new Remote;  // never joined: lives as long as the fuzzer
  return remote;
}

class Heap {
 public:
  explicit Heap(FuzzedDataProvider* in) : in_(in) {}

  void Run() {
    const uint8_t flags = in_->ConsumeIntegral<uint8_t>();
    const bool two_threads = flags & 1;
    // Some inputs run with the profiler sampling every few hundred bytes:
    // sampled blocks live in their own pools and free through slow paths.
    const bool profiled = (flags & 6) == 6;
    if (profiled) {
      assay::ProfilerOptions o;
      o.rate = 64 + (flags >> 3) * 64;
      o.max_depth = 8;
      FUZZ_CHECK(assay::Start(o));
    }
    while (in_->remaining_bytes() > 0) Step(two_threads);
    for (size_t i = 0; i < kSlots; ++i) Release(i, two_threads && (i & 1));
    if (two_threads) GetRemote()->Drain();
    if (profiled) assay::Stop();
    assay_check_heap(0);
  }

 private:
  size_t Size() {
    switch (in_->ConsumeIntegralInRange<int>(0, 15)) {
      case 0:
        return in_->ConsumeIntegralInRange<size_t>(0, 16);
      case 1:
      case 2:
      case 3:
      case 4:
        return in_->ConsumeIntegralInRange<size_t>(0, 256);
      case 5:
      case 6:
      case 7:
        return in_->ConsumeIntegralInRange<size_t>(0, 4096);
      case 8:
      case 9:
        return in_->ConsumeIntegralInRange<size_t>(0, 64 << 10);
      case 10:
      case 11:
        return in_->ConsumeIntegralInRange<size_t>(0, 300 << 10);  // the last classes
      case 12:
        return in_->ConsumeIntegralInRange<size_t>(200 << 10, 2 << 20);  // large spans
      case 13:
        return in_->ConsumeIntegralInRange<size_t>((2 << 20) - 8192, 6 << 20);  // huge
      case 14:  // around a class or slice boundary
        return (size_t{1} << in_->ConsumeIntegralInRange<int>(3, 22)) +
               in_->ConsumeIntegralInRange<int>(-2, 2);
      default:  // cannot succeed
        return SIZE_MAX - in_->ConsumeIntegralInRange<size_t>(0, 1 << 20);
    }
  }

  size_t Align() { return size_t{1} << in_->ConsumeIntegralInRange<int>(3, 23); }

  static bool Impossible(size_t n) { return n > (size_t{1} << 46); }

  // A failed allocation: only a request that cannot succeed may fail here.
  static void Failed(size_t n, int err) {
    if (!Impossible(n) || err != ENOMEM) {
      fprintf(stderr, "fuzz_heap: a request of %zu bytes failed with errno %d\n", n, err);
      abort();
    }
  }

  void Put(size_t slot, unsigned char* p, size_t size, size_t align, Kind kind) {
    Block& b = slots_[slot];
    b = Block{p, size, align, next_id_++, kind};
    Adopt(&b);
  }

  void Release(size_t slot, bool remote) {
    Block& b = slots_[slot];
    if (b.p == nullptr) return;
    if (remote) {
      GetRemote()->Push(b);
      b = Block{};
      return;
    }
    Verify(b, b.size);
    switch (b.kind) {
      case Kind::kMalloc:
        switch (b.id % 3) {
          case 0:
            free(b.p);
            break;
          case 1:
            free_sized(b.p, b.size);
            break;
          default: {
            void* one[1] = {b.p};
            assay_bulk_free(one, 1);
            FUZZ_CHECK(one[0] == nullptr);
          }
        }
        break;
      case Kind::kNew:
        if (b.id & 1) {
          ::operator delete(b.p, b.size);
        } else {
          ::operator delete[](b.p);
        }
        break;
      case Kind::kNewAligned:
        if (b.id & 1) {
          ::operator delete (b.p, b.size, std::align_val_t{b.align});
        } else {
          ::operator delete (b.p, std::align_val_t{b.align});
        }
        break;
    }
    b = Block{};
  }

  void Step(bool two_threads) {
    const int op = in_->ConsumeIntegralInRange<int>(0, 15);
    const size_t slot = in_->ConsumeIntegralInRange<size_t>(0, kSlots - 1);
    Block& b = slots_[slot];
    switch (op) {
      case 0:
      case 1: {  // malloc
        Release(slot, false);
        const size_t n = Size();
        errno = 0;
        void* p = malloc(n);
        if (p == nullptr) return Failed(n, errno);
        Put(slot, static_cast<unsigned char*>(p), n, 0, Kind::kMalloc);
        break;
      }
      case 2: {  // calloc: zeroed, including a block that reuses a freed one
        Release(slot, false);
        const size_t count = in_->ConsumeIntegralInRange<size_t>(0, 64);
        const size_t size = Size() / (count == 0 ? 1 : count);
        errno = 0;
        unsigned char* p = static_cast<unsigned char*>(calloc(count, size));
        if (p == nullptr) return Failed(count * size, errno);
        for (size_t i = 0; i < count * size; ++i) FUZZ_CHECK(p[i] == 0);
        Put(slot, p, count * size, 0, Kind::kMalloc);
        break;
      }
      case 3:
      case 4: {  // realloc: the common prefix survives, in place or moved
        if (b.kind != Kind::kMalloc) return;
        const size_t n = Size();
        if (b.p != nullptr) Verify(b, b.size);
        errno = 0;
        void* q = realloc(b.p, n);
        if (q == nullptr) {
          if (n == 0 && b.p != nullptr) {  // freed, as glibc does
            b = Block{};
            return;
          }
          Failed(n, errno);
          if (b.p != nullptr) Verify(b, b.size);  // the old block is untouched
          return;
        }
        Block moved = b;
        moved.p = static_cast<unsigned char*>(q);
        Verify(moved, moved.size < n ? moved.size : n);
        if (b.p == nullptr) moved.id = next_id_++;
        moved.size = n;
        moved.align = 0;
        moved.kind = Kind::kMalloc;
        b = moved;
        // Refill from scratch: the grown tail must follow the pattern too.
        Adopt(&b);
        break;
      }
      case 5: {  // aligned allocation, three spellings
        Release(slot, false);
        const size_t align = Align();
        const size_t n = Size();
        void* p = nullptr;
        switch (in_->ConsumeIntegralInRange<int>(0, 2)) {
          case 0:
            errno = 0;
            p = aligned_alloc(align, n);
            if (p == nullptr) return Failed(n, errno);
            break;
          case 1: {
            errno = 0;
            const int rc = posix_memalign(&p, align, n);
            FUZZ_CHECK(errno == 0);  // reported through the result only
            if (rc != 0) return Failed(n, rc);
            break;
          }
          default:
            errno = 0;
            p = memalign(align, n);
            if (p == nullptr) return Failed(n, errno);
        }
        Put(slot, static_cast<unsigned char*>(p), n, align, Kind::kMalloc);
        break;
      }
      case 6:
      case 7:  // free (in this thread, or in the other one)
        Release(slot, two_threads && in_->ConsumeBool());
        break;
      case 8: {  // operator new, plain or aligned
        Release(slot, false);
        const size_t n = Size();
        const bool aligned = in_->ConsumeBool();
        const size_t align = aligned ? Align() : 0;
        void* p = nullptr;
        try {
          p = aligned ? ::operator new (n, std::align_val_t{align}) : ::operator new(n);
        } catch (const std::bad_alloc&) {
          FUZZ_CHECK(Impossible(n));
          return;
        }
        Put(slot, static_cast<unsigned char*>(p), n, align,
            aligned ? Kind::kNewAligned : Kind::kNew);
        break;
      }
      case 9: {  // comalloc into consecutive slots: all or nothing
        const size_t count = in_->ConsumeIntegralInRange<size_t>(0, 8);
        size_t sizes[8];
        void* out[8];
        bool impossible = false;
        for (size_t i = 0; i < count; ++i) {
          Release((slot + i) % kSlots, false);
          sizes[i] = Size();
          impossible |= Impossible(sizes[i]);
          out[i] = reinterpret_cast<void*>(uintptr_t{0xdead0000} + i);
        }
        const int rc = assay_comalloc(count, sizes, out);
        if (rc != 0) {
          FUZZ_CHECK(rc == ENOMEM && impossible);
          for (size_t i = 0; i < count; ++i) {
            FUZZ_CHECK(out[i] == reinterpret_cast<void*>(uintptr_t{0xdead0000} + i));
          }
          return;
        }
        for (size_t i = 0; i < count; ++i) {
          Put((slot + i) % kSlots, static_cast<unsigned char*>(out[i]), sizes[i], 0, Kind::kMalloc);
        }
        break;
      }
      case 10: {  // bulk free of a run of slots, nulls among them
        const size_t count = in_->ConsumeIntegralInRange<size_t>(0, 8);
        void* ptrs[8];
        for (size_t i = 0; i < count; ++i) {
          Block& c = slots_[(slot + i) % kSlots];
          ptrs[i] = nullptr;
          if (c.kind != Kind::kMalloc || c.p == nullptr) continue;
          Verify(c, c.size);
          ptrs[i] = c.p;
          c = Block{};
        }
        assay_bulk_free(ptrs, count);
        for (size_t i = 0; i < count; ++i) FUZZ_CHECK(ptrs[i] == nullptr);
        break;
      }
      case 11:  // usable size: at least the request, and writable to its end
        if (b.p != nullptr) {
          const size_t usable = malloc_usable_size(b.p);
          FUZZ_CHECK(usable >= b.size);
          memset(b.p + b.size, 0x5a, usable - b.size);
          Verify(b, b.size);
        }
        break;
      case 12:  // give memory back: live blocks keep their contents
        if (in_->ConsumeBool()) {
          malloc_trim(0);
        } else {
          assay_trim();
        }
        break;
      case 13: {  // reallocarray, overflow included
        if (b.kind != Kind::kMalloc) return;
        const size_t count = in_->ConsumeIntegralInRange<size_t>(0, 1 << 20);
        const size_t size =
            in_->ConsumeBool() ? SIZE_MAX / 2 : in_->ConsumeIntegralInRange<size_t>(0, 64);
        size_t total;
        const bool overflow = __builtin_mul_overflow(count, size, &total);
        if (b.p != nullptr) Verify(b, b.size);
        errno = 0;
        void* q = reallocarray(b.p, count, size);
        if (q == nullptr) {
          if (!overflow && total == 0 && b.p != nullptr) {
            b = Block{};
            return;
          }
          FUZZ_CHECK(overflow || Impossible(total));
          FUZZ_CHECK(errno == ENOMEM);
          if (b.p != nullptr) Verify(b, b.size);
          return;
        }
        FUZZ_CHECK(!overflow);
        Block moved = b;
        moved.p = static_cast<unsigned char*>(q);
        Verify(moved, moved.size < total ? moved.size : total);
        if (b.p == nullptr) moved.id = next_id_++;
        moved.size = total;
        moved.align = 0;
        b = moved;
        Adopt(&b);
        break;
      }
      case 14: {  // valloc / pvalloc: page-aligned
        Release(slot, false);
        const size_t n = Size();
        errno = 0;
        const bool pv = in_->ConsumeBool();
        void* p = pv ? pvalloc(n) : valloc(n);
        if (p == nullptr) return Failed(n, errno);
        Put(slot, static_cast<unsigned char*>(p), n, 4096, Kind::kMalloc);
        break;
      }
      default:  // check the heap mid-run
        assay_check_heap(0);
        break;
    }
  }

  FuzzedDataProvider* in_;
  Block slots_[kSlots];
  uint32_t next_id_ = 1;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The harness must run on assay: fail at once if it does not.
  FUZZ_CHECK(assay_version() != nullptr);
  FUZZ_CHECK(assay_check_heap(0) == 1);  // the checked build: the walks run
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  Heap heap(&in);
  heap.Run();
  return 0;
}
