/* check_threads.c - thread safety: threads allocating, reallocating and
 * freeing at once with every block's contents checked, blocks freed by
 * another thread than the one that allocated them, the first use of the
 * allocator from many threads at the same moment, and thread exit giving
 * the thread's cached blocks back.
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 *
 * Worker threads never call ck_assert (Check's reporting is not meant for
 * other threads): each records its first failure, and the main thread
 * asserts after joining them.
 */
#include "common.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "osalloc.h"

enum { MAX_THREADS = 8 };

struct worker {
	pthread_t tid;
	int id;
	uint64_t ops;
	char failure[256]; /* empty: no failure */
	pthread_barrier_t *start;
	void *shared;
};

#define WORKER_REQUIRE(w, cond, ...)                                           \
	do {                                                                   \
		if (!(cond) && !(w)->failure[0]) {                             \
			snprintf((w)->failure, sizeof (w)->failure,            \
				 __VA_ARGS__);                                 \
		}                                                              \
		if (!(cond))                                                   \
			return NULL;                                           \
	} while (0)

static void run_workers(struct worker *w, int n, void *(*fn)(void *),
			void *shared)
{
	pthread_barrier_t start;
	ck_assert_int_eq(pthread_barrier_init(&start, NULL, (unsigned)n), 0);
	for (int i = 0; i < n; i++) {
		memset(&w[i], 0, sizeof w[i]);
		w[i].id = i;
		w[i].start = &start;
		w[i].shared = shared;
		ck_assert_int_eq(pthread_create(&w[i].tid, NULL, fn, &w[i]), 0);
	}
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(pthread_join(w[i].tid, NULL), 0);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < n; i++)
		ck_assert_msg(w[i].failure[0] == 0, "thread %d: %s", i,
			      w[i].failure);
}

/* After everything was freed and every worker exited: nothing in use,
 * nothing cached, as many frees as allocations, a sound heap.  This
 * thread's own cache goes too: a thread whose first call frees a block
 * adopts an exited thread's cache (lib/malloc.c), and the cache's own
 * block would count as in use. */
static void assert_all_returned(void)
{
	struct os_mallinfo m;
	osa_tcache_retire_self();
	tst_mallinfo_exact(&m);
	ck_assert_int_eq(os_heap_check(), 0);
	ck_assert_uint_eq(m.cached_bytes, 0);
	ck_assert_uint_eq(m.mmap_count, 0);
	ck_assert_uint_eq(m.in_use_bytes, 0);
	ck_assert_uint_eq(m.alloc_calls, m.free_calls);
}

static size_t random_size(uint64_t *rng)
{
	uint64_t r = tst_rand(rng) % 1000;
	if (r < 750)
		return tst_rand_range(rng, 1, 512);
	if (r < 970)
		return tst_rand_range(rng, 513, 8192);
	if (r < 997)
		return tst_rand_range(rng, 8193, 131071);
	return tst_rand_range(rng, 131072, 400000);
}

/* ---- concurrent stress ----------------------------------------------- */

enum { SLOTS = 512, OPS = 50000 };

static void *stress(void *arg)
{
	struct worker *w = arg;
	struct {
		unsigned char *p;
		size_t n;
		uint64_t seed;
	} s[SLOTS];
	memset(s, 0, sizeof s);
	uint64_t rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(w->id + 1);
	uint64_t seed = (uint64_t)w->id << 40;
	pthread_barrier_wait(w->start);
	for (int op = 0; op < OPS; op++) {
		size_t k = tst_rand(&rng) % SLOTS, bad = 0;
		if (s[k].p) {
			WORKER_REQUIRE(w, tst_verify(s[k].p, s[k].n, s[k].seed,
						     &bad),
				       "op %d: block %p (%zu bytes) damaged at "
				       "%zu",
				       op, (void *)s[k].p, s[k].n, bad);
			if (tst_rand(&rng) % 4 == 0) {
				size_t n = random_size(&rng);
				unsigned char *q = os_realloc(s[k].p, n);
				WORKER_REQUIRE(w, q != NULL, "realloc(%zu)", n);
				size_t keep = n < s[k].n ? n : s[k].n;
				WORKER_REQUIRE(w, tst_verify(q, keep, s[k].seed,
							     &bad),
					       "realloc %zu -> %zu lost byte %zu",
					       s[k].n, n, bad);
				s[k].p = q;
				s[k].n = n;
				s[k].seed = ++seed;
				tst_fill(q, n, s[k].seed);
			} else {
				os_free(s[k].p);
				s[k].p = NULL;
			}
			continue;
		}
		size_t n = random_size(&rng);
		bool zero = tst_rand(&rng) % 4 == 0;
		unsigned char *p = zero ? os_calloc(1, n) : os_malloc(n);
		WORKER_REQUIRE(w, p != NULL, "allocation of %zu failed", n);
		WORKER_REQUIRE(w, (uintptr_t)p % 16 == 0, "%p misaligned",
			       (void *)p);
		WORKER_REQUIRE(w, !zero || tst_all_bytes(p, n, 0, &bad),
			       "calloc(%zu) byte %zu not zero", n, bad);
		s[k].p = p;
		s[k].n = n;
		s[k].seed = ++seed;
		tst_fill(p, n, s[k].seed);
		w->ops++;
	}
	for (size_t k = 0; k < SLOTS; k++) {
		size_t bad = 0;
		if (!s[k].p)
			continue;
		WORKER_REQUIRE(w, tst_verify(s[k].p, s[k].n, s[k].seed, &bad),
			       "block damaged at the end (byte %zu)", bad);
		os_free(s[k].p);
	}
	return NULL;
}

