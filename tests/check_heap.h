// The test-only hook into the checked build's heap walk (alloc/check.h).
// Not part of the public API: the tests link libassay.a, where the symbol
// is visible to them though hidden from libassay.so's exports.
#ifndef ASSAY_TESTS_CHECK_HEAP_H_
#define ASSAY_TESTS_CHECK_HEAP_H_

#ifdef __cplusplus
extern "C" {
#endif

// Validates every structure of the heap, aborting with "assay: assertion
// failed: <cond> at <file>:<line>" on the first broken invariant; returns 1.
// In a library built without ASSAY_CHECKED it does nothing and returns 0.
// all_threads != 0 also walks other threads' caches: only while those
// threads are quiescent (joined, or blocked outside the allocator); 0 walks
// the calling thread's cache and the shared structures, safe at any time.
int assay_check_heap(int all_threads);

#ifdef __cplusplus
}
#endif

#endif  // ASSAY_TESTS_CHECK_HEAP_H_
