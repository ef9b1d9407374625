/* assay object caches: pools of constructed objects, as libumem's
 * umem_cache. An object is constructed once (ctor) when the cache first
 * makes it, stays constructed while it waits between a free and the next
 * alloc, and is destroyed (dtor) only when the cache gives memory back
 * (assay_cache_reap, assay_cache_destroy). Per-thread magazines make alloc
 * and free a pop and a push, with no lock. */
#ifndef ASSAY_CACHE_H_
#define ASSAY_CACHE_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct assay_cache assay_cache_t;

/* Flags of assay_cache_create. */
#define ASSAY_CACHE_GUARD                                           \
  0x1u /* each object in a page-aligned power-of-two buffer between \
          PROT_NONE pages, pre-faulted (as thread stacks are) */

/* A cache of objects of `size` bytes aligned to `align` (0: the malloc
 * default; otherwise a power of two). ctor (may be NULL) returns 0 on
 * success; a failing ctor makes assay_cache_alloc return NULL. dtor may be
 * NULL. `arg` is passed to both. The name (copied, at most 63 bytes) appears
 * in assay_stats_print. NULL with errno EINVAL or ENOMEM on failure. */
assay_cache_t* assay_cache_create(const char* name, size_t size, size_t align,
                                  int (*ctor)(void* obj, void* arg),
                                  void (*dtor)(void* obj, void* arg), void* arg, unsigned flags);

/* A constructed object, or NULL (out of memory, or the constructor failed).
 * flags: reserved, pass 0. */
void* assay_cache_alloc(assay_cache_t* cache, unsigned flags);

/* Gives back an object of this cache, still constructed. */
void assay_cache_free(assay_cache_t* cache, void* obj);

/* Destroys every free object (running dtor) and the cache. Every object
 * must have been freed, and no thread may use the cache any more. */
void assay_cache_destroy(assay_cache_t* cache);

/* Under memory pressure: destroys the constructed-but-unused objects of
 * every cache (running their destructors) and frees their memory. Objects
 * waiting in other threads' magazines stay (at most one magazine pair per
 * thread and cache). Returns the number of objects destroyed. */
size_t assay_cache_reap(void);

#ifdef __cplusplus
}
#endif

#endif /* ASSAY_CACHE_H_ */
