/* malloc.c - the public entry points, initialisation and fork handling.
 *
 * Fast paths first: a small malloc pops the thread cache, a small free
 * validates the pointer (alignment, block-start map, keyed header of the block
 * and of its neighbour, not already cached) and pushes it.  Everything else
 * goes to the non-inlined slow paths, which take the heap lock or talk to the
 * mmap registry.  A pointer is validated before anything it points to is
 * read; misuse ends in osa_fatal with the name of the public call.
 */
#include "internal.h"
#include "fastpath.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int osa_initialised;
bool osa_on_valgrind;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

/* Fork: every lock, in a fixed order (init, heap, caches, large blocks),
 * is held across fork(); the parent releases them, the child makes them
 * new.  init_lock is among them, so that no fork can copy a half-done
 * initialisation into a child where the initialising thread is gone. */
__thread bool osa_forking __attribute__((tls_model("initial-exec")));

static void fork_prepare(void)
{
	pthread_mutex_lock(&init_lock);
	pthread_mutex_lock(&osa_heap_lock);
	osa_tcache_lock_all();
	osa_large_lock_all();
	osa_forking = true;
}

static void fork_parent(void)
{
	osa_forking = false;
	osa_large_unlock_all(false);
	osa_tcache_unlock_all(false);
	pthread_mutex_unlock(&osa_heap_lock);
	pthread_mutex_unlock(&init_lock);
}

static void fork_child(void)
{
	osa_forking = false;
	osa_large_unlock_all(true);
	osa_tcache_unlock_all(true);
	osa_heap_after_fork_child();
	pthread_mutex_init(&init_lock, NULL);
}

/* The handlers are registered when the library is loaded, before the
 * program can start threads, not at the first allocation: registered
 * there, other threads could allocate (and hold the heap lock) before the
 * handlers existed, and a fork in that window gave a child whose first
 * allocation deadlocked.  Should something allocate before this
 * constructor runs (another constructor, through the drop-in malloc), the
 * initialisation registers them, once.  pthread_atfork may allocate: never
 * called with init_lock held. */
static int atfork_registered;

static void register_atfork(void)
{
	if (!__atomic_exchange_n(&atfork_registered, 1, __ATOMIC_ACQ_REL))
		pthread_atfork(fork_prepare, fork_parent, fork_child);
}

__attribute__((constructor)) static void osa_register_atfork_at_load(void)
{
	register_atfork();
}

/* stats=1 prints at exit to a duplicate of fd 2 taken at initialisation:
 * by the time exit handlers run, many programs have closed stderr already
 * (gnulib's close_stdout in coreutils, xz).  The duplicate is close-on-exec
 * and above the low descriptors the program uses; it is written to only if
 * it is still the same open file. */
static int stats_fd = -1;
static struct stat stats_fd_stat;

static void stats_fd_open(void)
{
	int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
	if (fd < 0)
		fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	if (fd >= 0 && fstat(fd, &stats_fd_stat) != 0) {
		close(fd);
		fd = -1;
	}
	stats_fd = fd;
}

static bool stats_fd_unchanged(void)
{
	struct stat st;
	int flags = fcntl(stats_fd, F_GETFD);
	return flags >= 0 && (flags & FD_CLOEXEC) && fstat(stats_fd, &st) == 0 &&
	       st.st_dev == stats_fd_stat.st_dev &&
	       st.st_ino == stats_fd_stat.st_ino;
}

static void print_stats_at_exit(void)
{
	if (stats_fd < 0) {
		os_malloc_stats(stderr);
		return;
	}
	if (!stats_fd_unchanged())
		return;
	int fd = stats_fd;
	stats_fd = -1;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return;
	}
	os_malloc_stats(f);
	fclose(f);
}

