// Finds the program's libstdc++ entry points for operator new's failure path
// (alloc/cxx_runtime.h). Looked up once, on the first failed new, with
// dlsym(RTLD_DEFAULT): libassay.so's own copy is hidden (--exclude-libs), so
// the lookup finds only a libstdc++ the program loaded into the global scope.
#include "alloc/cxx_runtime.h"

#include <cxxabi.h>
#include <dlfcn.h>

#include <atomic>

namespace assay::internal::cxx {
namespace {

using GetHandlerFn = std::new_handler (*)();
using ThrowFn = void (*)();

// Resolved lazily; a benign race: every thread stores the same value.
// kUnresolved until the first look-up, nullptr when the program has none.
void* const kUnresolved = reinterpret_cast<void*>(1);
std::atomic<void*> g_get_handler{kUnresolved};
std::atomic<void*> g_throw_bad_alloc{kUnresolved};
std::atomic<void*> g_get_globals{kUnresolved};

// The Itanium C++ ABI's per-thread exception globals (what __cxa_get_globals returns).
struct EhGlobals {
  void* caught_exceptions;
  unsigned int uncaught_exceptions;
};

void* Resolve(std::atomic<void*>& slot, const char* name) {
  void* f = slot.load(std::memory_order_acquire);
  if (f == kUnresolved) {
    f = dlsym(RTLD_DEFAULT, name);
    slot.store(f, std::memory_order_release);
  }
  return f;
}

}  // namespace

std::new_handler GetNewHandler() {
  void* f = Resolve(g_get_handler, "_ZSt15get_new_handlerv");
  return f != nullptr ? reinterpret_cast<GetHandlerFn>(f)() : std::get_new_handler();
}

void ThrowBadAlloc() {
  void* f = Resolve(g_throw_bad_alloc, "_ZSt17__throw_bad_allocv");
  if (f != nullptr) reinterpret_cast<ThrowFn>(f)();  // does not return
  throw std::bad_alloc();
}

void BalanceCatch() {
  void* f = Resolve(g_get_globals, "__cxa_get_globals");
  if (f == nullptr) return;
  auto* theirs = reinterpret_cast<EhGlobals* (*)()>(f)();
  auto* ours = reinterpret_cast<EhGlobals*>(abi::__cxa_get_globals());
  // Only a throw through their runtime leaves their count above zero here.
  if (theirs == ours || theirs->uncaught_exceptions == 0) return;
  theirs->uncaught_exceptions -= 1;
  ours->uncaught_exceptions += 1;
}

}  // namespace assay::internal::cxx
