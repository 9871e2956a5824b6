/* cache.c - per-thread caches of small blocks, in front of the locked heap.
 *
 * A thread keeps singly linked stacks of free blocks per 16-byte size class
 * (blocks up to OSA_CACHE_MAX_BLOCK).  The heap counts cached blocks as used.
 * Links are stored xor the link key, and the block's second payload word holds
 * a keyed check of the block address and the link: the check proves the link
 * unmodified before it is followed.  A cached block's header check carries the
 * `cached` key, so a second free is recognised from the header alone.  Refill
 * and flush move batches under one lock acquisition.  A block of another
 * arena (outside the cache's home window) goes to class 0 whatever its size,
 * and back to its arena in a batch; a refill first takes what other threads
 * returned to the cache's arena.  A consumer thread, whose frees are nearly
 * all of other arenas' blocks, shares for a while instead: it reuses them.
 * When a thread exits, its cache is parked, blocks and all, for the next
 * thread to adopt (within a bound): a thread whose first call is a free
 * takes one of that block's arena.  The fast paths live in fastpath.h; this
 * file has the slow ones.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

__thread struct osa_tcache *osa_tcache_self
    __attribute__((tls_model("initial-exec")));

/* Every live cache, for statistics and fork. */
static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct osa_tcache *all;
static unsigned long long dead_nalloc, dead_nfree;
static pthread_key_t exit_key;
static bool exit_key_ok;

/* Threads without a cache point here: every head is NULL and every limit 0,
 * so the fast paths always fall through to the heap. */
static struct osa_tcache no_cache;

enum { BATCH_BYTES = 8192,
       LIMIT_FOREIGN = 64 /* class 0: other arenas' blocks, any size */ };

/* A thread whose frees are nearly all of other arenas' blocks, a consumer
 * that producers hand blocks to, gains nothing from sending them home: each
 * block would cross between the cores twice, not once, and the producer
 * gets it back through the heap lock.  When SHARE_STREAK returns of class 0
 * in a row each came with at most SHARE_SLACK frees of its own blocks, the
 * cache shares: its home window becomes all of memory, so that it reuses
 * the blocks it frees, whatever their arena, for SHARE_FREES frees (until
 * its next refill or flush after them); then it looks again.  Threads that
 * mostly free their own blocks (larson: a few hundred foreign ones after a
 * hand-over) never share, and keep to their arenas. */
enum { SHARE_STREAK = 16, SHARE_SLACK = LIMIT_FOREIGN / 8,
       SHARE_FREES = 1 << 16 };

/* Caches of threads that exited, kept for the next new thread to adopt: a
 * server's next connection thread starts warm, and the blocks do not go
 * back and forth through the heap lock.  At most PARK_MAX caches holding
 * PARK_BYTES together (list_lock); beyond that an exiting thread's cache
 * drains to the heap.  Parked caches stay on the `all` list. */
enum { PARK_MAX = 8, PARK_BYTES = 2 << 20 };
static struct osa_tcache *parked[PARK_MAX];
static unsigned nparked;
static size_t parked_bytes;

static void cache_destroy(void *arg);

void osa_tcache_init(void)
{
	exit_key_ok = pthread_key_create(&exit_key, cache_destroy) == 0;
}

static void list_add(struct osa_tcache *tc)
{
	tc->prev = NULL;
	tc->next = all;
	if (all)
		all->prev = tc;
	all = tc;
}

static size_t cache_bytes(const struct osa_tcache *tc)
{
	size_t n = __atomic_load_n(&tc->foreign_bytes, __ATOMIC_RELAXED);
	for (size_t c = 2; c < OSA_CACHE_CLASSES; c++)
		n += c * 16u * __atomic_load_n(&tc->count[c], __ATOMIC_RELAXED);
	return n;
}

/* Parks tc (list_lock held); false when the pool is full. */
static bool park(struct osa_tcache *tc)
{
	size_t bytes = cache_bytes(tc);
	if (nparked == PARK_MAX || bytes > PARK_BYTES - parked_bytes)
		return false;
	parked[nparked++] = tc;
	parked_bytes += bytes;
	return true;
}

