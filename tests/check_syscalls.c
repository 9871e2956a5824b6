/* check_syscalls.c - the system calls osalloc really makes: the first small
 * allocation costs one brk growth of 128 KiB, later growth is amortized,
 * requests from the mmap threshold up get one mmap each and os_free gives
 * them back with one munmap at once, and every such call goes through
 * lib/os.c (what strace sees equals what os.c counted).
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 *
 * Each scenario runs in a freshly exec'd copy of this program, where
 * osalloc has not run yet.  A scenario checks itself with the counters of
 * lib/os.c and sbrk(0), and prints what it saw; the strace cases run the
 * same scenario under strace and compare the kernel's view between markers
 * (tst_mark).  Without a working strace those cases say so and pass: the
 * in-process cases still hold the same properties.
 */
#include "common.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "internal.h"
#include "osalloc.h"

enum { KiB = 1024, PREALLOC = 128 * KiB, THRESHOLD = 131072 };
#define GiB ((uintptr_t)1 << 30)

/* The C library's malloc and stdio set up before any measurement, so that
 * their own brk calls fall outside the markers. */
static void warm_up_libc(void)
{
	void *p = malloc(100);
	free(p);
	fflush(stdout);
}

#define DELTA(a, b, f) ((b).f - (a).f)

/* ---- scenarios ------------------------------------------------------- */

/* The first small allocation: one sbrk of 128 KiB, no mmap.  Then 64 KiB
 * more of small blocks: no system call at all. */
static int scenario_first_small(void)
{
	warm_up_libc();
	struct tst_sys s0, s1, s2;
	tst_sys_snapshot(&s0);
	tst_mark("begin");
	void *p = os_malloc(32);
	tst_mark("end");
	tst_sys_snapshot(&s1);
	TST_CHILD_REQUIRE(p != NULL, "os_malloc");
	TST_CHILD_REQUIRE(DELTA(s0, s1, sbrk) == 1, "%lu sbrk calls",
			  DELTA(s0, s1, sbrk));
	TST_CHILD_REQUIRE(DELTA(s0, s1, mmap) == 0, "%lu mmap calls",
			  DELTA(s0, s1, mmap));
	size_t expect = (size_t)PREALLOC;
	const char *opt = getenv("OSALLOC_OPTIONS");
	if (opt && sscanf(opt, "heap_prealloc=%zu", &expect) != 1)
		expect = PREALLOC;
	TST_CHILD_REQUIRE(DELTA(s0, s1, brk) == expect,
			  "the break moved by %zu, not %zu",
			  (size_t)DELTA(s0, s1, brk), expect);
	TST_CHILD_REQUIRE((uintptr_t)p >= s0.brk && (uintptr_t)p < s1.brk,
			  "%p is not in the new brk range", p);

	tst_mark("begin2");
	for (int i = 0; i < 1000; i++) {
		void *q = os_malloc(64);
		TST_CHILD_REQUIRE(q != NULL, "os_malloc(64) #%d", i);
	}
	tst_mark("end2");
	tst_sys_snapshot(&s2);
	TST_CHILD_REQUIRE(DELTA(s1, s2, sbrk) == 0 && DELTA(s1, s2, mmap) == 0,
			  "1000 small allocations made %lu sbrk, %lu mmap calls",
			  DELTA(s1, s2, sbrk), DELTA(s1, s2, mmap));
	TST_CHILD_REQUIRE(s2.brk == s1.brk, "the break moved");
	printf("brk_before=0x%" PRIxPTR " brk_after=0x%" PRIxPTR "\n", s0.brk,
	       s1.brk);
	return TST_CHILD_OK;
}

/* One block of every size a thread cache holds (16 to 1008 bytes, 63
 * classes) fits in the preallocation: a cache's first batches of a class
 * are small (2 blocks, then 4...), not 8 KiB each. */
static int scenario_every_class(void)
{
	warm_up_libc();
	struct tst_sys s0, s1, s2;
	tst_sys_snapshot(&s0);
	void *p = os_malloc(16);
	tst_sys_snapshot(&s1);
	TST_CHILD_REQUIRE(p != NULL, "os_malloc");
	TST_CHILD_REQUIRE(DELTA(s0, s1, sbrk) == 1, "%lu sbrk calls",
			  DELTA(s0, s1, sbrk));
	for (size_t size = 32; size <= 1008; size += 16) {
		void *q = os_malloc(size);
		TST_CHILD_REQUIRE(q != NULL, "os_malloc(%zu)", size);
	}
	tst_sys_snapshot(&s2);
	TST_CHILD_REQUIRE(DELTA(s1, s2, sbrk) == 0 && DELTA(s1, s2, mmap) == 0,
			  "63 sizes made %lu sbrk, %lu mmap calls",
			  DELTA(s1, s2, sbrk), DELTA(s1, s2, mmap));
	TST_CHILD_REQUIRE(s2.brk == s1.brk, "the break moved by %zu",
			  (size_t)(s2.brk - s1.brk));
	return TST_CHILD_OK;
}

/* 100,000 small allocations (12.5 MiB): every growth is one sbrk of at
 * least 128 KiB, so there are at most total/128 KiB of them. */
