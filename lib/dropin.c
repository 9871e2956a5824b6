/* dropin.c - the standard allocation functions (malloc, free, ...) on top of
 * libosalloc: libosalloc-malloc.so, for LD_PRELOAD or linking in place of the
 * C library's malloc.
 *
 * Each function is the os_* fast path (lib/fastpath.h) with the C library's
 * semantics where they differ from the os_* API: a size of 0 gives a unique
 * pointer (a 1-byte request), memalign rounds a bad alignment up, and so on.
 * Reports of misuse name the standard call ("osalloc: free(): double free").
 * Only the functions listed in lib/dropin.map are exported, unversioned, so
 * that they interpose the C library's versioned malloc@GLIBC_2.2.5 and
 * friends (see the map for why).
 */
#include "fastpath.h"
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define OSA_EXPORT __attribute__((visibility("default")))

/* Prototypes: <stdlib.h> and <malloc.h> of older C libraries lack some of
 * these (free_sized is C23), and including <malloc.h> would pull in the
 * C library's own declarations with attributes that need not match.
 * Declaring them here keeps -Wmissing-prototypes quiet and checks the
 * definitions against one list. */
OSA_EXPORT void *malloc(size_t size);
OSA_EXPORT void free(void *ptr);
OSA_EXPORT void cfree(void *ptr);
OSA_EXPORT void *calloc(size_t nmemb, size_t size);
OSA_EXPORT void *realloc(void *ptr, size_t size);
OSA_EXPORT void *reallocarray(void *ptr, size_t nmemb, size_t size);
OSA_EXPORT int posix_memalign(void **memptr, size_t alignment, size_t size);
OSA_EXPORT void *aligned_alloc(size_t alignment, size_t size);
OSA_EXPORT void *memalign(size_t alignment, size_t size);
OSA_EXPORT void *valloc(size_t size);
OSA_EXPORT void *pvalloc(size_t size);
OSA_EXPORT size_t malloc_usable_size(void *ptr);
OSA_EXPORT void free_sized(void *ptr, size_t size);
OSA_EXPORT void free_aligned_sized(void *ptr, size_t alignment, size_t size);

/* ---- helpers ---- */

/* The C library gives every successful request of 0 bytes a unique pointer
 * that free accepts; libosalloc returns NULL for 0.  Ask for one byte. */
OSA_INLINE size_t nonzero(size_t size)
{
	return size ? size : 1;
}

OSA_INLINE bool power_of_two(size_t x)
{
	return x && !(x & (x - 1));
}

OSA_INLINE void *std_malloc(size_t size, enum osa_api api)
{
	void *p = osa_cache_pop(size, api);
	if (OSA_LIKELY(p != NULL))
		return p;
	return osa_alloc_api(nonzero(size), api);
}

OSA_INLINE void std_free(void *ptr, enum osa_api api)
{
	if (OSA_UNLIKELY(!ptr))
		return;
	if (OSA_LIKELY(osa_cache_free(ptr)))
		return;
	/* The C library's free keeps errno (POSIX.1-2024): so do we, whatever
	 * the slow path does (munmap). */
	int saved = errno;
	osa_free_api(ptr, api);
	errno = saved;
}

/* Aligned allocation for an alignment that is a power of two. */
static void *std_aligned(size_t align, size_t size, enum osa_api api)
{
	if (align <= OSA_ALIGN)
		return std_malloc(size, api);
	return osa_aligned_api(align, nonzero(size), api);
}

static size_t page_size(void)
{
	static size_t cached;
	size_t p = __atomic_load_n(&cached, __ATOMIC_RELAXED);
	if (OSA_UNLIKELY(p == 0)) {
		long v = sysconf(_SC_PAGESIZE);
		p = v > 0 && power_of_two((size_t)v) ? (size_t)v : OSA_PAGE;
		__atomic_store_n(&cached, p, __ATOMIC_RELAXED);
	}
	return p;
}

/* ---- the standard functions ---- */

void *malloc(size_t size)
{
	return std_malloc(size, OSA_API_STD_MALLOC);
}

void free(void *ptr)
{
	std_free(ptr, OSA_API_STD_FREE);
}

/* The C library still exports cfree (a free) for programs linked against
 * versions before 2.26: without this one, their blocks would reach its
 * free.  Reported as free(). */
