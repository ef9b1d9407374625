// Heap walk (heap_walk.h). Free blocks are those on a thread cache's list
// or its sampled-pool magazine, in a central transfer cache, on their span's
// own free list, or on a purged unit of their span (never read); every other
// carved block of a small span is live, every large span but those in a
// thread's slice-run cache (Span::cached) and every huge block is.
#include "alloc/heap_walk.h"

#include <errno.h>
#include <sys/wait.h>

#include <algorithm>

#include "alloc/heap.h"
#include "assay/assay.h"
#include "base/os.h"

namespace assay::internal {
namespace {

template <typename T>
T Read(uint64_t addr) {
  T v;
  __builtin_memcpy(&v, reinterpret_cast<const void*>(addr), sizeof(T));
  return v;
}

// A growable array of addresses in OS memory.
class AddressSet {
 public:
  ~AddressSet() {
    if (data_ != nullptr) os::Unmap(data_, cap_ * sizeof(uintptr_t));
  }
  bool Add(uintptr_t a) {
    if (n_ == cap_ && !Grow()) return false;
    data_[n_++] = a;
    return true;
  }
  void Sort() { std::sort(data_, data_ + n_); }
  bool Contains(uintptr_t a) const { return std::binary_search(data_, data_ + n_, a); }
  void Clear() { n_ = 0; }

 private:
  bool Grow() {
    const size_t cap = cap_ == 0 ? 4096 : cap_ * 2;
    auto* d = static_cast<uintptr_t*>(os::MapAligned(cap * sizeof(uintptr_t), kPageSize));
    if (d == nullptr) return false;
    if (data_ != nullptr) {
      __builtin_memcpy(d, data_, n_ * sizeof(uintptr_t));
      os::Unmap(data_, cap_ * sizeof(uintptr_t));
    }
    data_ = d;
    cap_ = cap;
    return true;
  }
  uintptr_t* data_ = nullptr;
  size_t n_ = 0;
  size_t cap_ = 0;
};

// The key of hardened links (0: plain), read through the layout.
uint64_t g_walk_key = 0;
uint64_t g_walk_shift = 0;

// Adds up to `limit` blocks of the list starting at head, decoding the links
// as free_link.h stores them.
bool AddList(AddressSet* set, uintptr_t head, uint64_t limit) {
  for (uint64_t i = 0; head != 0 && i < limit; ++i) {
    if (!set->Add(head)) return false;
    uintptr_t next = Read<uintptr_t>(head);
    if (g_walk_key != 0) next ^= (head >> g_walk_shift) ^ g_walk_key;
    head = next;
  }
  return true;
}

}  // namespace

bool WalkHeap(const AssayLayout& l, void (*emit)(uintptr_t, size_t, void*), void* arg) {
  AddressSet cached;  // free blocks held by thread caches and transfer caches
  g_walk_key = l.link_key_addr != 0 ? Read<uint64_t>(l.link_key_addr) : 0;
  g_walk_shift = l.link_shift;
  for (uintptr_t tc = Read<uintptr_t>(l.thread_cache_head_addr); tc != 0;
       tc = Read<uintptr_t>(tc + l.tc_next_off)) {
    for (uint64_t cls = 1; cls < l.num_classes; ++cls) {
      const uint64_t list = tc + l.tc_lists_off + cls * l.freelist_record_size;
      const uint32_t count = Read<uint32_t>(list + l.freelist_count_off);
      if (!AddList(&cached, Read<uintptr_t>(list + l.freelist_head_off), count + 16)) return false;
    }
    const uintptr_t magazine = Read<uintptr_t>(tc + l.tc_sampled_off);
    for (uint64_t cls = 1; magazine != 0 && cls < l.num_classes; ++cls) {
      const uint64_t list = magazine + l.sampled_lists_off + cls * l.freelist_record_size;
      const uint32_t count = Read<uint32_t>(list + l.freelist_count_off);
      if (!AddList(&cached, Read<uintptr_t>(list + l.freelist_head_off), count + 16)) return false;
    }
  }
  for (uint64_t i = 0; i < l.central_pools * l.num_classes; ++i) {
    const uint64_t rec = l.central_addr + i * l.central_record_size;
    const uint32_t nbatches = Read<uint32_t>(rec + l.central_nbatches_off);
    for (uint32_t b = 0; b < nbatches; ++b) {
      const uint64_t batch = rec + l.central_batches_off + b * l.batch_record_size;
      const uint32_t count = Read<uint32_t>(batch + l.batch_count_off);
      if (!AddList(&cached, Read<uintptr_t>(batch + l.batch_head_off), count)) return false;
    }
  }
  cached.Sort();

  AddressSet span_free;
  for (uintptr_t seg = Read<uintptr_t>(l.segment_head_addr); seg != 0;
       seg = Read<uintptr_t>(seg + l.seg_next_off)) {
    const uint64_t free_mask = Read<uint64_t>(seg + l.seg_free_mask_off);
    uint64_t i = 1;
    while (i < l.slices_per_segment) {
      if ((free_mask >> i) & 1) {
        ++i;
        continue;
      }
      const uint64_t span = seg + l.seg_spans_off + i * l.span_size;
      const uint64_t kind = Read<uint8_t>(span + l.span_kind_off);
      const uint64_t slices = Read<uint8_t>(span + l.span_slices_off);
      const uintptr_t start = seg + i * l.slice_size;
      if (kind == l.span_kind_large) {
        // A run in a thread's slice-run cache is free.
        if (Read<uint8_t>(span + l.span_cached_off) == 0) emit(start, slices * l.slice_size, arg);
      } else if (kind == l.span_kind_small || kind == l.span_kind_sampled) {
        const uint64_t cls = Read<uint8_t>(span + l.span_cls_off);
        const uint32_t size =
            Read<uint32_t>(l.classes_addr + cls * l.class_record_size + l.class_size_off);
        const uint32_t carved = Read<uint32_t>(span + l.span_bump_off) / size;
        span_free.Clear();
        if (!AddList(&span_free, Read<uintptr_t>(span + l.span_free_list_off), carved))
          return false;
        span_free.Sort();
        const uint64_t purged = Read<uint64_t>(span + l.span_purged_off);
        const uint64_t span_unit = slices * l.slice_size / l.span_purge_units;
        const uint64_t unit = span_unit < l.page_size ? l.page_size : span_unit;
        for (uint32_t b = 0; b < carved; ++b) {
          const uintptr_t block = start + uintptr_t{b} * size;
          if (purged != 0) {  // a block on a purged unit is free
            const uint64_t u0 = uint64_t{b} * size / unit;
            const uint64_t u1 = (uint64_t{b} * size + size - 1) / unit;
            const uint64_t upto = u1 >= 63 ? ~uint64_t{0} : (uint64_t{2} << u1) - 1;
            if ((purged & upto & ~((uint64_t{1} << u0) - 1)) != 0) continue;
          }
          if (!span_free.Contains(block) && !cached.Contains(block)) emit(block, size, arg);
        }
      }
      i += slices == 0 ? 1 : slices;
    }
  }

  const uintptr_t table = Read<uintptr_t>(l.huge_table_addr);
  const uint64_t capacity = Read<uint64_t>(l.huge_capacity_addr);
  for (uint64_t i = 0; table != 0 && i < capacity; ++i) {
    const uint64_t rec = table + i * l.huge_record_size;
    const uintptr_t ptr = Read<uintptr_t>(rec + l.huge_ptr_off);
    if (ptr == 0) continue;
    const uintptr_t base = Read<uintptr_t>(rec + l.huge_base_off);
    emit(ptr, base + Read<uint64_t>(rec + l.huge_map_size_off) - ptr, arg);
  }
  return true;
}

}  // namespace assay::internal