static int scenario_amortized(void)
{
	enum { N = 100000, SIZE = 100 };
	warm_up_libc();
	void *first = os_malloc(SIZE);
	TST_CHILD_REQUIRE(first != NULL, "os_malloc");
	struct tst_sys start, s0, s1;
	tst_sys_snapshot(&start);
	unsigned long growths = 0;
	size_t smallest = SIZE_MAX;
	tst_mark("begin");
	for (int i = 0; i < N; i++) {
		tst_sys_snapshot(&s0);
		void *p = os_malloc(SIZE);
		tst_sys_snapshot(&s1);
		TST_CHILD_REQUIRE(p != NULL, "os_malloc #%d", i);
		if (s1.brk == s0.brk) {
			TST_CHILD_REQUIRE(DELTA(s0, s1, sbrk) == 0,
					  "an sbrk that did not move the break");
			continue;
		}
		TST_CHILD_REQUIRE(DELTA(s0, s1, sbrk) == 1,
				  "%lu sbrk calls for one allocation",
				  DELTA(s0, s1, sbrk));
		size_t grew = DELTA(s0, s1, brk);
		TST_CHILD_REQUIRE(grew >= 128 * KiB,
				  "allocation %d grew the heap by %zu bytes", i,
				  grew);
		if (grew < smallest)
			smallest = grew;
		growths++;
	}
	tst_mark("end");
	/* The block-start map has one leaf per GiB of address space: a heap
	 * that grows across a GiB boundary (the break's start is random) maps
	 * one leaf of metadata there, and no other mapping.  Each growth
	 * covers a page past the new break too (extend_brk), so a break that
	 * ends on a GiB boundary (growth ends on 2 MiB ones) maps the next
	 * leaf already. */
	uintptr_t covered_from = start.brk + 4 * KiB - 1,
		  covered_to = s1.brk + 4 * KiB - 1;
	unsigned long leaves = covered_to / GiB - covered_from / GiB;
	TST_CHILD_REQUIRE(DELTA(start, s1, mmap) == leaves,
			  "%lu mmap calls, %lu GiB boundaries crossed",
			  DELTA(start, s1, mmap), leaves);
	size_t total = DELTA(start, s1, brk);
	TST_CHILD_REQUIRE(total >= (size_t)N * SIZE, "grew %zu only", total);
	TST_CHILD_REQUIRE(growths >= 1 && growths <= total / (128 * KiB),
			  "%lu growths for %zu bytes", growths, total);
	TST_CHILD_REQUIRE(DELTA(start, s1, sbrk) == growths,
			  "%lu sbrk calls, %lu growths",
			  DELTA(start, s1, sbrk), growths);
	struct os_mallinfo m;
	os_mallinfo(&m);
	TST_CHILD_REQUIRE(m.heap_segments == 1, "%zu segments",
			  m.heap_segments);
	printf("growths=%lu smallest=%zu leaves=%lu\n", growths, smallest,
	       leaves);
	return TST_CHILD_OK;
}

static const size_t large_sizes[] = {THRESHOLD,     THRESHOLD + 1, 200000,
				     1 << 20,       (1 << 20) + 5, 3 << 20,
				     THRESHOLD * 4, 999999,        4 << 20,
				     (2 << 20) - OSA_HDR};
enum { N_LARGE = sizeof large_sizes / sizeof large_sizes[0] };

/* munmap calls a large allocation of `size` makes: from 2 MiB on, its
 * mapping is asked for a whole number of 2 MiB long, which Linux places on
 * a 2 MiB boundary, and the rounding past the block is unmapped at once. */
static long large_trims(size_t size)
{
	size_t len = osa_align_up(size + OSA_HDR, OSA_PAGE);
	return len >= OSA_HUGE_PAGE && len % OSA_HUGE_PAGE != 0;
}

/* Requests at and above the threshold: one mmap each (and from 2 MiB on,
 * one munmap of what the mapping rounded up), no brk; os_free: one munmap
 * each, and the mapping is gone at once. */
static int scenario_large(void)
{
	const size_t *sizes = large_sizes;
	enum { N = N_LARGE };
	warm_up_libc();
	long maps0 = tst_maps_count();
	for (size_t i = 0; i < N; i++) {
		struct tst_sys s0, s1, s2;
		char label[32];
		tst_sys_snapshot(&s0);
		snprintf(label, sizeof label, "alloc%zu", i);
		tst_mark(label);
		unsigned char *p = os_malloc(sizes[i]);
		snprintf(label, sizeof label, "alloc%zu-end", i);
		tst_mark(label);
		tst_sys_snapshot(&s1);
		TST_CHILD_REQUIRE(p != NULL, "os_malloc(%zu)", sizes[i]);
		TST_CHILD_REQUIRE(DELTA(s0, s1, mmap) == 1 &&
				      DELTA(s0, s1, sbrk) == 0 &&
				      (long)DELTA(s0, s1, munmap) ==
					      large_trims(sizes[i]),
				  "os_malloc(%zu): %lu mmap, %lu sbrk, %lu "
				  "munmap",
				  sizes[i], DELTA(s0, s1, mmap),
				  DELTA(s0, s1, sbrk), DELTA(s0, s1, munmap));
		TST_CHILD_REQUIRE(s1.brk == s0.brk, "the break moved");
		TST_CHILD_REQUIRE(tst_is_mapped(p) &&
				      tst_is_mapped(p + sizes[i] - 1),
				  "block %zu not mapped", i);
		p[0] = 1;
		p[sizes[i] - 1] = 2;
		snprintf(label, sizeof label, "free%zu", i);
		tst_mark(label);
		os_free(p);
		snprintf(label, sizeof label, "free%zu-end", i);
		tst_mark(label);
		tst_sys_snapshot(&s2);
		TST_CHILD_REQUIRE(DELTA(s1, s2, munmap) == 1 &&
				      DELTA(s1, s2, mmap) == 0,
				  "os_free of %zu bytes: %lu munmap, %lu mmap",
				  sizes[i], DELTA(s1, s2, munmap),
				  DELTA(s1, s2, mmap));
		TST_CHILD_REQUIRE(!tst_is_mapped(p) &&
				      !tst_is_mapped(p + sizes[i] - 1),
				  "block %zu still mapped after os_free", i);
		TST_CHILD_REQUIRE(tst_maps_count() == maps0,
				  "%ld mappings, %ld before", tst_maps_count(),
				  maps0);
	}
	printf("n=%d\n", (int)N);
	return TST_CHILD_OK;
}

/* One byte under the threshold: from the brk heap, no mmap, no munmap. */
static int scenario_below_threshold(void)
{
	warm_up_libc();
	struct tst_sys s0, s1, s2;
	tst_sys_snapshot(&s0);
	tst_mark("begin");
	unsigned char *p = os_malloc(THRESHOLD - 1);
	tst_mark("end");
	tst_sys_snapshot(&s1);
	TST_CHILD_REQUIRE(p != NULL, "os_malloc");
	TST_CHILD_REQUIRE(DELTA(s0, s1, mmap) == 0, "%lu mmap calls",
			  DELTA(s0, s1, mmap));
	TST_CHILD_REQUIRE(DELTA(s0, s1, sbrk) >= 1, "no sbrk");
	TST_CHILD_REQUIRE((uintptr_t)p >= s0.brk &&
			      (uintptr_t)p + THRESHOLD - 1 <= s1.brk,
			  "%p is not in the brk heap", (void *)p);
	memset(p, 3, THRESHOLD - 1);
	tst_mark("begin2");
	os_free(p);
	tst_mark("end2");
	tst_sys_snapshot(&s2);
	TST_CHILD_REQUIRE(DELTA(s1, s2, munmap) == 0 && DELTA(s1, s2, sbrk) == 0,
			  "os_free made system calls");
	printf("ok\n");
	return TST_CHILD_OK;
}

