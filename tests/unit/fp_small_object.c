// A shared object as small as a program can be: one function, built with
// frame pointers like the rest of the tree, that calls back into its caller
// (so a sampled stack runs through it). Its .eh_frame holds the function's
// FDE and the linker's FDE for the PLT; stack_hybrid_check asserts that the
// object counts as code with frame pointers (fp_mappings) and that stacks
// through it are libunwind's.
#include "fp_small_object.h"

volatile int g_small_object_calls;

void SmallObjectCall(void (*fn)(void*), void* arg) {
  fn(arg);
  g_small_object_calls = g_small_object_calls + 1;  // not a tail call: the frame stays
}
