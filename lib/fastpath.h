/* fastpath.h - the inlined fast paths shared by the os_* entry points
 * (malloc.c) and the drop-in malloc (dropin.c).
 *
 * A small allocation pops the calling thread's cache; a small free checks
 * the pointer (aligned, a block start in the pagemap, its keyed header USED
 * and not cached, its PREV_* flags true, its neighbour's header intact) and
 * pushes it.  Any
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

/* b, a used block, has PREV_* flags (not covered by its check): is the
 * block before it a free block of the flagged size ending at b?  Reads only
 * metadata written with atomics (pagemap words, headers), never the footer,
 * which is user data once that block is allocated by another thread.  The
 * scan is bounded: false (the slow path decides under the heap lock) when
 * the block before is larger than about 4 KiB or in another pagemap leaf. */
OSA_INLINE bool osa_prev_free_plausible(const osa_block *b, uintptr_t w)
{
	uintptr_t p = (uintptr_t)b + OSA_HDR, base = p & ~(((uintptr_t)1 << 30) - 1);
	const uint64_t *leaf =
	    __atomic_load_n(&osa_pagemap_l1[p >> 30], __ATOMIC_ACQUIRE);
	uintptr_t bit = (p - base) >> 4, wi = bit >> 6;
	uint64_t m = __atomic_load_n(&leaf[wi], __ATOMIC_RELAXED) &
		     (((uint64_t)1 << (bit & 63)) - 1);
	for (int k = 0; !m; k++) {
		if (k == 4 || wi == 0)
			return false;
		m = __atomic_load_n(&leaf[--wi], __ATOMIC_RELAXED);
	}
	uintptr_t prev_bit = wi * 64 + 63 - (uintptr_t)__builtin_clzll(m);
	const osa_block *prev =
	    (const osa_block *)(base + (prev_bit << 4) - OSA_HDR);
	uintptr_t pw = osa_load(&prev->word), psize = p - OSA_HDR - (uintptr_t)prev;
	return osa_load(&prev->check) == osa_header_check(prev, pw) &&
	       (pw & ~OSA_PREV_MASK) == (psize | OSA_FREE) &&
	       (w & OSA_PREV_MASK) ==
		   (OSA_PREV_FREE | (psize == OSA_MIN_BLOCK ? OSA_PREV_MIN : 0));
}

/* Caches ptr (not NULL) when every check passes; false: take the slow
 * path. */
OSA_INLINE bool osa_cache_free(void *ptr)
{
	uintptr_t p = (uintptr_t)ptr;
	struct osa_tcache *tc = osa_tcache_self;
	if (OSA_UNLIKELY((p & (OSA_ALIGN - 1)) || !osa_pagemap_is_start(p)))
		return false;
	osa_block *b = osa_block_from_ptr(ptr);
	uintptr_t w = osa_load(&b->word);
	size_t size = w & ~OSA_FLAG_MASK;
	size_t cls = size >> 4;
	/* A cached block's check differs (double free: slow path); PREV_*
	 * flags, not covered by the check, must describe the block before. */
	if (OSA_LIKELY(size <= OSA_CACHE_MAX_BLOCK && tc &&
		       tc->count[cls] < tc->limit[cls] &&
		       osa_load(&b->check) == osa_header_check(b, w) &&
		       (w & OSA_STATE_MASK) == OSA_USED &&
		       osa_header_next_of_used(
			   (osa_block *)(p - OSA_HDR + size)) &&
		       (!(w & OSA_PREV_MASK) || osa_prev_free_plausible(b, w)))) {
		osa_tcache_push(tc, cls, b);
		osa_tcache_count_free(tc);
		return true;
	}
	return false;
}

#endif /* OSA_FASTPATH_H */