void osa_init_slow(void)
{
	int saved = errno; /* what initialisation tries is not the caller's */
	osa_lock(&init_lock);
	if (!osa_initialised) {
		osa_keys_init();
		osa_options_init();
		osa_on_valgrind = OSA_VG_DETECT();
		osa_tcache_init();
		__atomic_store_n(&osa_initialised, 1, __ATOMIC_RELEASE);
		/* This may allocate (through the C library): after the flag. */
		if (osa_opt.stats) {
			stats_fd_open();
			atexit(print_stats_at_exit);
		}
	}
	osa_unlock(&init_lock);
	register_atfork(); /* done already unless before the constructor */
	errno = saved;
}

/* ---- strict mode (check=2): canary after the requested size ---- */

enum { STRICT_EXTRA = 2 * sizeof(uintptr_t) }; /* canary + stored size */

static bool strict(void)
{
	return osa_opt.check >= 2;
}

static uint64_t canary_value(const void *p)
{
	return osa_mix((uintptr_t)p ^ osa_keys.canary) & ~(uint64_t)0xff;
}

static uintptr_t *strict_size_word(const osa_block *b)
{
	return (uintptr_t *)((uintptr_t)b + osa_block_size(b)) - 1;
}

static void strict_arm(osa_block *b, size_t size)
{
	void *p = osa_block_to_ptr(b);
	uint64_t c = canary_value(p);
	OSA_VG_DEFINED((char *)p + size, sizeof c);
	OSA_VG_DEFINED(strict_size_word(b), sizeof(uintptr_t));
	memcpy((char *)p + size, &c, sizeof c);
	*strict_size_word(b) = size;
}

/* The requested size recorded in b; aborts if the canary is damaged. */
static size_t strict_verify(const osa_block *b)
{
	void *p = osa_block_to_ptr(b);
	size_t size = *strict_size_word(b);
	uint64_t c;
	if (size > osa_block_size(b) - OSA_HDR - STRICT_EXTRA)
		osa_fatal(osa_current_api, OSA_E_CANARY, p);
	memcpy(&c, (char *)p + size, sizeof c);
	if (c != canary_value(p))
		osa_fatal(osa_current_api, OSA_E_CANARY, p);
	return size;
}

static size_t heap_block_for(size_t size)
{
	return osa_request_to_block(size + (strict() ? STRICT_EXTRA : 0));
}

/* ---- validation of pointers handed back to us ---- */

enum kind { HEAP, LARGE };

OSA_COLD OSA_NORETURN static void bad_pointer(const void *ptr)
{
	enum osa_cause cause = osa_large_classify_miss(ptr);
	if (cause == OSA_E_NOT_OURS) {
		osa_lock(&osa_heap_lock);
		bool inside = osa_heap_contains((uintptr_t)ptr);
		osa_unlock(&osa_heap_lock);
		if (inside)
			cause = OSA_E_NOT_START;
	}
	osa_fatal(osa_current_api, cause, ptr);
}

/* Finds the block behind ptr or aborts.  For a heap block, returns with the
 * heap lock held and the block verified (USED, not cached, neighbour ok). */
static enum kind resolve(const void *ptr, osa_block **out)
{
	uintptr_t p = (uintptr_t)ptr;
	if (p & (OSA_ALIGN - 1))
		osa_fatal(osa_current_api, OSA_E_MISALIGNED, ptr);
	/* The block address only once ptr is known to start a block: for a
	 * wild pointer such as 0x10, ptr - 16 is undefined (null result). */
	osa_block *b;
	if (osa_pagemap_is_start(p)) {
		b = osa_block_from_ptr(ptr);
		osa_heap_lock_acquire();
		if (osa_header_cached(b))
			osa_fatal(osa_current_api, OSA_E_DOUBLE_FREE, ptr);
		osa_heap_verify_used(b);
		*out = b;
		return HEAP;
	}
	b = osa_large_find(ptr);
	if (!b)
		bad_pointer(ptr);
	if (!osa_header_ok(b) || osa_block_state(b) != OSA_USED)
		osa_fatal(osa_current_api, OSA_E_HEADER, ptr);
	*out = b;
	return LARGE;
}

/* ---- allocation ---- */

static size_t usable_heap(const osa_block *b);

