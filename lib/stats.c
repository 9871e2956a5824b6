/* stats.c - os_mallinfo and os_malloc_stats: gathers the counters that the
 * heap, the mmap registry and the thread caches keep, and prints them.
 * Counters of other threads' caches are read with relaxed atomics: exact
 * when nobody allocates concurrently, approximate (never torn) otherwise.
 */
#include "internal.h"

#include <string.h>

size_t osa_peak_in_use;
static unsigned long long slow_allocs, slow_frees;

void osa_stats_note_in_use(size_t in_use)
{
	size_t peak = __atomic_load_n(&osa_peak_in_use, __ATOMIC_RELAXED);
	while (in_use > peak &&
	       !__atomic_compare_exchange_n(&osa_peak_in_use, &peak, in_use,
					    true, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED))
		;
}

void osa_stats_count(bool alloc)
{
	/* The thread's cache keeps its own counters (no atomic needed). */
	if (osa_tcache_count(alloc))
		return;
	__atomic_add_fetch(alloc ? &slow_allocs : &slow_frees, 1,
			   __ATOMIC_RELAXED);
}

OSALLOC_API void os_mallinfo(struct os_mallinfo *info)
{
	memset(info, 0, sizeof *info);
	osa_ensure_init();
	/* The caches are read under the heap lock too: refills and drains
	 * (which move blocks between the heap and a cache) cannot fall
	 * between the two reads, so the cached bytes are part of the heap's
	 * used bytes and in_use cannot wrap below zero (which the peak would
	 * keep for ever).  Heap lock before list_lock, as at fork. */
	osa_heap_lock_acquire();
	osa_heap_stats(info);
	osa_tcache_stats(info);
	osa_heap_lock_release();
	osa_large_stats(info);
	assert(info->cached_bytes <= info->in_use_bytes &&
	       "cached blocks are counted as used by the heap");
	info->in_use_bytes -= info->cached_bytes;
	info->alloc_calls += __atomic_load_n(&slow_allocs, __ATOMIC_RELAXED);
	info->free_calls += __atomic_load_n(&slow_frees, __ATOMIC_RELAXED);
	osa_stats_note_in_use(info->in_use_bytes);
	info->peak_in_use_bytes =
	    __atomic_load_n(&osa_peak_in_use, __ATOMIC_RELAXED);
}

OSALLOC_API int os_malloc_stats(FILE *stream)
{
	struct os_mallinfo m;
	os_mallinfo(&m);
	if (!stream)
		stream = stderr;
	int n = fprintf(stream,
			"osalloc statistics\n"
			"  heap bytes          %zu in %zu segment(s)\n"
			"  heap free bytes     %zu\n"
			"  thread-cached bytes %zu\n"
			"  in use bytes        %zu (peak %zu)\n"
			"  mmap blocks         %zu (%zu bytes)\n"
			"  allocations         %llu\n"
			"  frees               %llu\n",
			m.heap_bytes, m.heap_segments, m.heap_free_bytes,
			m.cached_bytes, m.in_use_bytes, m.peak_in_use_bytes,
			m.mmap_count, m.mmap_bytes, m.alloc_calls,
			m.free_calls);
	if (n < 0 || fflush(stream) != 0)
		return -1;
	return 0;
}