/* Takes parked[i] out of the pool (list_lock held). */
static struct osa_tcache *take_parked(unsigned i)
{
	struct osa_tcache *tc = parked[i];
	memmove(&parked[i], &parked[i + 1], (nparked - 1 - i) * sizeof parked[0]);
	nparked--;
	parked_bytes -= cache_bytes(tc);
	return tc;
}

/* The most recently parked cache, or NULL (list_lock held). */
static struct osa_tcache *unpark(void)
{
	return nparked ? take_parked(nparked - 1) : NULL;
}

/* The most recently parked cache of arena `arena`, or NULL (list_lock
 * held). */
static struct osa_tcache *unpark_arena(unsigned arena)
{
	for (unsigned i = nparked; i-- > 0;)
		if (parked[i]->arena == arena)
			return take_parked(i);
	return NULL;
}

bool osa_tcache_possible(void)
{
	bool off = osa_opt.cache == 0 || (osa_opt.cache < 0 && osa_on_valgrind);
	return !off && !osa_opt.zero && !osa_opt.junk && osa_opt.check < 2 &&
	       exit_key_ok;
}

static void refresh_home(struct osa_tcache *tc, bool stop_sharing);

/* Registers tc as the calling thread's (its destructor runs at exit). */
static bool adopt(struct osa_tcache *tc)
{
	osa_tcache_self = &no_cache; /* while registering: may allocate */
	if (pthread_setspecific(exit_key, tc) != 0)
		return false;
	osa_tcache_self = tc;
	/* Its blocks came from its arena: refill from there too, so that
	 * threads running side by side keep to different arenas. */
	osa_heap_set_thread_arena(tc->arena);
	/* The new thread has to earn sharing again. */
	tc->share_streak = 0;
	tc->share_mark = tc->nfree;
	if (tc->share_until) {
		osa_heap_lock_acquire();
		refresh_home(tc, true);
		osa_heap_lock_release();
	}
	return true;
}

static void retire(struct osa_tcache *tc);

/* Puts back a cache taken from the pool that could not be adopted; if
 * exiting threads filled the pool meanwhile, it goes to the heap. */
static void repark(struct osa_tcache *tc)
{
	osa_lock(&list_lock);
	bool back = park(tc);
	osa_unlock(&list_lock);
	if (!back)
		retire(tc);
}

/* Gives the calling thread a cache (NULL: none now): a parked one, or a
 * new one.  Takes the heap lock itself, and calls pthread_setspecific
 * outside it: that may allocate. */
struct osa_tcache *osa_tcache_create(void)
{
	if (!osa_tcache_possible()) {
		osa_tcache_self = &no_cache;
		return NULL;
	}
	osa_lock(&list_lock);
	struct osa_tcache *old = unpark();
	osa_unlock(&list_lock);
	if (old) {
		if (adopt(old))
			return old;
		repark(old);
		return NULL;
	}
	size_t dirty, home_len;
	uintptr_t home_lo;
	osa_heap_lock_acquire();
	osa_block *b = osa_heap_alloc(
	    osa_request_to_block(sizeof(struct osa_tcache)), &dirty);
	unsigned arena = osa_heap_thread_arena(); /* chosen by the allocation */
	if (b)
		osa_heap_home(arena, &home_lo, &home_len);
	osa_heap_lock_release();
	if (!b)
		return NULL; /* try again next time */
	struct osa_tcache *tc = osa_block_to_ptr(b);
	memset(tc, 0, sizeof *tc);
	for (size_t c = 2; c < OSA_CACHE_CLASSES; c++)
		tc->limit[c] = (uint16_t)osa_cache_limit(c);
	tc->limit[0] = LIMIT_FOREIGN;
	tc->arena = arena;
	tc->home_lo = home_lo;
	tc->home_len = home_len;
	if (!adopt(tc)) {
		osa_heap_lock_acquire();
		osa_heap_free(b);
		osa_heap_lock_release();
		return NULL;
	}
	osa_lock(&list_lock);
	list_add(tc);
	osa_unlock(&list_lock);
	return tc;
}

struct osa_tcache *osa_tcache_adopt_arena(unsigned arena)
{
	assert(!osa_tcache_self && "the caller has no cache yet");
	osa_lock(&list_lock);
	struct osa_tcache *tc = unpark_arena(arena);
	osa_unlock(&list_lock);
	if (!tc || adopt(tc))
		return tc;
	repark(tc);
	osa_tcache_self = NULL; /* as before: a cache at the first malloc */
	return NULL;
}