/* A mixed workload; prints what lib/os.c counted between the markers. */
static int scenario_mixed(void)
{
	warm_up_libc();
	struct tst_sys s0, s1;
	void *keep[400] = {0};
	uint64_t rng = 3;
	tst_sys_snapshot(&s0);
	tst_mark("begin");
	for (int r = 0; r < 4000; r++) {
		size_t k = tst_rand(&rng) % 400;
		if (keep[k]) {
			if (tst_rand(&rng) % 3 == 0) {
				void *q = os_realloc(
				    keep[k], tst_rand_range(&rng, 1, 400000));
				if (q)
					keep[k] = q;
			} else {
				os_free(keep[k]);
				keep[k] = NULL;
			}
			continue;
		}
		size_t n = tst_rand(&rng) % 10 == 0
			       ? tst_rand_range(&rng, 100000, 900000)
			       : tst_rand_range(&rng, 1, 30000);
		keep[k] = tst_rand(&rng) % 2 ? os_malloc(n) : os_calloc(1, n);
	}
	for (int k = 0; k < 400; k++)
		os_free(keep[k]);
	tst_mark("end");
	tst_sys_snapshot(&s1);
	printf("sbrk=%lu mmap=%lu munmap=%lu mremap=%lu\n", DELTA(s0, s1, sbrk),
	       DELTA(s0, s1, mmap), DELTA(s0, s1, munmap),
	       DELTA(s0, s1, mremap));
	return TST_CHILD_OK;
}

/* The heap's top fills and empties 11 times with the same 4 MB of
 * blocks.  The first time, the pages beyond the kept part are given back
 * (madvise); each time they are needed again the trim threshold doubles,
 * so by the last round nothing is given back any more. */
static int scenario_trim(void)
{
	enum { N = 40, SIZE = 100000, ROUNDS = 11 };
	unsigned char *p[N];
	warm_up_libc();
	for (int round = 0; round < ROUNDS; round++) {
		tst_mark(round == 0 ? "first" : round == ROUNDS - 1 ? "last"
								   : "round");
		for (int i = 0; i < N; i++) {
			p[i] = os_malloc(SIZE);
			TST_CHILD_REQUIRE(p[i] != NULL, "os_malloc(%d)", SIZE);
			memset(p[i], round + 1, SIZE);
		}
		for (int i = N - 1; i >= 0; i--) {
			TST_CHILD_REQUIRE(p[i][0] == round + 1 &&
					      p[i][SIZE - 1] == round + 1,
					  "block %d lost its contents", i);
			os_free(p[i]);
		}
		tst_mark(round == 0 ? "first-end"
				    : round == ROUNDS - 1 ? "last-end"
							  : "round-end");
	}
	TST_CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	printf("ok\n");
	return TST_CHILD_OK;
}

/* A 4 MiB block's mapping asks for transparent huge pages; a 1 MiB one,
 * which cannot hold a 2 MiB page, does not.  The child prints where the
 * big block lies in its 2 MiB page. */
static int scenario_hugepage(void)
{
	warm_up_libc();
	tst_mark("big");
	unsigned char *big = os_malloc(4 << 20);
	tst_mark("big-end");
	tst_mark("mid");
	unsigned char *mid = os_malloc(1 << 20);
	tst_mark("mid-end");
	TST_CHILD_REQUIRE(big && mid, "os_malloc");
	memset(big, 7, 4 << 20);
	memset(mid, 8, 1 << 20);
	TST_CHILD_REQUIRE(big[(4 << 20) - 1] == 7 && mid[0] == 8, "contents");
	printf("big_offset=%lu\n",
	       (unsigned long)((uintptr_t)big & (OSA_HUGE_PAGE - 1)));
	os_free(big);
	os_free(mid);
	return TST_CHILD_OK;
}

/* 20 MiB of 4 KiB blocks, each written: the brk heap passes OSA_HUGE_HEAP
 * (8 MiB) on the way. */
static int scenario_big_heap(void)
{
	enum { N = 5120, SIZE = 4096 };
	warm_up_libc();
	void *first = os_malloc(100);
	TST_CHILD_REQUIRE(first != NULL, "os_malloc");
	static unsigned char *p[N];
	tst_mark("grow");
	for (int i = 0; i < N; i++) {
		p[i] = os_malloc(SIZE);
		TST_CHILD_REQUIRE(p[i] != NULL, "os_malloc #%d", i);
		memset(p[i], i & 0xff, SIZE);
	}
	tst_mark("grow-end");
	for (int i = 0; i < N; i++) {
		TST_CHILD_REQUIRE(p[i][0] == (i & 0xff) &&
					  p[i][SIZE - 1] == (i & 0xff),
				  "block %d lost its contents", i);
		os_free(p[i]);
	}
	os_free(first);
	TST_CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	printf("first=%p\n", first);
	return TST_CHILD_OK;
}

/* Someone else moved the break by 24 bytes first (a program that calls
 * sbrk itself), so the heap starts inside a page that is not all ours.  The
 * child then grows the heap as big_heap does, or, with heap_prealloc=16 MiB,
 * makes one allocation. */
static int scenario_unaligned_break(void)
{
	warm_up_libc();
	TST_CHILD_REQUIRE(sbrk(24) != (void *)-1, "sbrk(24)");
	uintptr_t before = (uintptr_t)sbrk(0);
	TST_CHILD_REQUIRE(before % OSA_PAGE != 0, "the break is page-aligned");
	int rc = TST_CHILD_OK;
	const char *opt = getenv("OSALLOC_OPTIONS");
	if (!opt || !strstr(opt, "heap_prealloc")) {
		rc = scenario_big_heap();
	} else {
		tst_mark("grow");
		void *p = os_malloc(32);
		tst_mark("grow-end");
		TST_CHILD_REQUIRE(p != NULL, "os_malloc");
		os_free(p);
	}
	/* Printed last: the C library's malloc may move the break to print. */
	printf("brk_before=0x%" PRIxPTR "\n", before);
	return rc;
}

/* Pages about to be written are faulted in with one call
 * (MADV_POPULATE_WRITE): a zeroed large block under 2 MiB, the pages a
 * growing realloc asks for, and the pages a move copies into; of a zeroed
 * block of 2 MiB or more, only the part past its last whole 2 MiB (the
 * rest are huge pages).  A plain os_malloc is left alone. */
