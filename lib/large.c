/* large.c - blocks at or above the mmap threshold, each with its own mapping.
 *
 * Owns the registry of live mappings: an open-addressing hash table keyed by
 * the pointer handed out, so that free() knows a large block exactly, in O(1),
 * without reading memory the pointer points to.  A short ring remembers
 * recently unmapped pointers, only to name a double free precisely.  The
 * mapping is [base, base + length); the block header sits just before the
 * pointer (word = length | USED, keyed check as for heap blocks).
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

struct entry {
	uintptr_t ptr; /* 0: empty slot */
	uintptr_t base;
	size_t length;
};

enum {
	STATIC_SLOTS = 256, /* first table: no mapping needed */
	RING = 64,
};

static pthread_mutex_t large_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry static_table[STATIC_SLOTS];
static struct {
	struct entry *table;
	size_t slots, used; /* slots is a power of two */
	/* Entries out of the table while a realloc moves their mapping: the
	 * table keeps room for them, so that putting one back cannot fail,
	 * whatever other threads registered meanwhile. */
	size_t pending;
	size_t bytes;
	uintptr_t ring[RING];
	unsigned ring_at;
} R = {static_table, STATIC_SLOTS, 0, 0, 0, {0}, 0};

size_t osa_large_bytes(void)
{
	return __atomic_load_n(&R.bytes, __ATOMIC_RELAXED);
}

static size_t slot_of(uintptr_t ptr, size_t slots)
{
	/* Fibonacci hashing: the product's top bits depend on every bit. */
	return (size_t)(osa_mix(ptr) >> (64 - __builtin_ctzll(slots)));
}

static long find(uintptr_t ptr)
{
	for (size_t i = slot_of(ptr, R.slots);; i = (i + 1) & (R.slots - 1)) {
		if (R.table[i].ptr == ptr)
			return (long)i;
		if (R.table[i].ptr == 0)
			return -1;
	}
}

static void put(struct entry *table, size_t slots, const struct entry *e)
{
	size_t i = slot_of(e->ptr, slots);
	while (table[i].ptr)
		i = (i + 1) & (slots - 1);
	table[i] = *e;
}

/* Doubles the table; false (nothing changed) when no memory. */
static bool grow(void)
{
	size_t slots = R.slots * 2;
	struct entry *t = osa_sys_mmap(slots * sizeof *t);
	if (!t)
		return false;
	for (size_t i = 0; i < R.slots; i++)
		if (R.table[i].ptr)
			put(t, slots, &R.table[i]);
	if (R.table != static_table)
		osa_sys_munmap(R.table, R.slots * sizeof *t);
	R.table = t;
	R.slots = slots;
	return true;
}

/* Registers e; returning: e was taken out by take_entry(..., true), and its
 * room is kept.  Invariant: (used + pending) * 2 <= slots. */
static bool insert(const struct entry *e, bool returning)
{
	if (returning) {
		assert(R.pending > 0);
		R.pending--;
	} else if ((R.used + R.pending + 1) * 2 > R.slots && !grow()) {
		return false;
	}
	assert((R.used + R.pending + 1) * 2 <= R.slots);
	put(R.table, R.slots, e);
	R.used++;
	__atomic_store_n(&R.bytes, R.bytes + e->length, __ATOMIC_RELAXED);
	osa_stats_note_in_use(R.bytes + osa_heap_used_bytes());
	return true;
}

/* Backward-shift deletion keeps every probe sequence unbroken. */
static void remove_at(size_t i)
{
	__atomic_store_n(&R.bytes, R.bytes - R.table[i].length,
			 __ATOMIC_RELAXED);
	R.used--;
	size_t mask = R.slots - 1;
	for (size_t j = (i + 1) & mask; R.table[j].ptr; j = (j + 1) & mask) {
		size_t home = slot_of(R.table[j].ptr, R.slots);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			R.table[i] = R.table[j];
			i = j;
		}
	}
	R.table[i].ptr = 0;
}

static void remember_freed(uintptr_t ptr)
{
	R.ring[R.ring_at++ % RING] = ptr;
}

static osa_block *place_header(uintptr_t ptr, size_t length)
{
	osa_block *b = osa_block_from_ptr((void *)ptr);
	osa_header_set(b, length | OSA_USED);
	return b;
}