using namespace assay::internal;

// assay_heap_iterate: the walk runs in a still copy of the process, a raw
// fork taken with every allocator lock held (no other library's fork
// handler runs), and streams (address, size) pairs back through a pipe.
extern "C" ASSAY_EXPORT long assay_heap_iterate(assay_block_visitor visit, void* arg) {
  if (visit == nullptr) {
    errno = EINVAL;
    return -1;
  }
  int fds[2];
  if (!os::Pipe(fds)) return -1;
  heap::EnsureInit();
  heap::LockAll();
  const long pid = os::CloneProcess();
  if (pid == 0) {
    os::Close(fds[0]);
    struct Out {
      int fd;
      uint64_t buf[512];
      size_t n;
      void Flush() {
        if (!os::WriteAll(fd, buf, n * sizeof(uint64_t))) os::ExitGroup(1);
        n = 0;
      }
    } out{fds[1], {}, 0};
    const bool ok = WalkHeap(
        assay_layout,
        [](uintptr_t a, size_t size, void* o) {
          auto* out = static_cast<Out*>(o);
          out->buf[out->n++] = a;
          out->buf[out->n++] = size;
          if (out->n == 512) out->Flush();
        },
        &out);
    out.Flush();
    os::ExitGroup(ok ? 0 : 2);
  }
  const int clone_errno = errno;
  heap::UnlockAll(false);
  os::Close(fds[1]);
  if (pid < 0) {
    os::Close(fds[0]);
    errno = clone_errno;
    return -1;
  }
  long visited = 0;
  uint64_t rec[2];
  size_t have = 0;
  for (;;) {
    const long r = os::ReadSome(fds[0], reinterpret_cast<char*>(rec) + have, sizeof(rec) - have);
    if (r <= 0) break;
    have += static_cast<size_t>(r);
    if (have == sizeof(rec)) {
      visit(reinterpret_cast<void*>(rec[0]), rec[1], arg);
      ++visited;
      have = 0;
    }
  }
  os::Close(fds[0]);
  int status = 0;
  os::WaitChild(pid, &status);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    errno = WIFEXITED(status) && WEXITSTATUS(status) == 2 ? ENOMEM : EIO;
    return -1;
  }
  return visited;
}
