// See fp_small_object.c.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

// Calls fn(arg) from the small object's frame.
void SmallObjectCall(void (*fn)(void*), void* arg);

#ifdef __cplusplus
}
#endif
