// Labels: the interned names of object caches that sampled blocks carry
// (pprof label cache=NAME), and the thread's current label.
#include <cstring>

#include "profiler/arena.h"
#include "profiler/profiler.h"

namespace assay::profiler {

__thread const char* tls_cache_label __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

// Interned cache names: push-only lists (lock-free, so fork needs no
// handler), nodes from the arena, never freed.
struct InternedName {
  InternedName* next;
  char name[64];
};
constexpr size_t kNameBuckets = 64;
InternedName* g_names[kNameBuckets];  // atomic heads

}  // namespace

const char* InternCacheName(const char* name) {
  if (name == nullptr) return nullptr;
  const size_t len = strnlen(name, sizeof(InternedName::name) - 1);
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (size_t i = 0; i < len; ++i) h = (h ^ static_cast<unsigned char>(name[i])) * 0x100000001b3ull;
  InternedName** head = &g_names[h % kNameBuckets];
  InternedName* checked = nullptr;  // the list from here on was searched already
  InternedName* fresh = nullptr;
  for (;;) {
    InternedName* first = __atomic_load_n(head, __ATOMIC_ACQUIRE);
    for (InternedName* n = first; n != checked; n = n->next) {
      if (std::strncmp(n->name, name, len) == 0 && n->name[len] == '\0') {
        if (fresh != nullptr) arena::Free(fresh, sizeof(InternedName));
        return n->name;
      }
    }
    if (fresh == nullptr) {
      fresh = static_cast<InternedName*>(arena::Alloc(sizeof(InternedName)));
      if (fresh == nullptr) return nullptr;
      std::memcpy(fresh->name, name, len);
      fresh->name[len] = '\0';
    }
    fresh->next = first;
    if (__atomic_compare_exchange_n(head, &first, fresh, false, __ATOMIC_RELEASE,
                                    __ATOMIC_ACQUIRE)) {
      return fresh->name;
    }
    checked = fresh->next;  // another thread pushed: search only the newer nodes
  }
}

}  // namespace assay::profiler