bool osa_tcache_count(bool alloc)
{
	struct osa_tcache *tc = osa_tcache_self;
	if (!tc || tc == &no_cache)
		return false;
	if (alloc)
		__atomic_store_n(&tc->nalloc, tc->nalloc + 1, __ATOMIC_RELAXED);
	else
		osa_tcache_count_free(tc);
	return true;
}

void osa_tcache_report_corrupt(const void *ptr)
{
	osa_fatal(osa_current_api, OSA_E_FREE_LIST, ptr);
}

/* Class 0 is full and about to go home: counts towards sharing.  (The
 * block whose free found it full still goes to class 0, and home with a
 * later return.) */
static void note_foreign_return(struct osa_tcache *tc)
{
	uint64_t frees = tc->nfree - tc->share_mark;
	tc->share_mark = tc->nfree;
	if (frees > LIMIT_FOREIGN + SHARE_SLACK || tc->share_until) {
		tc->share_streak = 0;
		return;
	}
	if (++tc->share_streak < SHARE_STREAK)
		return;
	tc->share_streak = 0;
	tc->share_until = tc->nfree + SHARE_FREES;
	tc->home_lo = 0;
	tc->home_len = SIZE_MAX;
}

/* Sets tc's home window from its arena, unless it shares for a while yet
 * (heap lock held).  Called at refills and flushes, so sharing lasts at
 * least SHARE_FREES frees, until the next of those after them. */
static void refresh_home(struct osa_tcache *tc, bool stop_sharing)
{
	if (tc->share_until) {
		if (tc->nfree < tc->share_until && !stop_sharing)
			return;
		tc->share_until = 0;
		tc->share_streak = 0;
		tc->share_mark = tc->nfree;
	}
	osa_heap_home(tc->arena, &tc->home_lo, &tc->home_len);
}

static osa_block *pop(struct osa_tcache *tc, size_t cls)
{
	osa_block *b = tc->head[cls];
	if (!b)
		return NULL;
	uintptr_t *w = (uintptr_t *)(b + 1);
	if (OSA_UNLIKELY(w[1] != osa_link_check(b, w[0])))
		osa_tcache_report_corrupt(osa_block_to_ptr(b));
	tc->head[cls] = (osa_block *)(w[0] ^ osa_keys.link);
	w[1] = 0;
	osa_header_toggle_cached(b);
	__atomic_store_n(&tc->count[cls], tc->count[cls] - 1, __ATOMIC_RELAXED);
	return b;
}

/* Class cls of tc is empty: takes the blocks of that class that threads
 * of other arenas returned to tc's arena, a chain as the cache links its
 * own, in one step (heap lock held).  Each link is verified when popped. */
static void take_returned(struct osa_tcache *tc, size_t cls)
{
	assert(!tc->head[cls] && !tc->count[cls]);
	unsigned n;
	osa_block *chain = osa_heap_take_returned(tc->arena, cls, &n);
	assert(n <= tc->limit[cls]);
	tc->head[cls] = chain;
	__atomic_store_n(&tc->count[cls], (uint16_t)n, __ATOMIC_RELAXED);
}

/* The cache of class cls is empty: take what other threads returned to
 * this arena, else fetch a batch; return one block's payload (NULL,
 * ENOMEM when the heap has nothing). */
void *osa_tcache_refill(struct osa_tcache *tc, size_t cls)
{
	size_t size = cls * 16, n = BATCH_BYTES / size, dirty;
	if (n > tc->limit[cls] / 2u)
		n = tc->limit[cls] / 2u;
	/* Slow start: a class's first batches are of 2, 4, 8... blocks, so
	 * that a size used a few times, by a program or by one of its
	 * threads, holds little of the heap. */
	if (n > (size_t)2 << tc->refills[cls])
		n = (size_t)2 << tc->refills[cls];
	/* Never above the limit (counts are 16 bits). */
	if (tc->count[cls] + n > tc->limit[cls])
		n = tc->limit[cls] > tc->count[cls] ? tc->limit[cls] - tc->count[cls]
						    : 1;
	osa_heap_lock_acquire();
	refresh_home(tc, false); /* arena 0's may shrink */
	take_returned(tc, cls);
	if (tc->head[cls]) {
		osa_heap_lock_release();
		return osa_block_to_ptr(pop(tc, cls));
	}
	int saved = errno; /* a batch cut short by ENOMEM is still a success */
	if (tc->refills[cls] < 15)
		tc->refills[cls]++;
	osa_block *first = osa_heap_alloc(size, &dirty);
	for (size_t i = 1; first && i < n; i++) {
		osa_block *b = osa_heap_alloc(size, &dirty);
		if (!b)
			break;
		/* A block can come out 16 bytes larger (no split). */
		size_t c = osa_block_size(b) >> 4;
		if (c >= OSA_CACHE_CLASSES || tc->count[c] >= tc->limit[c]) {
			osa_heap_free(b);
			break;
		}
		osa_tcache_push(tc, c, b);
	}
	osa_heap_lock_release();
	if (!first) {
		errno = ENOMEM;
		return NULL;
	}
	errno = saved;
	return osa_block_to_ptr(first);
}