void cfree(void *ptr)
{
	std_free(ptr, OSA_API_STD_FREE);
}

/* C23: size must be the size asked for; libosalloc finds the block from
 * the pointer, so a plain free (misuse is still reported, as free_sized). */
void free_sized(void *ptr, size_t size)
{
	(void)size;
	std_free(ptr, OSA_API_STD_FREE_SIZED);
}

void free_aligned_sized(void *ptr, size_t alignment, size_t size)
{
	(void)alignment;
	(void)size;
	std_free(ptr, OSA_API_STD_FREE_ALIGNED_SIZED);
}

void *calloc(size_t nmemb, size_t size)
{
	size_t total;
	if (OSA_UNLIKELY(__builtin_mul_overflow(nmemb, size, &total))) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = osa_cache_pop(total, OSA_API_STD_CALLOC);
	if (OSA_LIKELY(p != NULL))
		return memset(p, 0, total);
	return osa_calloc_api(nonzero(total), OSA_API_STD_CALLOC);
}

/* realloc(NULL, n) is malloc(n), 0 included; realloc(p, 0) frees p and
 * returns NULL, as the GNU C library does (C23 leaves it undefined). */
void *realloc(void *ptr, size_t size)
{
	if (!ptr)
		return std_malloc(size, OSA_API_STD_REALLOC);
	if (size == 0) {
		std_free(ptr, OSA_API_STD_REALLOC);
		return NULL;
	}
	return osa_realloc_api(ptr, size, OSA_API_STD_REALLOC);
}

void *reallocarray(void *ptr, size_t nmemb, size_t size)
{
	size_t total;
	if (OSA_UNLIKELY(__builtin_mul_overflow(nmemb, size, &total))) {
		errno = ENOMEM;
		return NULL;
	}
	if (!ptr)
		return std_malloc(total, OSA_API_STD_REALLOCARRAY);
	if (total == 0) {
		std_free(ptr, OSA_API_STD_REALLOCARRAY);
		return NULL;
	}
	return osa_realloc_api(ptr, total, OSA_API_STD_REALLOCARRAY);
}

/* POSIX: EINVAL unless alignment is a power of two multiple of
 * sizeof(void *); ENOMEM; *memptr is set only on success, errno is kept. */
int posix_memalign(void **memptr, size_t alignment, size_t size)
{
	if (!power_of_two(alignment) || alignment % sizeof(void *))
		return EINVAL;
	int saved = errno;
	void *p = std_aligned(alignment, size, OSA_API_STD_POSIX_MEMALIGN);
	if (!p) {
		int err = errno;
		errno = saved;
		return err ? err : ENOMEM;
	}
	*memptr = p;
	return 0;
}

/* C11/C17: the alignment must be a power of two (NULL with EINVAL
 * otherwise, as glibc 2.38 and later do); any size, 0 included. */
void *aligned_alloc(size_t alignment, size_t size)
{
	if (!power_of_two(alignment)) {
		errno = EINVAL;
		return NULL;
	}
	return std_aligned(alignment, size, OSA_API_STD_ALIGNED_ALLOC);
}

/* As the GNU C library: an alignment that is not a power of two is rounded
 * up to the next one; above SIZE_MAX / 2 + 1 there is none: EINVAL. */
void *memalign(size_t alignment, size_t size)
{
	if (alignment > SIZE_MAX / 2 + 1) {
		errno = EINVAL;
		return NULL;
	}
	if (alignment > OSA_ALIGN && !power_of_two(alignment))
		alignment = (size_t)1 << (64 - __builtin_clzll(alignment));
	return std_aligned(alignment, size, OSA_API_STD_MEMALIGN);
}

void *valloc(size_t size)
{
	return std_aligned(page_size(), size, OSA_API_STD_VALLOC);
}

/* Page aligned, and the size rounded up to whole pages (0 -> one page). */
void *pvalloc(size_t size)
{
	size_t page = page_size();
	size = nonzero(size);
	if (size > SIZE_MAX - (page - 1)) {
		errno = ENOMEM;
		return NULL;
	}
	return std_aligned(page, (size + page - 1) & ~(page - 1),
	                   OSA_API_STD_PVALLOC);
}

size_t malloc_usable_size(void *ptr)
{
	return osa_usable_api(ptr, OSA_API_STD_USABLE_SIZE);
}