/* Maps *length bytes (whole pages) for a large block.  From 2 MiB on, the
 * mapping starts on a 2 MiB boundary and asks for transparent huge pages, so
 * that every whole 2 MiB of the block is one page and one fault instead of
 * 512.  Linux places a mapping that is a whole number of 2 MiB long on such a
 * boundary; the part past *length is unmapped at once, so the mapping is
 * exactly the block's and the rounding costs one munmap.  Should that unmap
 * fail, the mapping keeps the rounded length, and *length says so. */
static void *map_large(size_t *length)
{
	size_t len = *length, whole = osa_align_up(len, OSA_HUGE_PAGE);
	if (len < OSA_HUGE_PAGE || !osa_opt.thp)
		return osa_sys_mmap(len);
	int saved = errno;
	void *m = whole > len ? osa_sys_mmap(whole) : NULL;
	if (m && osa_sys_munmap((char *)m + len, whole - len) != 0)
		*length = whole;
	if (!m) /* a multiple of 2 MiB already, or the rounding did not fit */
		m = osa_sys_mmap(len);
	if (m) {
		osa_sys_madvise_hugepage(m, *length);
		errno = saved;
	}
	return m;
}

void *osa_large_alloc(size_t size, size_t align)
{
	if (align < OSA_ALIGN)
		align = OSA_ALIGN;
	size_t length = osa_align_up(size + OSA_HDR + (align - OSA_ALIGN),
				     OSA_PAGE);
	void *m = map_large(&length);
	if (!m) {
		errno = ENOMEM;
		return NULL;
	}
	uintptr_t ptr = osa_align_up((uintptr_t)m + OSA_HDR, align);
	struct entry e = {ptr, (uintptr_t)m, length};
	/* Header first: a registered block always has a valid header, even
	 * for a fork child taken between the two steps. */
	place_header(ptr, length);
	osa_lock(&large_lock);
	bool ok = insert(&e, false);
	osa_unlock(&large_lock);
	if (!ok) {
		osa_sys_munmap(m, length);
		errno = ENOMEM;
		return NULL;
	}
	return (void *)ptr;
}

void osa_large_prefault(void *ptr, size_t len)
{
	uintptr_t from = (uintptr_t)ptr & ~(uintptr_t)(OSA_PAGE - 1);
	uintptr_t to = osa_align_up((uintptr_t)ptr + len, OSA_PAGE);
	if (len > 0 && !osa_on_valgrind)
		osa_sys_madvise_populate((void *)from, to - from);
}

osa_block *osa_large_find(const void *ptr)
{
	osa_lock(&large_lock);
	long i = find((uintptr_t)ptr);
	osa_unlock(&large_lock);
	return i < 0 ? NULL : osa_block_from_ptr(ptr);
}

/* Unmaps, keeping errno.  A munmap can fail with ENOMEM (the kernel would
 * have to split a mapping and has too many): the range then stays mapped,
 * but its pages go back to the system, so only address space is lost.  Any
 * other failure means our state is wrong. */
static void unmap(void *base, size_t length)
{
	int saved = errno;
	if (osa_sys_munmap(base, length) != 0) {
		if (errno != ENOMEM)
			osa_fatal(osa_current_api, OSA_E_STATE, base);
		osa_sys_madvise_free(base, length);
	}
	errno = saved;
}

/* Takes ptr's entry out of the registry (aborts if it is not there);
 * returning: it will be put back with return_entry. */
static struct entry take_entry(uintptr_t ptr, bool returning)
{
	osa_lock(&large_lock);
	long i = find(ptr);
	if (i < 0) {
		osa_unlock(&large_lock);
		osa_fatal(osa_current_api, OSA_E_DOUBLE_FREE, (void *)ptr);
	}
	struct entry e = R.table[i];
	remove_at((size_t)i);
	R.pending += returning;
	osa_unlock(&large_lock);
	return e;
}

/* Puts an entry back (moved or not); cannot fail: its room was kept. */
static void return_entry(const struct entry *e)
{
	osa_lock(&large_lock);
	insert(e, true);
	osa_unlock(&large_lock);
}

void osa_large_free(osa_block *b)
{
	uintptr_t ptr = (uintptr_t)osa_block_to_ptr(b);
	struct entry e = take_entry(ptr, false);
	osa_lock(&large_lock);
	remember_freed(ptr);
	osa_unlock(&large_lock);
	unmap((void *)e.base, e.length);
}