static int scenario_populate(void)
{
	enum { MIB = 1 << 20 };
	warm_up_libc();
	tst_mark("calloc");
	unsigned char *z = os_calloc(1, MIB);
	tst_mark("calloc-end");
	tst_mark("malloc");
	unsigned char *m = os_malloc(MIB);
	tst_mark("malloc-end");
	tst_mark("bigcalloc");
	unsigned char *zz = os_calloc(3, MIB);
	tst_mark("bigcalloc-end");
	TST_CHILD_REQUIRE(z && m && zz, "allocation");
	TST_CHILD_REQUIRE(z[0] == 0 && z[MIB - 1] == 0 && zz[3 * MIB - 1] == 0,
			  "calloc zeroes");
	memset(m, 5, MIB);
	tst_mark("grow");
	m = os_realloc(m, MIB + MIB / 2);
	tst_mark("grow-end");
	TST_CHILD_REQUIRE(m && m[0] == 5 && m[MIB - 1] == 5, "grown contents");
	unsigned char *h = os_malloc(100000);
	TST_CHILD_REQUIRE(h != NULL, "os_malloc(100000)");
	memset(h, 6, 100000);
	tst_mark("move");
	h = os_realloc(h, 600000);
	tst_mark("move-end");
	TST_CHILD_REQUIRE(h && h[0] == 6 && h[99999] == 6, "moved contents");
	os_free(z);
	os_free(m);
	os_free(zz);
	os_free(h);
	printf("ok\n");
	return TST_CHILD_OK;
}

/* A second thread's first allocation: its arena's window, 1 GiB of
 * address space reserved with one mmap (PROT_NONE), of which the first
 * 128 KiB are made usable with one mprotect; no brk.  (The block-start
 * map may map a leaf for the new range too.) */
static void *arena_thread(void *arg)
{
	void **out = arg;
	tst_mark("thread");
	out[0] = os_malloc(100);
	tst_mark("thread-end");
	return NULL;
}

static int scenario_arena(void)
{
	warm_up_libc();
	void *mine = os_malloc(100), *theirs = NULL;
	TST_CHILD_REQUIRE(mine != NULL, "os_malloc in the main thread");
	pthread_t t;
	TST_CHILD_REQUIRE(pthread_create(&t, NULL, arena_thread, &theirs) == 0,
			  "pthread_create");
	TST_CHILD_REQUIRE(pthread_join(t, NULL) == 0, "pthread_join");
	TST_CHILD_REQUIRE(theirs != NULL, "os_malloc in the thread");
	printf("main=%p thread=%p\n", mine, theirs);
	os_free(theirs);
	os_free(mine);
	return 0;
}

static const struct tst_scenario scenarios[] = {
	{"arena", scenario_arena},
	{"populate", scenario_populate},
	{"trim", scenario_trim},
	{"hugepage", scenario_hugepage},
	{"big_heap", scenario_big_heap},
	{"unaligned_break", scenario_unaligned_break},
	{"first_small", scenario_first_small},
	{"every_class", scenario_every_class},
	{"amortized", scenario_amortized},
	{"large", scenario_large},
	{"below_threshold", scenario_below_threshold},
	{"mixed", scenario_mixed},
	{NULL, NULL},
};

/* ---- in-process cases ------------------------------------------------ */

static void run_ok(const char *name, const char *options)
{
	struct tst_child c;
	tst_run_scenario(name, options, 60, &c);
	TST_ASSERT_CHILD_OK(&c);
	tst_child_release(&c);
}

START_TEST(test_first_small_allocation_makes_one_brk_growth_of_128k)
{
	run_ok("first_small", NULL);
}
END_TEST

START_TEST(test_one_block_of_every_cached_size_fits_in_the_preallocation)
{
	run_ok("every_class", NULL);
}
END_TEST

START_TEST(test_heap_prealloc_option_sets_the_first_growth)
{
	run_ok("first_small", "heap_prealloc=524288");
}
END_TEST

START_TEST(test_heap_growth_is_amortized)
{
	run_ok("amortized", NULL);
}
END_TEST

START_TEST(test_threshold_requests_get_one_mmap_and_free_unmaps_at_once)
{
	run_ok("large", NULL);
}
END_TEST

START_TEST(test_one_byte_under_the_threshold_does_not_mmap)
{
	run_ok("below_threshold", NULL);
}
END_TEST

START_TEST(test_mmap_threshold_option_moves_the_threshold)
{
	/* With the threshold at 64 KiB, 64 KiB - 1 comes from the heap and
	 * 64 KiB gets a mapping. */
	struct tst_sys s0, s1;
	setenv("OSALLOC_OPTIONS", "mmap_threshold=65536", 1);
	tst_sys_snapshot(&s0);
	void *a = os_malloc(65535);
	tst_sys_snapshot(&s1);
	ck_assert_uint_eq(s1.mmap - s0.mmap, 0);
	void *b = os_malloc(65536);
	tst_sys_snapshot(&s0);
	ck_assert_uint_eq(s0.mmap - s1.mmap, 1);
	os_free(b);
	tst_sys_snapshot(&s1);
	ck_assert_uint_eq(s1.munmap - s0.munmap, 1);
	os_free(a);
}
END_TEST

/* ---- under strace ---------------------------------------------------- */

/* Runs a scenario under strace; false (and a note) when strace cannot run
 * here. */
static bool traced_calls(const char *name, const char *options,
			 const char *calls, char **trace, struct tst_child *c)
{
	if (!tst_strace_available()) {
		fprintf(stderr, "strace is not usable here: %s not checked "
				"against the kernel\n",
			name);
		return false;
	}
	int rc = tst_strace_scenario(name, options, calls, 120, trace, c);
	ck_assert_msg(rc == 0, "strace could not run: %s", c->err);
	TST_ASSERT_CHILD_OK(c);
	return true;
}

static bool traced(const char *name, const char *options, char **trace,
		   struct tst_child *c)
{
	return traced_calls(name, options, "brk,mmap,munmap,mremap", trace, c);
}

static long count(const char *trace, const char *from, const char *to,
		  const char *call)
{
	long n = tst_trace_count(trace, from, to, call, NULL, 0);
	ck_assert_msg(n >= 0, "markers %s..%s missing in the trace:\n%.2000s",
		      from, to, trace);
	return n;
}