/* Usable size of a block just allocated (no misuse checks needed). */
static size_t usable_of_new(void *p)
{
	osa_block *b = osa_block_from_ptr(p);
	if (osa_pagemap_is_start((uintptr_t)p))
		return usable_heap(b);
	return osa_large_usable(b);
}

/* A heap block for `size` bytes; with `grow`, the heap may grow for it,
 * else only memory it holds free serves (errno unchanged on failure). */
static void *from_heap(size_t size, size_t *dirty, bool grow)
{
	size_t block = heap_block_for(size);
	osa_heap_lock_acquire();
	osa_block *b = grow ? osa_heap_alloc(block, dirty)
			    : osa_heap_alloc_free_only(block, dirty);
	if (b && strict())
		strict_arm(b, size);
	osa_heap_lock_release();
	return b ? osa_block_to_ptr(b) : NULL;
}

/* Allocates size (1..OSA_MAX_REQUEST) bytes; *dirty is how many leading
 * payload bytes may be non-zero. */
OSA_COLD static void *alloc_slow(size_t size, size_t *dirty)
{
	osa_ensure_init();
	if (size >= osa_opt.mmap_threshold) {
		*dirty = 0;
		int saved = errno;
		void *p = osa_large_alloc(size, OSA_ALIGN);
		/* The system refused a mapping (RLIMIT_AS...): memory the heap
		 * holds free already may serve it, as glibc's arena does, but
		 * never more than an address space holds. */
		if (!p && size < (size_t)1 << 47 &&
		    (p = from_heap(size, dirty, false)) != NULL)
			errno = saved;
		if (p)
			osa_stats_count(true);
		return p;
	}
	size_t block = heap_block_for(size);
	struct osa_tcache *tc = osa_tcache_self;
	if (!tc) {
		int saved = errno; /* no cache is no failure: the heap serves */
		tc = osa_tcache_create();
		errno = saved;
	}
	if (tc && block <= OSA_CACHE_MAX_BLOCK && tc->limit[block >> 4]) {
		*dirty = block - OSA_HDR;
		/* Callers without the inline fast path (realloc, aligned
		 * allocation) come here with blocks still cached. */
		void *p = osa_cache_pop(size, osa_current_api);
		if (p)
			return p;
		p = osa_tcache_refill(tc, block >> 4);
		if (p)
			__atomic_store_n(&tc->nalloc, tc->nalloc + 1,
					 __ATOMIC_RELAXED);
		return p;
	}
	void *p = from_heap(size, dirty, true);
	if (p)
		osa_stats_count(true);
	return p;
}

static void *alloc_common(size_t size, enum osa_api api, size_t *dirty)
{
	if (OSA_UNLIKELY(size == 0))
		return NULL;
	if (OSA_UNLIKELY(size > OSA_MAX_REQUEST)) {
		errno = ENOMEM;
		return NULL;
	}
	osa_current_api = api;
	void *p = alloc_slow(size, dirty);
	if (p && OSA_UNLIKELY(osa_on_valgrind)) {
		size_t usable = usable_of_new(p);
		OSA_VG_MALLOC(p, usable);
		*dirty = usable; /* memcheck must see calloc's zeros written */
	}
	if (p && OSA_UNLIKELY(osa_opt.zero) && *dirty) {
		/* The whole usable size: a realloc may grow into it in place. */
		size_t usable = usable_of_new(p);
		memset(p, 0, *dirty < usable ? *dirty : usable);
		*dirty = 0;
	}
	return p;
}

void *osa_alloc_api(size_t size, enum osa_api api)
{
	size_t dirty;
	return alloc_common(size, api, &dirty);
}

/* Zeroed memory is asked for to be used: its page faults are taken in one
 * call.  Not the whole 2 MiB pages at the start of a big block (see
 * map_large): they fault once each, and a sparse user of them loses
 * nothing; only the last part, in small pages. */
static void prefault_zeroed(void *p, size_t total)
{
	uintptr_t end = (uintptr_t)p + total, from = (uintptr_t)p;
	if (total >= OSA_HUGE_PAGE && osa_opt.thp)
		from = end & ~(uintptr_t)(OSA_HUGE_PAGE - 1);
	osa_large_prefault((void *)from, end - from);
}

