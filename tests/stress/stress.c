/* stress.c - multithreaded stress of the os_* API (TESTING.md, thread
 * stress plan).
 *
 *     stress [THREADS [OPS_PER_THREAD [GENERATIONS]]]
 *
 * Phase 1: THREADS threads each run OPS_PER_THREAD random operations:
 * malloc, calloc, aligned_alloc, realloc and free over 256 private slots,
 * with sizes msb + rand % msb (msb = 2^(rand % 13)) and about 1% large
 * blocks (mmap'd), plus exchanges with a shared array of 1000 slots by
 * atomic exchange, so that blocks are freed and reallocated by threads
 * that did not allocate them.  Every block carries its size and a pattern
 * of words cookie ^ (n - i); it is verified whenever a thread takes it over,
 * reallocates or frees it.
 * Phase 2 (thread churn): GENERATIONS generations of THREADS short-lived
 * threads; blocks left in the shared array outlive the thread that made
 * them.  The memory the heap holds must stay bounded.
 * At the end: everything freed, os_heap_check() == 0, and the bytes in use
 * back to where they started.
 *
 * Without arguments (make check): 8 threads x 50,000 operations
 * ($OSALLOC_TEST_STRESS_OPS if set), 20 generations.  tests/ci/stress.sh runs 8
 * x 1,000,000 operations, and a ThreadSanitizer build.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "osalloc.h"

enum {
	LOCAL_SLOTS = 256,
	SHARED_SLOTS = 1000,
	MAX_THREADS = 64,
	SAMPLE_HEAD = 64,     /* words checked at the start of a block */
	SAMPLE_TAIL = 16,     /* and at its end */
	SAMPLE_STRIDE = 8192, /* words: one every 64 KiB */
};

static const uint64_t COOKIE = 0xbf58476d1ce4e5b9ULL;
static _Atomic(uintptr_t) shared[SHARED_SLOTS];
static atomic_ullong total_ops, transfers, foreign_frees;

#define FAIL(...)                                        \
	do {                                             \
		fprintf(stderr, "stress: " __VA_ARGS__); \
		fputc('\n', stderr);                     \
		abort();                                 \
	} while (0)

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return r->s;
}

/* Block layout: word 0 = size ^ COOKIE, word 1 = the owner's id (only
 * information), words 2.. = COOKIE ^ (n - i) at the sampled positions. */
static bool sampled(size_t i, size_t n)
{
	return i < SAMPLE_HEAD || i + SAMPLE_TAIL >= n ||
	       i % SAMPLE_STRIDE == 0;
}

static void stamp(uint64_t *w, size_t size, uint64_t owner)
{
	size_t n = size / 8;
	w[0] = size ^ COOKIE;
	w[1] = owner;
	for (size_t i = 2; i < n; i++) {
		if (!sampled(i, n)) {
			i = (i / SAMPLE_STRIDE + 1) * SAMPLE_STRIDE - 1;
			if (i + SAMPLE_TAIL >= n)
				i = n - SAMPLE_TAIL - 1;
			continue;
		}
		w[i] = COOKIE ^ (n - i);
	}
}

/* The block's size, after checking its pattern. */
static size_t verify(const uint64_t *w, const char *when)
{
	size_t size = w[0] ^ COOKIE, n = size / 8;
	if (size < 16 || size > (64u << 20))
		FAIL("%s: block %p has a bad size word %#llx", when,
		     (const void *)w, (unsigned long long)w[0]);
	for (size_t i = 2; i < n; i++) {
		if (!sampled(i, n)) {
			i = (i / SAMPLE_STRIDE + 1) * SAMPLE_STRIDE - 1;
			if (i + SAMPLE_TAIL >= n)
				i = n - SAMPLE_TAIL - 1;
			continue;
		}
		if (w[i] != (COOKIE ^ (n - i)))
			FAIL("%s: block %p (%zu bytes, from thread %llu): word "
			     "%zu is %#llx",
			     when, (const void *)w, size,
			     (unsigned long long)w[1], i,
			     (unsigned long long)w[i]);
	}
	return size;
}