START_TEST(test_strace_first_small_allocation_is_one_brk)
{
	char *trace;
	struct tst_child c;
	if (!traced("first_small", NULL, &trace, &c))
		return;
	uintptr_t res[4] = {0};
	long brk = tst_trace_count(trace, "begin", "end", "brk", res, 4);
	ck_assert_msg(brk == 1, "%ld brk calls in:\n%.3000s", brk, trace);
	ck_assert_int_eq(count(trace, "begin", "end", "mmap"), 0);
	ck_assert_int_eq(count(trace, "begin", "end", "munmap"), 0);
	uintptr_t before = 0, after = 0;
	ck_assert_int_eq(sscanf(c.out, "brk_before=0x%" SCNxPTR
				       " brk_after=0x%" SCNxPTR,
				&before, &after),
			 2);
	ck_assert_msg(res[0] == after && after - before == 128 * KiB,
		      "brk returned 0x%" PRIxPTR ", break 0x%" PRIxPTR
		      " -> 0x%" PRIxPTR,
		      res[0], before, after);
	/* 1000 more small blocks: no system call. */
	ck_assert_int_eq(count(trace, "begin2", "end2", "brk"), 0);
	ck_assert_int_eq(count(trace, "begin2", "end2", "mmap"), 0);
	free(trace);
	tst_child_release(&c);
}
END_TEST

START_TEST(test_strace_heap_growth_is_amortized)
{
	char *trace;
	struct tst_child c;
	if (!traced("amortized", NULL, &trace, &c))
		return;
	unsigned long growths = 0, leaves = 0;
	size_t smallest = 0;
	ck_assert_int_eq(sscanf(c.out, "growths=%lu smallest=%zu leaves=%lu",
				&growths, &smallest, &leaves),
			 3);
	enum { MAX = 4096 };
	static uintptr_t res[MAX];
	long brk = tst_trace_count(trace, "begin", "end", "brk", res, MAX);
	ck_assert_int_eq(brk, (long)growths);
	ck_assert_int_le(brk, MAX);
	ck_assert_int_eq(count(trace, "begin", "end", "mmap"), (long)leaves);
	/* Each brk moved the break by 128 KiB or more. */
	for (long i = 1; i < brk; i++)
		ck_assert_msg(res[i] - res[i - 1] >= 128 * KiB,
			      "brk #%ld grew by %zu bytes", i,
			      (size_t)(res[i] - res[i - 1]));
	free(trace);
	tst_child_release(&c);
}
END_TEST

START_TEST(test_strace_large_block_is_one_mmap_and_one_munmap)
{
	char *trace;
	struct tst_child c;
	if (!traced("large", NULL, &trace, &c))
		return;
	int n = 0;
	ck_assert_int_eq(sscanf(c.out, "n=%d", &n), 1);
	ck_assert_int_eq(n, N_LARGE);
	for (int i = 0; i < n; i++) {
		char a[32], ae[32], f[32], fe[32];
		snprintf(a, sizeof a, "alloc%d", i);
		snprintf(ae, sizeof ae, "alloc%d-end", i);
		snprintf(f, sizeof f, "free%d", i);
		snprintf(fe, sizeof fe, "free%d-end", i);
		ck_assert_msg(count(trace, a, ae, "mmap") == 1,
			      "block %d: not one mmap", i);
		ck_assert_int_eq(count(trace, a, ae, "brk"), 0);
		ck_assert_int_eq(count(trace, a, ae, "munmap"),
				 large_trims(large_sizes[i]));
		ck_assert_msg(count(trace, f, fe, "munmap") == 1,
			      "block %d: os_free did not munmap once", i);
		ck_assert_int_eq(count(trace, f, fe, "mmap"), 0);
	}
	free(trace);
	tst_child_release(&c);
}
END_TEST

START_TEST(test_strace_one_byte_under_the_threshold_does_not_mmap)
{
	char *trace;
	struct tst_child c;
	if (!traced("below_threshold", NULL, &trace, &c))
		return;
	ck_assert_int_eq(count(trace, "begin", "end", "mmap"), 0);
	ck_assert_int_ge(count(trace, "begin", "end", "brk"), 1);
	ck_assert_int_eq(count(trace, "begin2", "end2", "munmap"), 0);
	ck_assert_int_eq(count(trace, "begin2", "end2", "brk"), 0);
	free(trace);
	tst_child_release(&c);
}
END_TEST

START_TEST(test_strace_every_memory_syscall_goes_through_os_c)
{
	char *trace;
	struct tst_child c;
	if (!traced("mixed", NULL, &trace, &c))
		return;
	unsigned long sbrk = 0, mmap = 0, munmap = 0, mremap = 0;
	ck_assert_int_eq(sscanf(c.out, "sbrk=%lu mmap=%lu munmap=%lu mremap=%lu",
				&sbrk, &mmap, &munmap, &mremap),
			 4);
	ck_assert_msg(mmap > 10 && munmap > 10 && sbrk > 0,
		      "the workload made too few calls to prove anything");
	/* Counted by os.c == made, as the kernel saw them. */
	ck_assert_int_eq(count(trace, "begin", "end", "brk"), (long)sbrk);
	ck_assert_int_eq(count(trace, "begin", "end", "mmap"), (long)mmap);
	ck_assert_int_eq(count(trace, "begin", "end", "munmap"), (long)munmap);
	ck_assert_int_eq(count(trace, "begin", "end", "mremap"), (long)mremap);
	free(trace);
	tst_child_release(&c);
}
END_TEST

START_TEST(test_strace_trim_threshold_grows_when_trimmed_pages_return)
{
	char *trace;
	struct tst_child c;
	if (!traced_calls("trim", NULL, "brk,mmap,munmap,madvise", &trace, &c))
		return;
	long first = count(trace, "first", "first-end", "madvise");
	long last = count(trace, "last", "last-end", "madvise");
	ck_assert_msg(first >= 1,
		      "emptying a 4 MB top gave no pages back:\n%.3000s", trace);
	ck_assert_msg(last == 0,
		      "%ld madvise calls in the last round: the threshold did "
		      "not grow",
		      last);
	ck_assert_int_eq(count(trace, "first", "last-end", "mmap"), 0);
	ck_assert_int_eq(count(trace, "first", "last-end", "munmap"), 0);
	free(trace);
	tst_child_release(&c);
}
END_TEST

static char *section(const char *trace, const char *from, const char *to);

/* Linux places an anonymous mapping that is a whole number of 2 MiB long on
 * a 2 MiB boundary since 6.7. */
