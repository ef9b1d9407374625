// The process's C++ runtime as operator new's failure path sees it: the
// new_handler the program installed and the bad_alloc it can catch. libassay.so
// carries its own hidden copy of libstdc++ (linked statically: mapping the
// shared one cost a small program ~0.9 MiB of RSS), so these go to the
// program's libstdc++ when one is loaded, and to the built-in copy otherwise.
#pragma once

#include <new>

namespace assay::internal::cxx {

// std::get_new_handler() of the program's C++ runtime.
std::new_handler GetNewHandler();

// Throws std::bad_alloc through the program's C++ runtime (so its
// std::uncaught_exceptions() and exception bookkeeping stay balanced).
[[noreturn]] void ThrowBadAlloc();

// Called inside a catch block of library code that may have caught an
// exception thrown through the program's runtime (a new_handler, a tracker
// callback, ThrowBadAlloc): the built-in copy's __cxa_begin_catch counted the
// catch in its own globals, so the program's std::uncaught_exceptions() would
// stay one too high. Moves the count back (Itanium ABI __cxa_eh_globals);
// nothing when the program's runtime is the built-in one (libassay.a).
void BalanceCatch();

}  // namespace assay::internal::cxx