START_TEST(test_threads_allocate_and_free_concurrently_keeping_contents)
{
	struct worker w[4];
	run_workers(w, 4, stress, NULL);
	assert_all_returned();
}
END_TEST

/* ---- cross-thread frees ---------------------------------------------- */

enum { QUEUE = 1024, PER_PRODUCER = 100000, PRODUCERS = 2, CONSUMERS = 2 };

/* Blocks handed from producers to consumers.  A block starts with its size
 * and seed; the pattern follows. */
struct queue {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	unsigned char *item[QUEUE];
	size_t head, count;
	int producers_left;
	atomic_ulong consumed;
};

struct tag {
	size_t n;
	uint64_t seed;
};

static void *produce(void *arg)
{
	struct worker *w = arg;
	struct queue *q = w->shared;
	uint64_t rng = 77 + (uint64_t)w->id;
	pthread_barrier_wait(w->start);
	for (int i = 0; i < PER_PRODUCER; i++) {
		size_t n = sizeof(struct tag) + random_size(&rng) % 4000;
		unsigned char *p = os_malloc(n);
		WORKER_REQUIRE(w, p != NULL, "os_malloc(%zu)", n);
		struct tag t = {n, ((uint64_t)w->id << 32) | (uint64_t)i};
		memcpy(p, &t, sizeof t);
		tst_fill(p + sizeof t, n - sizeof t, t.seed);
		pthread_mutex_lock(&q->lock);
		while (q->count == QUEUE)
			pthread_cond_wait(&q->not_full, &q->lock);
		q->item[(q->head + q->count++) % QUEUE] = p;
		pthread_cond_signal(&q->not_empty);
		pthread_mutex_unlock(&q->lock);
	}
	pthread_mutex_lock(&q->lock);
	q->producers_left--;
	pthread_cond_broadcast(&q->not_empty);
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

static void *consume(void *arg)
{
	struct worker *w = arg;
	struct queue *q = w->shared;
	pthread_barrier_wait(w->start);
	for (;;) {
		pthread_mutex_lock(&q->lock);
		while (q->count == 0 && q->producers_left > 0)
			pthread_cond_wait(&q->not_empty, &q->lock);
		if (q->count == 0) {
			pthread_mutex_unlock(&q->lock);
			return NULL;
		}
		unsigned char *p = q->item[q->head];
		q->head = (q->head + 1) % QUEUE;
		q->count--;
		pthread_cond_signal(&q->not_full);
		pthread_mutex_unlock(&q->lock);
		struct tag t;
		memcpy(&t, p, sizeof t);
		size_t bad = 0;
		WORKER_REQUIRE(w, t.n >= sizeof t && t.n < 8192,
			       "block %p: bad tag", (void *)p);
		WORKER_REQUIRE(w, tst_verify(p + sizeof t, t.n - sizeof t,
					     t.seed, &bad),
			       "block %p from another thread damaged at %zu",
			       (void *)p, bad);
		os_free(p);
		atomic_fetch_add(&q->consumed, 1);
	}
}

static void *produce_or_consume(void *arg)
{
	struct worker *w = arg;
	if (w->id < PRODUCERS)
		return produce(arg);
	w->id -= PRODUCERS;
	return consume(arg);
}

START_TEST(test_blocks_freed_by_another_thread_keep_contents)
{
	static struct queue q;
	pthread_mutex_init(&q.lock, NULL);
	pthread_cond_init(&q.not_empty, NULL);
	pthread_cond_init(&q.not_full, NULL);
	q.producers_left = PRODUCERS;
	struct worker w[PRODUCERS + CONSUMERS];
	run_workers(w, PRODUCERS + CONSUMERS, produce_or_consume, &q);
	ck_assert_uint_eq(atomic_load(&q.consumed),
			  (unsigned long)PRODUCERS * PER_PRODUCER);
	assert_all_returned();
}
END_TEST

/* ---- first use ------------------------------------------------------- */

static void *first_use(void *arg)
{
	struct worker *w = arg;
	uint64_t rng = 1000 + (uint64_t)w->id;
	unsigned char *p[200];
	size_t n[200];
	pthread_barrier_wait(w->start);
	/* No thread has called osalloc before this line. */
	for (int i = 0; i < 200; i++) {
		n[i] = random_size(&rng);
		p[i] = os_malloc(n[i]);
		WORKER_REQUIRE(w, p[i] != NULL, "os_malloc(%zu)", n[i]);
		tst_fill(p[i], n[i], (uint64_t)w->id * 1000 + (uint64_t)i);
	}
	for (int i = 0; i < 200; i++) {
		WORKER_REQUIRE(w, tst_verify(p[i], n[i],
					     (uint64_t)w->id * 1000 +
						 (uint64_t)i,
					     NULL),
			       "block %d damaged", i);
		os_free(p[i]);
	}
	return NULL;
}

START_TEST(test_first_use_from_eight_threads_at_once)
{
	/* A fresh process: the allocator initialises under contention. */
	ck_assert_int_eq(osa_initialised, 0);
	struct worker w[MAX_THREADS];
	run_workers(w, MAX_THREADS, first_use, NULL);
	assert_all_returned();
}
END_TEST

/* ---- thread exit ----------------------------------------------------- */

static void *fill_cache_and_exit(void *arg)
{
	struct worker *w = arg;
	void *p[2000];
	pthread_barrier_wait(w->start);
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 2000; i++) {
			p[i] = os_malloc((size_t)(1 + (i * 7) % 1000));
			WORKER_REQUIRE(w, p[i] != NULL, "os_malloc");
		}
		for (int i = 0; i < 2000; i++)
			os_free(p[i]);
	}
	/* Keep some cached when exiting. */
	struct os_mallinfo m;
	os_mallinfo(&m);
	WORKER_REQUIRE(w, m.cached_bytes > 0, "nothing cached before exit");
	return NULL;
}