static bool kernel_aligns_huge_mappings(void)
{
	struct utsname u;
	int major = 0, minor = 0;
	return uname(&u) == 0 &&
	       sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
	       (major > 6 || (major == 6 && minor >= 7));
}

/* os_malloc(4 MiB): the block needs 4 MiB + 1 page.  One mmap of 6 MiB, one
 * munmap of the 2 MiB - 1 page past the block, and MADV_HUGEPAGE for the
 * rest, which is the block's mapping; where the kernel aligns the mapping,
 * the block's first 4 MiB are two whole huge pages. */
START_TEST(test_strace_mappings_of_2mib_and_more_ask_for_huge_pages)
{
	char *trace;
	struct tst_child c;
	if (!traced_calls("hugepage", NULL, "mmap,munmap,madvise", &trace,
			  &c))
		return;
	ck_assert_int_eq(count(trace, "big", "big-end", "mmap"), 1);
	ck_assert_int_eq(count(trace, "big", "big-end", "munmap"), 1);
	ck_assert_int_eq(count(trace, "big", "big-end", "madvise"), 1);
	char *text = section(trace, "big", "big-end");
	unsigned long map_len = 0, map_at = 0, unmap_at = 0, unmap_len = 0;
	unsigned long advise_at = 0, advise_len = 0;
	const char *m = strstr(text, "mmap(NULL, ");
	const char *u = strstr(text, "munmap(");
	const char *a = strstr(text, "madvise(");
	ck_assert_msg(m && sscanf(m, "mmap(NULL, %lu,", &map_len) == 1 &&
			      strstr(m, ") = 0x") &&
			      sscanf(strstr(m, ") = 0x"), ") = 0x%lx",
				     &map_at) == 1,
		      "no mmap in:\n%.2000s", text);
	ck_assert_msg(u && sscanf(u, "munmap(0x%lx, %lu)", &unmap_at,
				  &unmap_len) == 2,
		      "no munmap in:\n%.2000s", text);
	ck_assert_msg(a && sscanf(a, "madvise(0x%lx, %lu, MADV_HUGEPAGE",
				  &advise_at, &advise_len) == 2,
		      "no MADV_HUGEPAGE in:\n%.2000s", text);
	const unsigned long need = (4ul << 20) + OSA_PAGE;
	ck_assert_uint_eq(map_len, 6ul << 20);
	ck_assert_uint_eq(unmap_at, map_at + need);
	ck_assert_uint_eq(unmap_len, (2ul << 20) - OSA_PAGE);
	ck_assert_uint_eq(advise_at, map_at);
	ck_assert_uint_eq(advise_len, need);
	free(text);
	unsigned long offset = 0;
	ck_assert_int_eq(sscanf(c.out, "big_offset=%lu", &offset), 1);
	if (kernel_aligns_huge_mappings())
		ck_assert_uint_eq(offset, OSA_HDR);
	ck_assert_int_eq(count(trace, "mid", "mid-end", "mmap"), 1);
	ck_assert_int_eq(count(trace, "mid", "mid-end", "munmap"), 0);
	ck_assert_int_eq(count(trace, "mid", "mid-end", "madvise"), 0);
	free(trace);
	tst_child_release(&c);
}
END_TEST

/* What the trace of the big_heap scenario shows about the heap's growth and
 * its MADV_HUGEPAGE hints. */
struct huge_growth {
	unsigned long brks, brks_after_hint, unaligned_brks;
	unsigned long hints, unaligned_hints, first_at, first_len;
	unsigned long populates_after_hint; /* MADV_POPULATE_WRITE calls */
};

static struct huge_growth huge_growth_of(const char *trace)
{
	struct huge_growth g = {0};
	char *text = section(trace, "grow", "grow-end");
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned long at, len;
		const char *b = strstr(line, "brk(0x");
		const char *a = strstr(line, "madvise(0x");
		if (b && sscanf(b, "brk(0x%lx)", &at) == 1) {
			g.brks++;
			g.brks_after_hint += g.hints > 0;
			g.unaligned_brks += g.hints > 0 && at % OSA_HUGE_PAGE;
		} else if (a && strstr(a, "MADV_POPULATE_WRITE")) {
			g.populates_after_hint += g.hints > 0;
		} else if (a && strstr(a, "MADV_HUGEPAGE") &&
			   sscanf(a, "madvise(0x%lx, %lu,", &at, &len) == 2) {
			if (g.hints++ == 0) {
				g.first_at = at;
				g.first_len = len;
			} else if (at % OSA_HUGE_PAGE) {
				g.unaligned_hints++;
			}
		}
	}
	free(text);
	return g;
}

/* A brk heap that reaches 8 MiB asks for transparent huge pages: one
 * MADV_HUGEPAGE from its start to the new break, then one for each growth,
 * from the 2 MiB boundary below it; every break from then on is on a 2 MiB
 * boundary, so that whole huge pages fit, and the pages ahead of the top
 * are populated a 2 MiB page at a time. */
START_TEST(test_strace_heap_of_8mib_and_more_asks_for_huge_pages)
{
	char *trace;
	struct tst_child c;
	if (!traced_calls("big_heap", NULL, "brk,madvise", &trace, &c))
		return;
	void *first = NULL;
	ck_assert_int_eq(sscanf(c.out, "first=%p", &first), 1);
	struct huge_growth g = huge_growth_of(trace);
	ck_assert_msg(g.hints >= 2, "%lu MADV_HUGEPAGE hints", g.hints);
	ck_assert_uint_ge(g.first_len, 8ul << 20);
	ck_assert_uint_le(g.first_at, (uintptr_t)first);
	ck_assert_uint_gt(g.first_at + (1ul << 20), (uintptr_t)first);
	ck_assert_uint_eq(g.unaligned_hints, 0);
	ck_assert_uint_eq(g.unaligned_brks, 0);
	/* 12 MiB more after the first hint: 2 MiB or more at a time. */
	ck_assert_uint_ge(g.brks_after_hint, 1);
	ck_assert_uint_le(g.brks_after_hint, 7);
	ck_assert_uint_eq(g.hints, g.brks_after_hint + 1);
	/* Pages ahead of the top: one call per 2 MiB page (12 MiB, and the
	 * rest of the page the first hint left the top in), not 32. */
	ck_assert_uint_ge(g.populates_after_hint, 1);
	ck_assert_uint_le(g.populates_after_hint, 8);
	free(trace);
	tst_child_release(&c);
}
END_TEST