void *osa_large_realloc(osa_block *b, size_t size)
{
	uintptr_t ptr = (uintptr_t)osa_block_to_ptr(b);
	struct entry e = take_entry(ptr, true);
	size_t offset = ptr - e.base;
	size_t length = osa_align_up(size + offset, OSA_PAGE);
	size_t exact = length;
	int saved = errno;
	if (length <= e.length && length + e.length / 2 > e.length) {
		return_entry(&e); /* shrinks by less than half: keep it */
		return (void *)ptr;
	}
	if (length > e.length) {
		/* Grow by a quarter at least, so that a block grown in small
		 * steps is remapped O(log n) times; untouched pages of the
		 * slack cost address space, not memory. */
		size_t step = osa_align_up(e.length / 4, OSA_PAGE);
		if (length - e.length < step && e.length + step > e.length)
			length = e.length + step;
	}
	/* The entry is out of the registry while mremap moves the mapping:
	 * another thread's new mapping may land on the vacated range and
	 * register the same pointer without clashing with ours. */
	void *m = osa_sys_mremap((void *)e.base, e.length, length);
	if (!m && length > exact) { /* the quarter more was optional */
		length = exact;
		m = osa_sys_mremap((void *)e.base, e.length, length);
		if (m)
			errno = saved;
	}
	if (!m) {
		return_entry(&e);
		errno = ENOMEM;
		return NULL;
	}
	if (osa_opt.thp && length >= OSA_HUGE_PAGE && e.length < OSA_HUGE_PAGE)
		osa_sys_madvise_hugepage(m, length);
	else if (length > e.length && length < OSA_HUGE_PAGE)
		/* The caller grows the block to fill it: fault the new pages
		 * it asked for in one call (not the slack beyond them). */
		osa_large_prefault((char *)m + e.length,
				   osa_align_up(offset + size, OSA_PAGE) -
					   e.length);
	struct entry n = {(uintptr_t)m + offset, (uintptr_t)m, length};
	place_header(n.ptr, length);
	return_entry(&n);
	return (void *)n.ptr;
}

size_t osa_large_usable(const osa_block *b)
{
	uintptr_t ptr = (uintptr_t)osa_block_to_ptr(b);
	osa_lock(&large_lock);
	long i = find(ptr);
	size_t n = i < 0 ? 0 : R.table[i].base + R.table[i].length - ptr;
	osa_unlock(&large_lock);
	return n;
}

enum osa_cause osa_large_classify_miss(const void *ptr)
{
	uintptr_t p = (uintptr_t)ptr;
	enum osa_cause cause = OSA_E_NOT_OURS;
	osa_lock(&large_lock);
	for (unsigned k = 0; k < RING; k++)
		if (R.ring[k] == p)
			cause = OSA_E_DOUBLE_FREE;
	for (size_t i = 0; i < R.slots && cause == OSA_E_NOT_OURS; i++)
		if (R.table[i].ptr && p >= R.table[i].base &&
		    p < R.table[i].base + R.table[i].length)
			cause = OSA_E_NOT_START;
	osa_unlock(&large_lock);
	return cause;
}

int osa_large_check_all(void)
{
	int rc = 0;
	size_t n = 0, bytes = 0;
	osa_lock(&large_lock);
	for (size_t i = 0; i < R.slots && rc == 0; i++) {
		const struct entry *e = &R.table[i];
		if (!e->ptr)
			continue;
		const osa_block *b = osa_block_from_ptr((void *)e->ptr);
		if (!osa_header_ok(b) || osa_block_state(b) != OSA_USED ||
		    osa_block_size(b) != e->length || e->ptr < e->base + OSA_HDR ||
		    e->ptr >= e->base + e->length) {
			osa_report(OSA_API_HEAP_CHECK, OSA_E_HEADER,
				   (void *)e->ptr);
			rc = -1;
		}
		n++;
		bytes += e->length;
	}
	if (rc == 0 && (n != R.used || bytes != R.bytes)) {
		osa_report(OSA_API_HEAP_CHECK, OSA_E_STATE, &R);
		rc = -1;
	}
	osa_unlock(&large_lock);
	return rc;
}

void osa_large_stats(struct os_mallinfo *info)
{
	osa_lock(&large_lock);
	info->mmap_count = R.used;
	info->mmap_bytes = R.bytes;
	info->in_use_bytes += R.bytes;
	osa_unlock(&large_lock);
}

void osa_large_lock_all(void)
{
	osa_lock(&large_lock);
}

void osa_large_unlock_all(bool child)
{
	if (child)
		pthread_mutex_init(&large_lock, NULL);
	else
		osa_unlock(&large_lock);
}
