// libunwind loaded at run time (unwinder.h).
#include "profiler/unwinder.h"

#include <dlfcn.h>

#include "base/lock.h"
#include "base/os.h"

namespace assay::profiler::unwinder {
namespace {

#define ASSAY_UNW_NAME2(x) #x
#define ASSAY_UNW_NAME(x) ASSAY_UNW_NAME2(x)

constinit Functions g_functions{};
constinit internal::Mutex g_load_mu;
constinit bool g_tried = false;

template <typename F>
ASSAY_STARTUP bool Bind(void* handle, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(handle, name));
  return *out != nullptr;
}

}  // namespace

constinit const Functions* g_ready = nullptr;

ASSAY_STARTUP bool Load() {
  if (Get() != nullptr) return true;
  internal::LockGuard lock(g_load_mu);
  if (g_tried) return g_ready != nullptr;
  g_tried = true;
  void* h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) h = dlopen("libunwind.so", RTLD_NOW | RTLD_LOCAL);
  Functions f{};
  // The macros name the local-only entry points (_ULx86_64_step, ...);
  // unw_getcontext is libunwind's assembly function _Ux86_64_getcontext.
  const bool ok = h != nullptr && Bind(h, ASSAY_UNW_NAME(unw_tdep_getcontext), &f.getcontext) &&
                  Bind(h, ASSAY_UNW_NAME(unw_init_local), &f.init_local) &&
                  Bind(h, ASSAY_UNW_NAME(unw_step), &f.step) &&
                  Bind(h, ASSAY_UNW_NAME(unw_get_reg), &f.get_reg) &&
                  Bind(h, ASSAY_UNW_NAME(unw_get_proc_info), &f.get_proc_info) &&
                  Bind(h, "unw_backtrace", &f.backtrace);
  if (!ok) {
    const char* why = h == nullptr ? dlerror() : "a function is missing";
    internal::os::WriteStderr("assay: cannot load libunwind (");
    internal::os::WriteStderr(why != nullptr ? why : "unknown error");
    internal::os::WriteStderr("): stacks follow frame pointers only\n");
    if (h != nullptr) dlclose(h);  // an unusable libunwind stays unmapped
    return false;
  }
  g_functions = f;
  __atomic_store_n(&g_ready, &g_functions, __ATOMIC_RELEASE);
  return true;
}

}  // namespace assay::profiler::unwinder