/* What exited threads may keep for new ones: 2 MiB of blocks in at most 8
 * caches, and the caches' own blocks (lib/cache.c). */
#define PARKED_MAX_BYTES ((size_t)(2u << 20) + 8 * 1024)

static void *free_one_and_exit(void *arg)
{
	void **out = arg;
	*out = os_malloc(100);
	os_free(*out);
	return NULL;
}

static void *free_it(void *arg)
{
	os_free(arg);
	return NULL;
}

static void *take_one(void *arg)
{
	void **out = arg;
	*out = os_malloc(100);
	return NULL;
}

START_TEST(test_an_exited_threads_cache_serves_the_next_thread)
{
	TST_SKIP_UNDER_VALGRIND("no thread caches under valgrind");
	osa_tcache_flush_self(); /* no cache kept from earlier tests */
	void *freed = NULL, *got = NULL;
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, free_one_and_exit, &freed), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	struct os_mallinfo m;
	os_mallinfo(&m);
	ck_assert_uint_gt(m.cached_bytes, 0);
	ck_assert_uint_eq(m.in_use_bytes, 0);
	ck_assert_int_eq(os_heap_check(), 0); /* checks the kept cache too */
	/* The next thread adopts that cache: its first block of the same
	 * size is the one the first thread freed. */
	ck_assert_int_eq(pthread_create(&t, NULL, take_one, &got), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_ptr_nonnull(got);
	ck_assert_ptr_eq(got, freed);
	/* Freed by a thread of its own (this one would adopt the parked
	 * cache with its first free, and keep it). */
	ck_assert_int_eq(pthread_create(&t, NULL, free_it, got), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	assert_all_returned();
}
END_TEST

/* ---- arenas ---------------------------------------------------------- */

enum { ARENA_BLOCKS = 300 };

struct arena_worker {
	void *p[ARENA_BLOCKS];
	pthread_barrier_t *both;
};

static void *allocate_side_by_side(void *arg)
{
	struct arena_worker *a = arg;
	pthread_barrier_wait(a->both);
	for (int i = 0; i < ARENA_BLOCKS; i++) {
		a->p[i] = os_malloc((size_t)(16 + (i * 37) % 600));
		if (!a->p[i])
			return NULL;
		memset(a->p[i], i & 0xff, 16);
		if (i % 10 == 0)
			pthread_barrier_wait(a->both); /* interleave */
	}
	return NULL;
}

static int address_order(const void *x, const void *y)
{
	uintptr_t a = *(const uintptr_t *)x, b = *(const uintptr_t *)y;
	return a < b ? -1 : a > b;
}

/* Two threads allocating at the same time get blocks from different
 * arenas: sorted by address, each thread's blocks form one run, so no
 * block of one is a neighbour of the other's (whose headers each free
 * reads: that would put one cache line in both cores' caches). */
START_TEST(test_threads_side_by_side_never_get_neighbouring_blocks)
{
	pthread_barrier_t both;
	ck_assert_int_eq(pthread_barrier_init(&both, NULL, 2), 0);
	static struct arena_worker a[2];
	pthread_t t[2];
	for (int k = 0; k < 2; k++) {
		a[k].both = &both;
		ck_assert_int_eq(
		    pthread_create(&t[k], NULL, allocate_side_by_side, &a[k]),
		    0);
	}
	for (int k = 0; k < 2; k++)
		ck_assert_int_eq(pthread_join(t[k], NULL), 0);
	pthread_barrier_destroy(&both);
	static uintptr_t all[2 * ARENA_BLOCKS][2]; /* address, thread */
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < ARENA_BLOCKS; i++) {
			ck_assert_ptr_nonnull(a[k].p[i]);
			all[k * ARENA_BLOCKS + i][0] = (uintptr_t)a[k].p[i];
			all[k * ARENA_BLOCKS + i][1] = (uintptr_t)k;
		}
	qsort(all, 2 * ARENA_BLOCKS, sizeof all[0], address_order);
	int changes = 0;
	for (int i = 1; i < 2 * ARENA_BLOCKS; i++)
		changes += all[i][1] != all[i - 1][1];
	ck_assert_int_eq(changes, 1);
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < ARENA_BLOCKS; i++)
			os_free(a[k].p[i]);
	assert_all_returned();
}
END_TEST