/* calloc after the fast path missed; total = nmemb * size, no overflow. */
void *osa_calloc_api(size_t total, enum osa_api api)
{
	size_t dirty;
	void *p = alloc_common(total, api, &dirty);
	if (p && dirty)
		memset(p, 0, dirty < total ? dirty : total);
	else if (p && total >= osa_opt.mmap_threshold)
		prefault_zeroed(p, total);
	return p;
}

OSALLOC_API void *os_malloc(size_t size)
{
	void *p = osa_cache_pop(size, OSA_API_MALLOC);
	if (OSA_LIKELY(p != NULL))
		return p;
	return osa_alloc_api(size, OSA_API_MALLOC);
}

OSALLOC_API void *os_calloc(size_t nmemb, size_t size)
{
	size_t total;
	if (OSA_UNLIKELY(__builtin_mul_overflow(nmemb, size, &total))) {
		errno = ENOMEM;
		return NULL;
	}
	void *p = osa_cache_pop(total, OSA_API_CALLOC);
	if (p)
		return memset(p, 0, total);
	return osa_calloc_api(total, OSA_API_CALLOC);
}

/* ---- free ---- */

static void release(const void *ptr, enum kind kind, osa_block *b)
{
	osa_stats_count(false);
	OSA_VG_FREE(ptr);
	if (kind == LARGE) {
		osa_large_free(b);
		return;
	}
	if (strict())
		strict_verify(b);
	osa_heap_free(b);
	osa_heap_lock_release();
}

/* A thread's first call is a free (it took over another thread's data, as
 * a server's connection thread does): it adopts a parked cache of the
 * block's arena, if there is one, so that the memory keeps to the threads
 * that use it.  A cache that went to another thread would mix two
 * threads' blocks in one arena, line by line. */
static __thread bool adoption_tried
	__attribute__((tls_model("initial-exec")));

OSA_COLD static void adopt_for_free(const void *ptr)
{
	if (adoption_tried || !osa_tcache_possible())
		return;
	adoption_tried = true; /* once: a thread that only frees pays it once */
	osa_heap_lock_acquire();
	unsigned arena = osa_heap_arena_of((uintptr_t)ptr);
	osa_heap_lock_release();
	if (arena)
		osa_tcache_adopt_arena(arena);
}

void osa_free_api(void *ptr, enum osa_api api)
{
	osa_ensure_init();
	osa_current_api = api;
	if (OSA_UNLIKELY(!osa_tcache_self))
		adopt_for_free(ptr);
	osa_block *b;
	enum kind kind = resolve(ptr, &b);
	struct osa_tcache *tc = osa_tcache_self;
	size_t size = osa_block_size(b);
	/* A block after a free one goes back to the heap and merges: cached,
	 * its PREV_* flags would send every later free of it here again. */
	if (kind == HEAP && tc && size <= OSA_CACHE_MAX_BLOCK &&
	    tc->limit[size >> 4] && !(osa_load(&b->word) & OSA_PREV_MASK)) {
		/* Keep this block; when the cache is full, make room. */
		size_t cls = osa_tcache_class_of(tc, (uintptr_t)ptr, size);
		osa_heap_lock_release();
		if (tc->count[cls] >= tc->limit[cls])
			osa_tcache_flush(tc, cls);
		osa_tcache_push(tc, cls, b);
		if (!cls)
			osa_tcache_note_foreign(tc, size);
		osa_tcache_count_free(tc);
		return;
	}
	release(ptr, kind, b);
}

OSALLOC_API void os_free(void *ptr)
{
	if (OSA_UNLIKELY(!ptr))
		return;
	if (OSA_LIKELY(osa_cache_free(ptr)))
		return;
	osa_free_api(ptr, OSA_API_FREE);
}

/* ---- realloc ---- */

static size_t usable_heap(const osa_block *b)
{
	return strict() ? strict_verify(b) : osa_block_size(b) - OSA_HDR;
}