static size_t pick_size(struct rng *r)
{
	if (rnd(r) % 100 == 0) /* about 1%: own mapping */
		return 128 * 1024 + rnd(r) % (896 * 1024);
	size_t msb = (size_t)1 << (rnd(r) % 13);
	size_t size = msb + rnd(r) % msb;
	return size < 16 ? 16 : size;
}

static void *allocate(struct rng *r, size_t size, uint64_t owner)
{
	uint64_t *p;
	unsigned k = (unsigned)(rnd(r) % 20);
	if (k < 13) {
		p = os_malloc(size);
	} else if (k < 16) {
		p = os_calloc(1, size);
		if (p) {
			size_t n = size < 512 ? size : 512;
			for (size_t i = 0; i < n / 8; i++)
				if (p[i])
					FAIL("calloc'd block %p not zero", p);
		}
	} else if (k < 17) {
		size_t align = (size_t)32 << (rnd(r) % 7);
		p = os_aligned_alloc(align, size);
		if (p && (uintptr_t)p % align)
			FAIL("%p not aligned to %zu", (void *)p, align);
	} else {
		p = os_realloc(NULL, size);
	}
	if (!p)
		FAIL("allocation of %zu bytes failed: %s", size,
		     strerror(errno));
	if ((uintptr_t)p % 16)
		FAIL("%p not 16-aligned", (void *)p);
	stamp(p, size, owner);
	return p;
}

static void release(void *p, uint64_t me)
{
	uint64_t *w = p;
	verify(w, "free");
	if (w[1] != me)
		atomic_fetch_add_explicit(&foreign_frees, 1,
		                          memory_order_relaxed);
	os_free(p);
}

struct worker {
	pthread_t t;
	uint64_t id;
	unsigned long ops;
	void *slot[LOCAL_SLOTS];
};

static void *work(void *arg)
{
	struct worker *me = arg;
	struct rng r = {0x9e3779b97f4a7c15ULL * (me->id + 1)};
	unsigned long moved = 0;
	for (unsigned long op = 0; op < me->ops; op++) {
		unsigned i = (unsigned)(rnd(&r) % LOCAL_SLOTS);
		unsigned k = (unsigned)(rnd(&r) % 100);
		void **s = &me->slot[i];
		if (k < 15) {
			/* Swap with the shared array: the block we get was
			 * probably made by another thread. */
			unsigned j = (unsigned)(rnd(&r) % SHARED_SLOTS);
			uintptr_t got =
			    atomic_exchange(&shared[j], (uintptr_t)*s);
			*s = (void *)got;
			if (got)
				verify(*s, "transfer");
			moved++;
		} else if (!*s) {
			*s = allocate(&r, pick_size(&r), me->id);
		} else if (k < 60) {
			release(*s, me->id);
			*s = NULL;
		} else {
			size_t old = verify(*s, "realloc"),
			       size = pick_size(&r);
			uint64_t *q = os_realloc(*s, size);
			if (!q)
				FAIL("realloc to %zu failed", size);
			size_t keep = (old < size ? old : size) / 8;
			/* The kept words moved with the block. */
			for (size_t w = 2; w < keep && w < SAMPLE_HEAD; w++)
				if (q[w] != (COOKIE ^ (old / 8 - w)))
					FAIL("realloc %zu -> %zu lost word %zu",
					     old, size, w);
			stamp(q, size, me->id);
			*s = q;
		}
	}
	for (unsigned i = 0; i < LOCAL_SLOTS; i++)
		if (me->slot[i])
			release(me->slot[i], me->id);
	atomic_fetch_add(&total_ops, me->ops);
	atomic_fetch_add(&transfers, moved);
	return NULL;
}