static int malloc_one_errno;

static void *malloc_one(void *arg)
{
	void **out = arg;
	errno = 0;
	*out = os_malloc(100);
	malloc_one_errno = errno;
	return NULL;
}

/* The arena (1-based) of heap block p. */
static unsigned arena_of(const void *p)
{
	osa_heap_lock_acquire();
	unsigned a = osa_heap_arena_of((uintptr_t)p);
	osa_heap_lock_release();
	return a;
}

/* A thread whose window cannot be reserved (address space limit) shares
 * the brk heap; the next thread tries again. */
START_TEST(test_a_thread_without_a_window_uses_the_brk_heap)
{
	void *mine = os_malloc(100), *p = NULL, *q = NULL;
	ck_assert_ptr_nonnull(mine);
	ck_assert_uint_eq(arena_of(mine), 1);
	pthread_t t;
	osa_sys_fail_nth(1, OSA_SYS_MMAP); /* the reservation */
	ck_assert_int_eq(pthread_create(&t, NULL, malloc_one, &p), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	osa_sys_fail_nth(0, 0);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(malloc_one_errno, 0);
	ck_assert_uint_eq(arena_of(p), 1);
	osa_tcache_flush_self(); /* else the next thread adopts its cache */
	ck_assert_int_eq(pthread_create(&t, NULL, malloc_one, &q), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_ptr_nonnull(q);
	ck_assert_uint_gt(arena_of(q), 1);
	os_free(q);
	os_free(p);
	os_free(mine);
	assert_all_returned();
}
END_TEST

/* When its window cannot be made usable, an arena continues in a mapping
 * of its own, outside the window. */
START_TEST(test_an_arena_whose_window_fails_continues_in_a_mapping)
{
	void *mine = os_malloc(100), *p = NULL;
	ck_assert_ptr_nonnull(mine);
	pthread_t t;
	osa_sys_fail_nth(1, OSA_SYS_SBRK); /* the window's mprotect */
	ck_assert_int_eq(pthread_create(&t, NULL, malloc_one, &p), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	osa_sys_fail_nth(0, 0);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(malloc_one_errno, 0); /* the fallback succeeded */
	unsigned a = arena_of(p);
	ck_assert_uint_gt(a, 1);
	uintptr_t lo;
	size_t len;
	osa_heap_home(a, &lo, &len);
	ck_assert_uint_eq(len, OSA_ARENA_WINDOW);
	ck_assert_msg((uintptr_t)p - lo >= len, "%p is in the window", p);
	memset(p, 7, 100);
	ck_assert_int_eq(os_heap_check(), 0);
	os_free(p);
	os_free(mine);
	assert_all_returned();
}
END_TEST

/* An arena of 8 MiB or more grows its window to a 2 MiB boundary; when
 * that commit fails, it commits what it needs instead, still in the
 * window (no mapping).  Run in a thread of its own arena. */
struct huge_window {
	unsigned long commits, maps;
	size_t grew;
	bool in_window;
};

static void *grow_window_past_8mib(void *arg)
{
	struct huge_window *r = arg;
	enum { SIZE = 4096, MAX = 6000 };
	static void *p[MAX];
	int n = 0;
	struct os_mallinfo m;
	do {
		p[n++] = os_malloc(SIZE);
		os_mallinfo(&m);
	} while (n < MAX && p[n - 1] && m.heap_bytes < (10u << 20));
	while (n < MAX && p[n - 1] && r->grew == 0) {
		unsigned long c0 = osa_sys_calls(OSA_SYS_SBRK);
		unsigned long m0 = osa_sys_calls(OSA_SYS_MMAP);
		os_mallinfo(&m);
		size_t heap0 = m.heap_bytes;
		osa_sys_fail_nth(1, OSA_SYS_SBRK); /* the rounded commit */
		p[n++] = os_malloc(SIZE);
		osa_sys_fail_nth(0, 0);
		r->commits = osa_sys_calls(OSA_SYS_SBRK) - c0;
		r->maps = osa_sys_calls(OSA_SYS_MMAP) - m0;
		os_mallinfo(&m);
		if (r->commits > 0)
			r->grew = m.heap_bytes - heap0;
	}
	if (p[n - 1]) {
		unsigned a = arena_of(p[n - 1]);
		uintptr_t lo;
		size_t len;
		osa_heap_home(a, &lo, &len);
		r->in_window = a > 1 && (uintptr_t)p[n - 1] - lo < len;
		memset(p[n - 1], 3, SIZE);
	}
	for (int i = 0; i < n; i++)
		os_free(p[i]);
	return NULL;
}

START_TEST(test_a_refused_huge_window_growth_commits_what_is_needed)
{
	TST_SKIP_UNDER_VALGRIND("no 2 MiB rounding under valgrind");
	void *mine = os_malloc(100);
	ck_assert_ptr_nonnull(mine);
	struct huge_window r = {0};
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, grow_window_past_8mib, &r),
			 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_msg(r.grew > 0, "the arena did not grow past 10 MiB");
	ck_assert_uint_eq(r.commits, 2);
	ck_assert_uint_eq(r.maps, 0);
	ck_assert_uint_lt(r.grew, 2u << 20);
	ck_assert(r.in_window);
	ck_assert_int_eq(os_heap_check(), 0);
	os_free(mine);
	assert_all_returned();
}
END_TEST

struct lineage {
	void *p[2];
	pthread_barrier_t *both; /* both have a cache before either exits */
	pthread_mutex_t *exit;   /* held by the test until this may exit */
};

static void *keep_one_free_one(void *arg)
{
	struct lineage *l = arg;
	l->p[0] = os_malloc(100); /* kept: the next thread frees it */
	void *q = os_malloc(100);
	os_free(q);
	pthread_barrier_wait(l->both);
	pthread_mutex_lock(l->exit);
	pthread_mutex_unlock(l->exit);
	return NULL;
}

static void *take_over(void *arg)
{
	void **io = arg;
	os_free(io[0]); /* the first call: a free */
	io[1] = os_malloc(100);
	return NULL;
}

/* A thread whose first call frees a block takes over the kept cache of
 * that block's arena, not the one kept last: like a server thread that
 * takes over another's data, it keeps to that memory. */
START_TEST(test_a_thread_that_starts_by_freeing_takes_over_that_arena)
{
	TST_SKIP_UNDER_VALGRIND("no thread caches under valgrind");
	pthread_barrier_t both;
	pthread_mutex_t exit_mine = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_t exit_other = PTHREAD_MUTEX_INITIALIZER;
	ck_assert_int_eq(pthread_barrier_init(&both, NULL, 2), 0);
	static struct lineage mine, other;
	mine.both = other.both = &both;
	mine.exit = &exit_mine;
	other.exit = &exit_other;
	pthread_mutex_lock(&exit_mine);
	pthread_mutex_lock(&exit_other);
	pthread_t tm, to, t;
	ck_assert_int_eq(pthread_create(&tm, NULL, keep_one_free_one, &mine), 0);
	ck_assert_int_eq(pthread_create(&to, NULL, keep_one_free_one, &other),
			 0);
	/* The other's cache is kept last. */
	pthread_mutex_unlock(&exit_mine);
	ck_assert_int_eq(pthread_join(tm, NULL), 0);
	pthread_mutex_unlock(&exit_other);
	ck_assert_int_eq(pthread_join(to, NULL), 0);
	pthread_barrier_destroy(&both);
	ck_assert_uint_ne(arena_of(mine.p[0]), arena_of(other.p[0]));
	ck_assert_int_eq(pthread_create(&t, NULL, take_over, mine.p), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_ptr_eq(mine.p[1], mine.p[0]); /* its cache, top block */
	os_free(other.p[0]);
	os_free(mine.p[1]);
	assert_all_returned();
}
END_TEST

static int free_again(void *p)
{
	os_free(p);
	return TST_CHILD_RETURNED;
}

static void *allocate_some(void *arg)
{
	struct arena_worker *a = arg;
	for (int i = 0; i < ARENA_BLOCKS; i++)
		a->p[i] = os_malloc((size_t)(16 + (i * 37) % 600));
	return NULL;
}

/* Frees the other thread's blocks, then allocates as many of each size:
 * none of those is one it freed. */
static void *free_theirs_then_allocate(void *arg)
{
	struct arena_worker *a = arg;
	void *mine[ARENA_BLOCKS];
	os_free(os_malloc(1)); /* a cache of its own first */
	for (int i = 0; i < ARENA_BLOCKS; i++)
		os_free(a->p[i]);
	for (int i = 0; i < ARENA_BLOCKS; i++)
		mine[i] = os_malloc((size_t)(16 + (i * 37) % 600));
	for (int i = 0; i < ARENA_BLOCKS; i++)
		for (int j = 0; j < ARENA_BLOCKS; j++)
			if (mine[i] == a->p[j])
				return mine[i];
	for (int i = 0; i < ARENA_BLOCKS; i++)
		os_free(mine[i]);
	return NULL;
}

/* A block freed by another thread goes back to the arena it came from
 * (in batches of 64, by class), not to the freeing thread's next
 * allocations; a thread that allocates there gets it back. */
START_TEST(test_blocks_freed_by_another_thread_go_back_to_their_arena)
{
	TST_SKIP_UNDER_VALGRIND("no thread caches under valgrind");
	static struct arena_worker a;
	pthread_t t;
	void *reused = NULL;
	ck_assert_int_eq(pthread_create(&t, NULL, allocate_some, &a), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	osa_tcache_flush_self(); /* the allocating thread's cache too */
	ck_assert_int_eq(pthread_create(&t, NULL, free_theirs_then_allocate,
					&a),
			 0);
	ck_assert_int_eq(pthread_join(t, &reused), 0);
	ck_assert_msg(reused == NULL, "the freeing thread reused %p", reused);
	struct os_mallinfo m;
	ck_assert_int_eq(os_heap_check(), 0); /* the returned blocks too */
	os_mallinfo(&m);
	ck_assert_uint_gt(m.cached_bytes, 0); /* waiting in their arena */
	/* Waiting in its arena, a block is still known to be free (not the
	 * first: it follows the cache freed above, so it merged into that). */
	TST_EXPECT_MISUSE(free_again, a.p[150], "os_free", "double free",
			  a.p[150]);
	ck_assert_uint_eq(m.in_use_bytes, 0);
	/* In their arena: a thread allocating there gets them again. */
	ck_assert_int_eq(pthread_create(&t, NULL, allocate_some, &a), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	for (int i = 0; i < ARENA_BLOCKS; i++) {
		ck_assert_ptr_nonnull(a.p[i]);
		os_free(a.p[i]);
	}
	assert_all_returned();
}
END_TEST

/* A consumer: frees SHARE_BLOCKS blocks that another thread allocated,
 * nothing of its own, then allocates 64 of the same size and counts how
 * many of them it freed before, and how many lie in its own arena. */
enum { SHARE_BLOCKS = 4000, SHARE_SIZE = 64 };
struct consumer {
	void **theirs;
	int reused, own_arena;
};

static void *consume_then_allocate(void *arg)
{
	struct consumer *c = arg;
	void *mine[64];
	os_free(os_malloc(1)); /* a cache of its own first */
	for (int i = 0; i < SHARE_BLOCKS; i++)
		os_free(c->theirs[i]);
	for (int i = 0; i < 64; i++) {
		mine[i] = os_malloc(SHARE_SIZE);
		for (int j = 0; j < SHARE_BLOCKS && mine[i]; j++)
			if (mine[i] == c->theirs[j]) {
				c->reused++;
				break;
			}
		c->own_arena += mine[i] && arena_of(mine[i]) > 1;
	}
	for (int i = 0; i < 64; i++)
		os_free(mine[i]);
	return NULL;
}

/* A thread whose frees are nearly all of other threads' blocks (16
 * returns of 64 in a row) stops sending them home and reuses them: each
 * block crosses between cores once, not twice.  The next thread to take
 * over its cache starts in its own arena again. */
START_TEST(test_a_consumer_thread_reuses_the_blocks_it_is_handed)
{
	TST_SKIP_UNDER_VALGRIND("no thread caches under valgrind");
	static void *theirs[SHARE_BLOCKS];
	for (int i = 0; i < SHARE_BLOCKS; i++) {
		theirs[i] = os_malloc(SHARE_SIZE);
		ck_assert_ptr_nonnull(theirs[i]);
		memset(theirs[i], i & 0xff, SHARE_SIZE);
	}
	struct consumer c = {theirs, 0, 0};
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, consume_then_allocate, &c),
			 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(c.reused, 64);
	ck_assert_int_eq(c.own_arena, 0);
	ck_assert_int_eq(os_heap_check(), 0);
	/* Its successor, which adopts the parked cache, has not freed
	 * anything yet: a block of main's is not reused. */
	for (int i = 0; i < 300; i++)
		ck_assert_ptr_nonnull(theirs[i] = os_malloc(SHARE_SIZE));
	struct arena_worker a;
	for (int i = 0; i < ARENA_BLOCKS; i++)
		a.p[i] = theirs[i];
	void *reused = NULL;
	ck_assert_int_eq(pthread_create(&t, NULL, free_theirs_then_allocate,
					&a),
			 0);
	ck_assert_int_eq(pthread_join(t, &reused), 0);
	ck_assert_msg(reused == NULL, "the successor reused %p", reused);
	ck_assert_int_eq(os_heap_check(), 0);
	assert_all_returned();
}
END_TEST

START_TEST(test_thread_exit_keeps_a_bounded_cache_and_gives_the_rest_back)
{
	TST_SKIP_UNDER_VALGRIND("no thread caches under valgrind");
	struct worker w[MAX_THREADS];
	run_workers(w, 4, fill_cache_and_exit, NULL);
	struct os_mallinfo m;
	os_mallinfo(&m); /* this thread never allocated: no cache of its own */
	ck_assert_uint_gt(m.cached_bytes, 0);
	ck_assert_uint_le(m.cached_bytes, PARKED_MAX_BYTES);
	ck_assert_uint_eq(m.in_use_bytes, 0);
	ck_assert_uint_eq(m.alloc_calls, m.free_calls);
	ck_assert_uint_ge(m.alloc_calls, 4 * 5 * 2000);
	ck_assert_int_eq(os_heap_check(), 0);
	/* More threads exit with full caches at once than can be kept. */
	run_workers(w, MAX_THREADS, fill_cache_and_exit, NULL);
	os_mallinfo(&m);
	ck_assert_uint_le(m.cached_bytes, PARKED_MAX_BYTES);
	ck_assert_uint_eq(m.in_use_bytes, 0);
	ck_assert_int_eq(os_heap_check(), 0);
	/* The freed space is reused: after the same work three times more,
	 * the heap stays within twice the peak of memory in use (how many
	 * threads overlap decides that peak, so it is the measure, not the
	 * heap size after the first round). */
	for (int i = 0; i < 3; i++)
		run_workers(w, 4, fill_cache_and_exit, NULL);
	os_mallinfo(&m);
	ck_assert_uint_lt(m.heap_bytes, 2 * m.peak_in_use_bytes + (1u << 20) +
					    PARKED_MAX_BYTES);
	ck_assert_uint_eq(m.in_use_bytes, 0);
	assert_all_returned();
}
END_TEST

/* ---- growth under contention ----------------------------------------- */

/* Regression test: osa_large_realloc() once mremapped with MREMAP_MAYMOVE
 * before it updated the mmap registry.  Another thread's mmap could receive
 * the range just vacated and register the same pointer; removing the old
 * entry by pointer could then remove the other thread's entry, so that
 * block kept a stale, larger length and writing to it faulted.  The entry
 * now leaves the registry before the mremap. */
static void *grow_blocks(void *arg)
{
	enum { EDGE = 4096 };
	struct worker *w = arg;
	uint64_t seed = (uint64_t)w->id << 50;
	pthread_barrier_wait(w->start);
	for (int round = 0; round < 60; round++) {
		unsigned char *p = NULL;
		size_t n = 0;
		for (size_t m = 2 * EDGE + (size_t)round * 3000; m <= 600000;
		     m += 37000) {
			unsigned char *q = os_realloc(p, m);
			WORKER_REQUIRE(w, q != NULL, "realloc(%zu)", m);
			/* The first and the last EDGE bytes carry a pattern:
			 * both must survive, and the new end must be
			 * writable. */
			size_t bad = 0;
			WORKER_REQUIRE(w, n == 0 || tst_verify(q, EDGE, seed, &bad),
				       "realloc to %zu lost byte %zu", m, bad);
			WORKER_REQUIRE(w, n == 0 ||
					      tst_verify(q + n - EDGE, EDGE,
							 seed + 1, &bad),
				       "realloc to %zu lost byte %zu of the "
				       "old end",
				       m, n - EDGE + bad);
			seed += 2;
			tst_fill(q, EDGE, seed);
			tst_fill(q + m - EDGE, EDGE, seed + 1);
			p = q;
			n = m;
		}
		os_free(p);
	}
	return NULL;
}

START_TEST(test_threads_grow_blocks_across_the_mmap_threshold)
{
	struct worker w[4];
	run_workers(w, 4, grow_blocks, NULL);
	assert_all_returned();
}
END_TEST

/* One case each, so that each runs alone with CK_RUN_CASE=<name>. */
static void add(Suite *s, const char *name, const TTest *test)
{
	TCase *tc = tcase_create(name);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static Suite *make_suite(void)
{
	Suite *s = suite_create("threads");
	add(s, "stress", test_threads_allocate_and_free_concurrently_keeping_contents);
	add(s, "cross_thread", test_blocks_freed_by_another_thread_keep_contents);
	add(s, "first_use", test_first_use_from_eight_threads_at_once);
	add(s, "thread_exit", test_an_exited_threads_cache_serves_the_next_thread);
	add(s, "thread_exit_bound",
	    test_thread_exit_keeps_a_bounded_cache_and_gives_the_rest_back);
 	add(s, "arenas", test_threads_side_by_side_never_get_neighbouring_blocks);
	add(s, "arena_first_free", test_a_thread_that_starts_by_freeing_takes_over_that_arena);
	add(s, "arena_no_window", test_a_thread_without_a_window_uses_the_brk_heap);
	add(s, "arena_window_fails", test_an_arena_whose_window_fails_continues_in_a_mapping);
	add(s, "arena_huge_growth", test_a_refused_huge_window_growth_commits_what_is_needed);
	add(s, "arena_return", test_blocks_freed_by_another_thread_go_back_to_their_arena);
	add(s, "arena_share", test_a_consumer_thread_reuses_the_blocks_it_is_handed);
	add(s, "grow", test_threads_grow_blocks_across_the_mmap_threshold);
	return s;
}

int main(int argc, char **argv)
{
	return tst_main(argc, argv, make_suite, NULL);
}
