/* fastpath.h - the inlined fast paths shared by the os_* entry points
 * (malloc.c) and the drop-in malloc (dropin.c).
 *
 * A small allocation pops the calling thread's cache; a small free checks
 * the pointer (aligned, a block start in the pagemap, its keyed header USED
 * and not cached, no PREV_* flags, its neighbour's header intact) and pushes
 * it.  Any
 * doubt, or an empty or full cache, falls to the slow paths in malloc.c,
 * which recheck under the heap lock and report misuse.
 */
#ifndef OSA_FASTPATH_H
#define OSA_FASTPATH_H

#include "internal.h"

/* Slow paths (malloc.c).  `api` names the public call in reports. */
void *osa_alloc_api(size_t size, enum osa_api api);    /* 0 -> NULL */
void *osa_calloc_api(size_t total, enum osa_api api);  /* 0 -> NULL */
void osa_free_api(void *ptr, enum osa_api api);        /* ptr != NULL */
void *osa_realloc_api(void *ptr, size_t size, enum osa_api api);
/* align: a power of two; size 0 -> NULL. */
void *osa_aligned_api(size_t align, size_t size, enum osa_api api);
size_t osa_usable_api(void *ptr, enum osa_api api);

/* A block of at least `size` bytes from the thread cache, or NULL. */
OSA_INLINE void *osa_cache_pop(size_t size, enum osa_api api)
{
	struct osa_tcache *tc = osa_tcache_self;
	if (OSA_LIKELY(size - 1 < OSA_CACHE_MAX_BLOCK - OSA_HDR && tc)) {
		size_t cls = (size + OSA_HDR + 15) >> 4;
		osa_block *b = tc->head[cls];
		if (OSA_LIKELY(b)) {
			uintptr_t *w = (uintptr_t *)(b + 1);
			uintptr_t enc = w[0];
			if (OSA_UNLIKELY(w[1] != osa_link_check(b, enc)))
				osa_fatal(api, OSA_E_FREE_LIST, w);
			tc->head[cls] = (osa_block *)(enc ^ osa_keys.link);
			w[1] = 0;
			osa_header_toggle_cached(b);
			__atomic_store_n(&tc->count[cls], tc->count[cls] - 1,
					 __ATOMIC_RELAXED);
			__atomic_store_n(&tc->nalloc, tc->nalloc + 1,
					 __ATOMIC_RELAXED);
			return w;
		}
	}
	return NULL;
}

/* Caches ptr (not NULL) when every check passes; false: take the slow
 * path. */
OSA_INLINE bool osa_cache_free(void *ptr)
{
	uintptr_t p = (uintptr_t)ptr;
	struct osa_tcache *tc = osa_tcache_self;
	if (OSA_UNLIKELY((p & (OSA_ALIGN - 1)) || !osa_pagemap_is_start(p) ||
			 !tc))
		return false;
	osa_block *b = osa_block_from_ptr(ptr);
	uintptr_t w = osa_load(&b->word);
	uintptr_t check = osa_load(&b->check);
	size_t size = w & ~OSA_FLAG_MASK;
	size_t cls = osa_tcache_class_of(tc, p, size);
	/* A cached block's check differs (double free), and PREV_* flags
	 * (not covered by the check) are verified under the heap lock: both
	 * take the slow path. */
	if (OSA_LIKELY(size <= OSA_CACHE_MAX_BLOCK &&
		       tc->count[cls] < tc->limit[cls] &&
		       check == osa_header_check(b, w) &&
		       (w & (OSA_STATE_MASK | OSA_PREV_MASK)) == OSA_USED &&
		       osa_header_next_of_used(
			   (osa_block *)(p - OSA_HDR + size)))) {
		osa_header_flip_cached(b, check); /* check is read already */
		osa_tcache_push_marked(tc, cls, b);
		if (OSA_UNLIKELY(!cls))
			osa_tcache_note_foreign(tc, size);
		osa_tcache_count_free(tc);
		return true;
	}
	return false;
}

#endif /* OSA_FASTPATH_H */