/* Releases class cls (not 0) down to `keep` blocks, each to its own
 * arena; heap lock held. */
static void drain(struct osa_tcache *tc, size_t cls, unsigned keep)
{
	assert(cls >= 2);
	while (tc->count[cls] > keep)
		osa_heap_free(pop(tc, cls));
}

/* Class 0, other arenas' blocks, goes back to their arenas as it is, a
 * chain (heap lock held). */
static void return_foreign(struct osa_tcache *tc)
{
	osa_block *chain = tc->head[0];
	tc->head[0] = NULL;
	__atomic_store_n(&tc->count[0], 0, __ATOMIC_RELAXED);
	__atomic_store_n(&tc->foreign_bytes, 0, __ATOMIC_RELAXED);
	osa_heap_return(chain);
}

/* The cache of class cls is full: half of it goes back to the heap; all
 * of class 0 (other arenas' blocks, never reused here) to their arenas. */
void osa_tcache_flush(struct osa_tcache *tc, size_t cls)
{
	osa_heap_lock_acquire();
	if (cls) {
		drain(tc, cls, tc->limit[cls] / 2u);
		refresh_home(tc, false);
	} else {
		note_foreign_return(tc);
		return_foreign(tc);
	}
	osa_heap_lock_release();
}

/* Every class back to the heap under one lock, without needing memory. */
static void drain_all(struct osa_tcache *tc)
{
	osa_heap_lock_acquire();
	return_foreign(tc);
	for (size_t c = 2; c < OSA_CACHE_CLASSES; c++)
		drain(tc, c, 0);
	osa_heap_lock_release();
}

/* Empties tc into the heap and frees it; no thread owns it. */
static void retire(struct osa_tcache *tc)
{
	drain_all(tc);
	osa_lock(&list_lock);
	if (tc->prev)
		tc->prev->next = tc->next;
	else
		all = tc->next;
	if (tc->next)
		tc->next->prev = tc->prev;
	dead_nalloc += tc->nalloc;
	dead_nfree += tc->nfree;
	osa_unlock(&list_lock);
	osa_heap_lock_acquire();
	osa_heap_free(osa_block_from_ptr(tc));
	osa_heap_lock_release();
}

/* Thread exit: the cache is parked for the next thread, or empties itself
 * and is freed. */
static void cache_destroy(void *arg)
{
	struct osa_tcache *tc = arg;
	osa_tcache_self = &no_cache; /* later destructors: no cache */
	if (tc->count[0]) { /* other arenas' blocks go home first */
		osa_heap_lock_acquire();
		return_foreign(tc);
		osa_heap_lock_release();
	}
	osa_lock(&list_lock);
	bool kept = park(tc);
	osa_unlock(&list_lock);
	if (!kept)
		retire(tc);
}

/* Retires the calling thread's cache: its next allocation gets one again
 * (tests: nothing is held by caches afterwards). */
void osa_tcache_retire_self(void)
{
	struct osa_tcache *tc = osa_tcache_self;
	if (tc && tc != &no_cache) {
		(void)pthread_setspecific(exit_key, NULL);
		osa_tcache_self = NULL;
		retire(tc);
	}
}

/* Flushes the calling thread's cache completely and retires the parked
 * ones (tests, statistics). */