/* Moves the contents to a new block of at least `size` (`room` bytes, if
 * that can be had); old freed.  NULL keeps old intact. */
static void *realloc_move(void *ptr, size_t old, size_t size, size_t room)
{
	size_t dirty;
	int saved = errno;
	void *n = alloc_common(room, osa_current_api, &dirty);
	if (!n && room > size) {
		errno = saved; /* the room was optional */
		n = alloc_common(size, osa_current_api, &dirty);
	}
	if (!n)
		return NULL;
	size_t keep = old < size ? old : size;
	if (size >= osa_opt.mmap_threshold)
		osa_large_prefault(n, keep); /* the copy writes these pages */
	memcpy(n, ptr, keep);
	osa_block *b;
	enum kind kind = resolve(ptr, &b);
	release(ptr, kind, b);
	return n;
}

/* How much a heap block that must move to grow gets: a quarter more, so
 * that a block grown in small steps (a string built by appending) moves
 * O(log n) times instead of at every step; osa_heap_resize keeps the
 * headroom.  Not past the mmap threshold, and not in strict mode or under
 * valgrind, where the usable size must be the requested one. */
static size_t heap_room(size_t size)
{
	size_t room = size + size / 4;
	if (strict() || osa_on_valgrind || room >= osa_opt.mmap_threshold)
		return size;
	return room;
}

/* zero=1: every byte of a block beyond what the program asked for reads
 * as zero (alloc_common zeroes the whole usable size), so that the part a
 * later realloc adds in place does too.  After a resize in place, the
 * bytes from `from` (the smaller of the old usable size and the new
 * request) to the new usable size `usable` are cleared. */
static void zero_beyond(void *ptr, size_t from, size_t usable)
{
	if (usable > from)
		memset((char *)ptr + from, 0, usable - from);
}

static void *realloc_heap(void *ptr, osa_block *b, size_t size)
{
	int saved = errno; /* a growth that succeeds after a refusal keeps it */
	size_t old = usable_heap(b), need = heap_block_for(size);
	size_t bsize = osa_block_size(b);
	bool shrink = need <= bsize; /* always succeeds in place */
	if (shrink && osa_on_valgrind) {
		/* Tell memcheck first: the tail becomes no-access, and the
		 * allocator then writes its metadata there. */
		size_t kept = osa_heap_shrink_keeps(bsize, need) ? bsize : need;
		OSA_VG_RESIZE(ptr, old, strict() ? size : kept - OSA_HDR);
	}
	if (size < osa_opt.mmap_threshold && osa_heap_resize(b, need)) {
		if (strict())
			strict_arm(b, size);
		size_t now = usable_heap(b);
		if (!shrink)
			OSA_VG_RESIZE(ptr, old, now);
		if (OSA_UNLIKELY(osa_opt.zero))
			zero_beyond(ptr, old < size ? old : size, now);
		osa_heap_lock_release();
		errno = saved;
		return ptr;
	}
	osa_heap_lock_release();
	errno = saved;
	return realloc_move(ptr, old, size, heap_room(size));
}

static void *realloc_large(void *ptr, osa_block *b, size_t size)
{
	size_t old = osa_large_usable(b);
	void *n;
	/* Under valgrind, moving by mremap would hide the block's history. */
	if (size >= osa_opt.mmap_threshold && !osa_on_valgrind) {
		n = osa_large_realloc(b, size);
	} else {
		int saved = errno;
		n = realloc_move(ptr, old, size, size);
		if (!n && size <= old) { /* shrinking never fails: keep it */
			errno = saved;
			n = ptr;
		}
	}
	/* Grown in place, the pages added are new (zero); shrunk in place,
	 * the tail kept must read as zeros when it grows back. */
	if (n == ptr && size < old && OSA_UNLIKELY(osa_opt.zero))
		zero_beyond(ptr, size, osa_large_usable(b));
	return n;
}