/* A heap that starts at 8 MiB or more (heap_prealloc=16 MiB) is hinted for
 * transparent huge pages at once, all of it, before its first block is
 * written. */
START_TEST(test_strace_heap_born_big_asks_for_huge_pages_at_once)
{
	char *trace;
	struct tst_child c;
	if (!traced_calls("first_small", "heap_prealloc=16777216", "brk,madvise",
			  &trace, &c))
		return;
	uintptr_t before = 0, after = 0;
	ck_assert_int_eq(sscanf(c.out, "brk_before=0x%" SCNxPTR
				       " brk_after=0x%" SCNxPTR,
				&before, &after),
			 2);
	ck_assert_uint_eq(after - before, 16ul << 20);
	ck_assert_int_eq(count(trace, "begin", "end", "brk"), 1);
	char *text = section(trace, "begin", "end");
	const char *a = strstr(text, "MADV_HUGEPAGE");
	unsigned long at = 0, len = 0;
	while (a && a > text && strncmp(a, "madvise(", 8) != 0)
		a--;
	ck_assert_msg(a && sscanf(a, "madvise(0x%lx, %lu, MADV_HUGEPAGE", &at,
				  &len) == 2,
		      "no MADV_HUGEPAGE in:\n%.2000s", text);
	ck_assert_uint_eq(at, osa_align_up(before, OSA_PAGE));
	ck_assert_uint_eq(at + len, after);
	free(text);
	free(trace);
	tst_child_release(&c);
}
END_TEST

/* Every MADV_HUGEPAGE between the grow marks starts on a page boundary, at
 * or after the break the child found, and succeeded; returns how many. */
static unsigned long hints_from_first_whole_page(const char *trace,
						 uintptr_t before)
{
	unsigned long n = 0;
	char *text = section(trace, "grow", "grow-end");
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		const char *a = strstr(line, "madvise(0x");
		unsigned long at, len;
		if (!a || !strstr(a, "MADV_HUGEPAGE"))
			continue;
		ck_assert_int_eq(sscanf(a, "madvise(0x%lx, %lu,", &at, &len), 2);
		ck_assert_msg(strstr(a, ") = 0") != NULL, "hint failed: %s", a);
		ck_assert_uint_eq(at % OSA_PAGE, 0);
		ck_assert_uint_ge(at, osa_align_up(before, OSA_PAGE));
		n++;
	}
	free(text);
	return n;
}

/* The program moved the break by 24 bytes before the heap's first growth.
 * The heap's first segment takes the rest of that page, so that the break
 * is where it left it at the next growth: the segment grows in place (it
 * started a new segment at every growth, and never reached 8 MiB), and is
 * hinted for huge pages from its first whole page (madvise refuses a range
 * that starts inside a page).  Both ways a segment is hinted: as it passes
 * 8 MiB, and born at 16 MiB. */
START_TEST(test_strace_heap_inside_a_page_is_hinted_from_its_first_whole_page)
{
	static const char *options[] = {NULL, "heap_prealloc=16777216"};
	for (int i = 0; i < 2; i++) {
		char *trace;
		struct tst_child c;
		if (!traced_calls("unaligned_break", options[i], "brk,madvise",
				  &trace, &c))
			return;
		uintptr_t before = 0;
		const char *out = strstr(c.out, "brk_before=");
		ck_assert_msg(out && sscanf(out, "brk_before=0x%" SCNxPTR,
					    &before) == 1,
			      "no brk_before in: %s", c.out);
		unsigned long hints = hints_from_first_whole_page(trace, before);
		ck_assert_msg(hints >= (i == 0 ? 2u : 1u),
			      "%lu MADV_HUGEPAGE hints with %s", hints,
			      options[i] ? options[i] : "no options");
		/* The heap grew in place, as from an aligned break: 2 MiB
		 * at a time past 8 MiB, not a new segment per growth. */
		struct huge_growth g = huge_growth_of(trace);
		ck_assert_uint_eq(g.unaligned_brks, 0);
		ck_assert_uint_le(g.brks, i == 0 ? 80u : 1u);
		ck_assert_uint_le(g.brks_after_hint, 7);
		free(trace);
		tst_child_release(&c);
	}
}
END_TEST

/* OSALLOC_OPTIONS=thp=0: no hint, for the heap or for a large block, and
 * no rounding of the large block's mapping. */
START_TEST(test_strace_thp_option_off_asks_for_no_huge_pages)
{
	char *trace;
	struct tst_child c;
	if (!traced_calls("big_heap", "thp=0", "brk,madvise", &trace, &c))
		return;
	struct huge_growth g = huge_growth_of(trace);
	ck_assert_uint_eq(g.hints, 0);
	ck_assert_uint_ge(g.brks, 20); /* the heap did grow, in small steps */
	free(trace);
	tst_child_release(&c);
	if (!traced_calls("hugepage", "thp=0", "mmap,munmap,madvise", &trace,
			  &c))
		return;
	ck_assert_int_eq(count(trace, "big", "big-end", "mmap"), 1);
	ck_assert_int_eq(count(trace, "big", "big-end", "munmap"), 0);
	ck_assert_int_eq(count(trace, "big", "big-end", "madvise"), 0);
	free(trace);
	tst_child_release(&c);
}
END_TEST