static void run_threads(struct worker *w, int n, unsigned long ops,
                        uint64_t first_id)
{
	for (int i = 0; i < n; i++) {
		memset(&w[i], 0, sizeof w[i]);
		w[i].id = first_id + (uint64_t)i;
		w[i].ops = ops;
		if (pthread_create(&w[i].t, NULL, work, &w[i]) != 0)
			FAIL("pthread_create");
	}
	for (int i = 0; i < n; i++)
		pthread_join(w[i].t, NULL);
}

static size_t in_use(void)
{
	struct os_mallinfo m;
	osa_tcache_flush_self();
	os_mallinfo(&m);
	return m.in_use_bytes;
}

static size_t heap_bytes(void)
{
	struct os_mallinfo m;
	os_mallinfo(&m);
	return m.heap_bytes;
}

static void drain_shared(void)
{
	for (int j = 0; j < SHARED_SLOTS; j++) {
		void *p = (void *)atomic_exchange(&shared[j], 0);
		if (p)
			release(p, (uint64_t)-1);
	}
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 8;
	const char *env_ops = getenv("OSALLOC_TEST_STRESS_OPS");
	unsigned long ops = argc > 2  ? strtoul(argv[2], NULL, 10)
	                    : env_ops ? strtoul(env_ops, NULL, 10)
	                              : 50000;
	int generations = argc > 3 ? atoi(argv[3]) : 20;
	if (threads < 1 || threads > MAX_THREADS || ops == 0 ||
	    generations < 0) {
		fprintf(stderr,
		        "usage: stress [THREADS [OPS [GENERATIONS]]]\n");
		return 2;
	}
	static struct worker w[MAX_THREADS];
	setvbuf(stdout, NULL, _IOLBF, 0);
	os_free(os_malloc(1));
	size_t baseline = in_use();

	double t0 = now();
	run_threads(w, threads, ops, 0);
	double t1 = now();
	if (os_heap_check() != 0)
		FAIL("heap check after phase 1");
	unsigned long long ops1 = atomic_load(&total_ops);
	printf("stress: %d threads x %lu operations = %llu in %.2f s "
	       "(%.0f ops/s), %llu exchanges, %llu blocks freed by another "
	       "thread\n",
	       threads, ops, ops1, t1 - t0, (double)ops1 / (t1 - t0),
	       (unsigned long long)atomic_load(&transfers),
	       (unsigned long long)atomic_load(&foreign_frees));

	/* Thread churn: blocks in the shared array outlive their threads. */
	size_t heap_after_first = 0;
	unsigned long churn_ops = ops / 100 > 100 ? ops / 100 : 100;
	for (int g = 0; g < generations; g++) {
		run_threads(w, threads, churn_ops, 1000 + (uint64_t)g * 100);
		if (g == 0)
			heap_after_first = heap_bytes();
	}
	double t2 = now();
	size_t heap_end = heap_bytes();
	if (os_heap_check() != 0)
		FAIL("heap check after the churn");
	printf("stress: churn: %d generations x %d threads x %lu operations "
	       "in %.2f s; heap %zu KiB after the first, %zu KiB after the "
	       "last\n",
	       generations, threads, churn_ops, t2 - t1,
	       heap_after_first / 1024, heap_end / 1024);
	if (generations > 1 && heap_end > 2 * heap_after_first + (64u << 20))
		FAIL("the heap keeps growing with thread churn: %zu -> %zu",
		     heap_after_first, heap_end);

	drain_shared();
	if (os_heap_check() != 0)
		FAIL("heap check at the end");
	size_t end = in_use();
	if (end != baseline)
		FAIL("%zu bytes in use after freeing everything, %zu at the "
		     "start",
		     end, baseline);
	printf("stress: OK, %llu operations, everything freed, heap check "
	       "passed\n",
	       (unsigned long long)atomic_load(&total_ops));
	return 0;
}