void *osa_realloc_api(void *ptr, size_t size, enum osa_api api)
{
	size_t dirty;
	if (!ptr)
		return alloc_common(size, api, &dirty);
	if (size == 0) {
		osa_free_api(ptr, api);
		return NULL;
	}
	osa_ensure_init();
	osa_current_api = api;
	osa_block *b;
	enum kind kind = resolve(ptr, &b);
	if (size > OSA_MAX_REQUEST) {
		if (kind == HEAP)
			osa_heap_lock_release();
		errno = ENOMEM;
		return NULL;
	}
	if (kind == HEAP)
		return realloc_heap(ptr, b, size);
	return realloc_large(ptr, b, size);
}

OSALLOC_API void *os_realloc(void *ptr, size_t size)
{
	return osa_realloc_api(ptr, size, OSA_API_REALLOC);
}

OSALLOC_API void *os_reallocarray(void *ptr, size_t nmemb, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(nmemb, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return osa_realloc_api(ptr, total, OSA_API_REALLOCARRAY);
}

/* ---- aligned allocation ---- */

void *osa_aligned_api(size_t align, size_t size, enum osa_api api)
{
	size_t dirty;
	if (align <= OSA_ALIGN)
		return alloc_common(size, api, &dirty);
	if (size == 0)
		return NULL;
	if (size > OSA_MAX_REQUEST || align > OSA_MAX_REQUEST - size) {
		errno = ENOMEM;
		return NULL;
	}
	osa_ensure_init();
	osa_current_api = api;
	void *p;
	if (size + align >= osa_opt.mmap_threshold) {
		p = osa_large_alloc(size, align);
	} else {
		osa_heap_lock_acquire();
		osa_block *b = osa_heap_alloc_aligned(heap_block_for(size), align);
		if (b && strict())
			strict_arm(b, size);
		osa_heap_lock_release();
		p = b ? osa_block_to_ptr(b) : NULL;
	}
	if (p) {
		osa_stats_count(true);
		OSA_VG_MALLOC(p, usable_of_new(p));
		/* As alloc_common: the whole usable size of a heap block (a
		 * realloc may grow into it); a new mapping is zero already. */
		if (osa_opt.zero && osa_pagemap_is_start((uintptr_t)p))
			memset(p, 0, usable_of_new(p));
	}
	return p;
}

static bool power_of_two(size_t x)
{
	return x && !(x & (x - 1));
}

OSALLOC_API void *os_aligned_alloc(size_t alignment, size_t size)
{
	if (!power_of_two(alignment)) {
		errno = EINVAL;
		return NULL;
	}
	return osa_aligned_api(alignment, size, OSA_API_ALIGNED_ALLOC);
}

OSALLOC_API int os_posix_memalign(void **memptr, size_t alignment, size_t size)
{
	if (!power_of_two(alignment) || alignment % sizeof(void *))
		return EINVAL;
	if (size == 0) {
		*memptr = NULL;
		return 0;
	}
	int saved = errno;
	void *p = osa_aligned_api(alignment, size, OSA_API_POSIX_MEMALIGN);
	if (!p) {
		int err = errno;
		errno = saved;
		return err;
	}
	*memptr = p;
	return 0;
}

/* ---- queries ---- */

size_t osa_usable_api(void *ptr, enum osa_api api)
{
	if (!ptr)
		return 0;
	osa_ensure_init();
	osa_current_api = api;
	osa_block *b;
	if (resolve(ptr, &b) == LARGE)
		return osa_large_usable(b);
	size_t n = usable_heap(b);
	osa_heap_lock_release();
	return n;
}

OSALLOC_API size_t os_malloc_usable_size(void *ptr)
{
	return osa_usable_api(ptr, OSA_API_USABLE_SIZE);
}

OSALLOC_API int os_heap_check(void)
{
	osa_ensure_init();
	osa_current_api = OSA_API_HEAP_CHECK;
	osa_heap_lock_acquire();
	int rc = osa_heap_check_all();
	if (rc == 0)
		rc = osa_tcache_check_self();
	osa_heap_lock_release();
	if (rc == 0)
		rc = osa_large_check_all();
	return rc;
}