/* The text of the trace between two markers ("" if they are missing). */
static char *section(const char *trace, const char *from, const char *to)
{
	char a[64], b[64];
	snprintf(a, sizeof a, "tst-mark:%s\"", from);
	snprintf(b, sizeof b, "tst-mark:%s\"", to);
	const char *s = strstr(trace, a);
	const char *e = s ? strstr(s, b) : NULL;
	size_t n = s && e ? (size_t)(e - s) : 0;
	char *out = malloc(n + 1);
	ck_assert_ptr_nonnull(out);
	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

/* Asserts that the section has one madvise(MADV_POPULATE_WRITE) of min to
 * max bytes, or none when min is 0. */
static void assert_populate(const char *trace, const char *from,
			    const char *to, unsigned long min,
			    unsigned long max)
{
	char *text = section(trace, from, to);
	const char *at = strstr(text, "MADV_POPULATE_WRITE");
	if (min == 0) {
		ck_assert_msg(!at, "%s: unexpected populate in:\n%.2000s", from,
			      text);
	} else {
		ck_assert_msg(at, "%s: no MADV_POPULATE_WRITE in:\n%.2000s",
			      from, text);
		ck_assert_msg(!strstr(at + 1, "MADV_POPULATE_WRITE"),
			      "%s: populated twice:\n%.2000s", from, text);
		/* madvise(0x7f..., 1052672, MADV_POPULATE_WRITE) */
		const char *comma = at;
		while (comma > text && comma[-1] != '(')
			comma--;
		unsigned long len = 0;
		ck_assert_msg(sscanf(comma, "%*[^,], %lu,", &len) == 1 &&
				      len >= min && len <= max,
			      "%s: populated %lu bytes, want %lu to %lu:\n%.2000s",
			      from, len, min, max, text);
	}
	free(text);
}

START_TEST(test_strace_pages_about_to_be_written_are_populated_in_one_call)
{
	char *trace;
	struct tst_child c;
	if (!traced_calls("populate", NULL, "mmap,mremap,madvise", &trace, &c))
		return;
	assert_populate(trace, "calloc", "calloc-end", 1ul << 20,
			(1ul << 20) + 2 * OSA_PAGE);
	assert_populate(trace, "malloc", "malloc-end", 0, 0);
	/* 3 MiB: the first 2 MiB are a huge page, the rest is populated
	 * (where the mapping starts on a 2 MiB boundary). */
	bool aligned = kernel_aligns_huge_mappings();
	assert_populate(trace, "bigcalloc", "bigcalloc-end",
			aligned ? 1ul << 20 : OSA_PAGE,
			aligned ? (1ul << 20) + 2 * OSA_PAGE
				: (2ul << 20) + OSA_PAGE);
	ck_assert_int_eq(count(trace, "grow", "grow-end", "mremap"), 1);
	assert_populate(trace, "grow", "grow-end", (1ul << 20) / 2 - 4096,
			(1ul << 20) / 2);
	ck_assert_int_eq(count(trace, "move", "move-end", "mmap"), 1);
	assert_populate(trace, "move", "move-end", 100000 - 4096,
			100000 + 2 * OSA_PAGE);
	free(trace);
	tst_child_release(&c);
}
END_TEST

START_TEST(test_strace_a_second_thread_reserves_its_arena)
{
	char *trace;
	struct tst_child c;
	if (!traced_calls("arena", NULL, "brk,mmap,mprotect", &trace, &c))
		return;
	ck_assert_int_eq(count(trace, "thread", "thread-end", "brk"), 0);
	long maps = count(trace, "thread", "thread-end", "mmap");
	ck_assert_msg(maps >= 1 && maps <= 2, "%ld mmap calls", maps);
	ck_assert_int_eq(count(trace, "thread", "thread-end", "mprotect"), 1);
	char *text = section(trace, "thread", "thread-end");
	unsigned long len = 0, at = 0, prot_at = 0, prot_len = 0;
	const char *m = strstr(text, "PROT_NONE");
	ck_assert_msg(m && !strstr(m + 1, "PROT_NONE"),
		      "not one reservation in:\n%.2000s", text);
	while (m > text && m[-1] != '\n' && m[-1] != ']')
		m--;
	m = strstr(m, "mmap(NULL, ");
	const char *p = strstr(text, "mprotect(");
	ck_assert_msg(m && sscanf(m, "mmap(NULL, %lu, PROT_NONE, "
				     "MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE",
				  &len) == 1 &&
			      strstr(m, ") = 0x") &&
			      sscanf(strstr(m, ") = 0x"), ") = 0x%lx", &at) == 1,
		      "no reservation in:\n%.2000s", text);
	ck_assert_msg(p && sscanf(p, "mprotect(0x%lx, %lu, "
				     "PROT_READ|PROT_WRITE) = 0",
				  &prot_at, &prot_len) == 2,
		      "no mprotect in:\n%.2000s", text);
	ck_assert_uint_eq(len, 1ul << 30);
	ck_assert_uint_eq(prot_at, at);
	ck_assert_uint_eq(prot_len, 128 * KiB);
	free(text);
	void *mine = NULL, *theirs = NULL;
	ck_assert_int_eq(sscanf(c.out, "main=%p thread=%p", &mine, &theirs), 2);
	ck_assert_msg((uintptr_t)theirs - at < 128 * KiB,
		      "the thread's block %p is not in its window at 0x%lx",
		      theirs, at);
	ck_assert_msg((uintptr_t)mine - at >= 1ul << 30,
		      "the main thread's block %p is in the window", mine);
	free(trace);
	tst_child_release(&c);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("syscalls");
	TCase *tc = tcase_create("counted");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_first_small_allocation_makes_one_brk_growth_of_128k);
	tcase_add_test(tc, test_one_block_of_every_cached_size_fits_in_the_preallocation);
	tcase_add_test(tc, test_heap_prealloc_option_sets_the_first_growth);
	tcase_add_test(tc, test_heap_growth_is_amortized);
	tcase_add_test(tc,
		       test_threshold_requests_get_one_mmap_and_free_unmaps_at_once);
	tcase_add_test(tc, test_one_byte_under_the_threshold_does_not_mmap);
	tcase_add_test(tc, test_mmap_threshold_option_moves_the_threshold);
	suite_add_tcase(s, tc);

	tc = tcase_create("strace");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_strace_first_small_allocation_is_one_brk);
	tcase_add_test(tc, test_strace_heap_growth_is_amortized);
	tcase_add_test(tc, test_strace_large_block_is_one_mmap_and_one_munmap);
	tcase_add_test(tc, test_strace_one_byte_under_the_threshold_does_not_mmap);
	tcase_add_test(tc, test_strace_every_memory_syscall_goes_through_os_c);
	tcase_add_test(tc,
		       test_strace_trim_threshold_grows_when_trimmed_pages_return);
	tcase_add_test(tc, test_strace_mappings_of_2mib_and_more_ask_for_huge_pages);
	tcase_add_test(tc, test_strace_heap_of_8mib_and_more_asks_for_huge_pages);
	tcase_add_test(tc, test_strace_thp_option_off_asks_for_no_huge_pages);
	tcase_add_test(tc, test_strace_heap_born_big_asks_for_huge_pages_at_once);
	tcase_add_test(
	    tc, test_strace_heap_inside_a_page_is_hinted_from_its_first_whole_page);
	tcase_add_test(tc, test_strace_a_second_thread_reserves_its_arena);
	tcase_add_test(tc,
		       test_strace_pages_about_to_be_written_are_populated_in_one_call);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	return tst_main(argc, argv, make_suite, scenarios);
}
