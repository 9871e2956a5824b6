/* pagemap.c - the out-of-band map of heap block starts.
 *
 * One bit per 16-byte granule of the address space, set exactly when a heap
 * block's payload starts there.  free() consults it before it reads anything
 * the pointer points to, so a pointer that is not a live block start (stack,
 * foreign, interior, absorbed by a merge) is recognised without touching it.
 * Two levels: a static table indexed by 1 GiB region, and leaves of 2^26 bits
 * (8 MiB of address space, paged in only where used).  The first leaf is
 * static so that the first allocation needs no mapping of its own.  Leaves are
 * never freed.  Bits change only under the heap lock (so a plain
 * read-modify-write is enough); lock-free readers use relaxed loads.
 */
#include "internal.h"

enum {
	LEAF_WORDS = (1u << 26) / 64, /* 2^26 granules of 16 B = 1 GiB */
};

uint64_t *osa_pagemap_l1[1u << 17];
static uint64_t first_leaf[LEAF_WORDS];
static bool first_leaf_used;

static uint64_t *leaf_for(uintptr_t ptr)
{
	return __atomic_load_n(&osa_pagemap_l1[ptr >> 30], __ATOMIC_ACQUIRE);
}

/* Makes sure a leaf exists for every region of [base, end).  Heap lock
 * held.  False when a leaf could not be mapped (ENOMEM). */
bool osa_pagemap_reserve(uintptr_t base, uintptr_t end)
{
	assert(end > base && (end - 1) >> 47 == 0);
	for (uintptr_t r = base >> 30; r <= (end - 1) >> 30; r++) {
		if (osa_pagemap_l1[r])
			continue;
		uint64_t *leaf;
		if (!first_leaf_used) {
			first_leaf_used = true;
			leaf = first_leaf;
		} else {
			leaf = osa_sys_mmap(sizeof first_leaf);
			if (!leaf)
				return false;
		}
		__atomic_store_n(&osa_pagemap_l1[r], leaf, __ATOMIC_RELEASE);
	}
	return true;
}

void osa_pagemap_set(uintptr_t ptr)
{
	uint64_t *leaf = leaf_for(ptr);
	assert(leaf && "pagemap leaf reserved with the segment");
	uintptr_t bit = (ptr & ((1u << 30) - 1)) >> 4;
	uint64_t *w = &leaf[bit >> 6];
	__atomic_store_n(w, *w | (uint64_t)1 << (bit & 63), __ATOMIC_RELAXED);
}

void osa_pagemap_clear(uintptr_t ptr)
{
	uint64_t *leaf = leaf_for(ptr);
	assert(leaf && "pagemap leaf reserved with the segment");
	uintptr_t bit = (ptr & ((1u << 30) - 1)) >> 4;
	uint64_t *w = &leaf[bit >> 6];
	__atomic_store_n(w, *w & ~((uint64_t)1 << (bit & 63)), __ATOMIC_RELAXED);
}

uintptr_t osa_pagemap_find(uintptr_t lo, uintptr_t hi)
{
	while (lo < hi) {
		uintptr_t region_end = (lo | (((uintptr_t)1 << 30) - 1)) + 1;
		uintptr_t end = hi < region_end ? hi : region_end;
		const uint64_t *leaf = lo >> 47 ? NULL : leaf_for(lo);
		if (!leaf) {
			lo = end;
			continue;
		}
		uintptr_t bit = (lo & ((1u << 30) - 1)) >> 4;
		uintptr_t last = bit + ((end - lo) >> 4); /* exclusive */
		while (bit < last) {
			unsigned shift = bit & 63, n = 64 - shift;
			uint64_t w = __atomic_load_n(&leaf[bit >> 6],
						     __ATOMIC_RELAXED) >>
				     shift;
			if (last - bit < n) {
				n = (unsigned)(last - bit); /* < 64 */
				w &= ((uint64_t)1 << n) - 1;
			}
			if (w)
				return lo + ((uintptr_t)__builtin_ctzll(w) << 4);
			bit += n;
			lo += (uintptr_t)n << 4;
		}
		lo = end;
	}
	return hi;
}
