// Linked with libassay.so (which carries its own hidden libstdc++): the
// program's C++ runtime must see one runtime. The new_handler it installs is
// called, the bad_alloc thrown is its own, and exceptions caught inside the
// library (a throwing new_handler under nothrow new, a throwing tracker
// callback) leave its std::uncaught_exceptions() at 0 (alloc/cxx_runtime.cc).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <stdexcept>

#include "assay/profiler.hpp"

namespace {

int g_failures = 0;
int g_handler_calls = 0;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL: %s (uncaught_exceptions %d)\n", what, std::uncaught_exceptions());
    ++g_failures;
  }
}

void CountingHandler() {
  if (++g_handler_calls == 2) std::set_new_handler(nullptr);
}

void ThrowingHandler() { throw std::bad_alloc(); }

}  // namespace

int main() {
  const size_t impossible = SIZE_MAX / 2;
  std::set_new_handler(CountingHandler);
  bool caught = false;
  try {
    void* p = ::operator new(impossible);
    std::printf("%p\n", p);
  } catch (const std::bad_alloc&) {
    caught = true;
  }
  Check(caught, "operator new of SIZE_MAX/2 throws std::bad_alloc");
  Check(g_handler_calls == 2, "the program's new_handler is called until it is removed");
  Check(std::uncaught_exceptions() == 0, "no uncaught exception after the catch");

  std::set_new_handler(ThrowingHandler);
  void* q = ::operator new(impossible, std::nothrow);
  Check(q == nullptr, "nothrow new with a throwing handler returns nullptr");
  Check(std::uncaught_exceptions() == 0, "the handler's exception, caught inside, is not left");
  std::set_new_handler(nullptr);

  assay::ProfilerOptions o;
  o.rate = 1;
  assay::Tracker t;
  t.on_alloc = [](const assay::SampledAllocation&) -> std::optional<assay::Token> {
    throw std::runtime_error("on_alloc throws");
  };
  Check(assay::Start(o, t), "assay::Start");
  void* volatile p = std::malloc(100);
  std::free(p);
  assay::Poll();
  assay::Stop();
  Check(std::uncaught_exceptions() == 0, "a tracker's exception, caught inside, is not left");

  try {
    throw 1;
  } catch (int) {
    Check(std::uncaught_exceptions() == 0, "inside a later catch");
  }
  return g_failures == 0 ? 0 : 1;
}