void osa_tcache_flush_self(void)
{
	osa_ensure_init(); /* it takes the heap lock */
	struct osa_tcache *tc = osa_tcache_self;
	if (tc && tc != &no_cache)
		drain_all(tc);
	/* Out of the pool first: list_lock is never held while the heap lock
	 * is taken (fork_prepare takes them the other way round). */
	for (;;) {
		osa_lock(&list_lock);
		struct osa_tcache *old = unpark();
		osa_unlock(&list_lock);
		if (!old)
			break;
		retire(old);
	}
	osa_heap_lock_acquire();
	osa_heap_release_returned();
	osa_heap_lock_release();
}

/* Is b, found in class cls, where it should be? */
static bool class_holds(size_t cls, const osa_block *b)
{
	size_t size = osa_block_size(b);
	return cls ? size == cls * 16 : size <= OSA_CACHE_MAX_BLOCK;
}

static int check_one(const struct osa_tcache *tc)
{
	for (size_t c = 0; c < OSA_CACHE_CLASSES; c++) {
		unsigned n = 0;
		size_t bytes = 0;
		for (osa_block *b = tc->head[c]; b; n++) {
			uintptr_t *w = (uintptr_t *)(b + 1);
			if (n >= tc->count[c] || w[1] != osa_link_check(b, w[0]) ||
			    !osa_header_cached(b) || osa_block_state(b) != OSA_USED ||
			    !class_holds(c, b)) {
				osa_report(OSA_API_HEAP_CHECK, OSA_E_FREE_LIST,
					   osa_block_to_ptr(b));
				return -1;
			}
			bytes += osa_block_size(b);
			b = (osa_block *)(w[0] ^ osa_keys.link);
		}
		if (n != tc->count[c] || (c == 0 && bytes != tc->foreign_bytes)) {
			osa_report(OSA_API_HEAP_CHECK, OSA_E_STATE, tc);
			return -1;
		}
	}
	return 0;
}

/* The caller's cache and the parked ones (no thread owns those); heap lock
 * held, which orders before list_lock. */
int osa_tcache_check_self(void)
{
	struct osa_tcache *tc = osa_tcache_self;
	if (tc && tc != &no_cache && check_one(tc) != 0)
		return -1;
	int rc = 0;
	osa_lock(&list_lock);
	for (unsigned i = 0; i < nparked && rc == 0; i++)
		rc = check_one(parked[i]);
	osa_unlock(&list_lock);
	return rc;
}

void osa_tcache_stats(struct os_mallinfo *info)
{
	unsigned long long na = dead_nalloc, nf = dead_nfree;
	size_t cached = 0;
	osa_lock(&list_lock);
	na = dead_nalloc;
	nf = dead_nfree;
	for (struct osa_tcache *tc = all; tc; tc = tc->next) {
		na += __atomic_load_n(&tc->nalloc, __ATOMIC_RELAXED);
		nf += __atomic_load_n(&tc->nfree, __ATOMIC_RELAXED);
		/* Its own block too, a live cache's or a parked one's: it
		 * is the allocator's, not the program's. */
		cached += cache_bytes(tc) +
			  osa_block_size(osa_block_from_ptr(tc));
	}
	osa_unlock(&list_lock);
	info->cached_bytes += cached;
	info->alloc_calls += na;
	info->free_calls += nf;
}

void osa_tcache_lock_all(void)
{
	osa_lock(&list_lock);
}

/* Is tc one of the parked caches?  (list_lock held) */
static bool is_parked(const struct osa_tcache *tc)
{
	for (unsigned i = 0; i < nparked; i++)
		if (parked[i] == tc)
			return true;
	return false;
}

/* In a fork child only the forking thread survives: the other caches'
 * blocks are lost to the child (their memory stays used), and their calls
 * count as those of exited threads. */
void osa_tcache_unlock_all(bool child)
{
	if (!child) {
		osa_unlock(&list_lock);
		return;
	}
	pthread_mutex_init(&list_lock, NULL);
	struct osa_tcache *self = osa_tcache_self;
	for (struct osa_tcache *tc = all; tc; tc = tc->next)
		if (tc != self && !is_parked(tc)) {
			dead_nalloc += tc->nalloc;
			dead_nfree += tc->nfree;
		}
	all = NULL;
	if (self && self != &no_cache)
		list_add(self);
	for (unsigned i = 0; i < nparked; i++) /* no thread owns them */
		list_add(parked[i]);
}
