/* check_coexist.c - osalloc beside the C library's malloc in one process.
 * Both grow the brk heap, so the break moves under osalloc's feet: its
 * blocks and glibc's must never overlap or corrupt each other, a foreign
 * sbrk between two growths starts a new segment that never merges across
 * the gap, and stdio (which allocates with malloc) works throughout.  Two
 * threads must never grow the break at once (sbrk is not atomic), so
 * osalloc leaves it alone while the process has more than one thread.
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 */
#include "common.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "osalloc.h"

#if TST_SANITIZED
/* The sanitizer's malloc does not use brk; the C library's allocator is
 * still there under these names, and is the one this suite is about. */
void *__libc_malloc(size_t size);
void __libc_free(void *ptr);
#define libc_malloc __libc_malloc
#define libc_free __libc_free
#else
#define libc_malloc malloc
#define libc_free free
#endif

struct blk {
	unsigned char *p;
	size_t n;
	uint64_t seed;
	bool ours; /* os_malloc, else the C library's malloc */
};

static void blk_verify(const struct blk *b, const char *when)
{
	size_t bad = 0;
	ck_assert_msg(tst_verify(b->p, b->n, b->seed, &bad),
		      "%s: %s block %p (%zu bytes) damaged at offset %zu", when,
		      b->ours ? "osalloc" : "libc", (void *)b->p, b->n, bad);
}

static void blk_free(struct blk *b)
{
	if (b->ours)
		os_free(b->p);
	else
		libc_free(b->p);
	b->p = NULL;
}

/* No two live blocks (of either allocator) overlap. */
static int cmp_blk(const void *a, const void *b)
{
	const struct blk *x = a, *y = b;
	return x->p < y->p ? -1 : x->p > y->p;
}

static void assert_disjoint(const struct blk *s, size_t n)
{
	struct blk *v = malloc(n * sizeof *v);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i].p)
			v[k++] = s[i];
	qsort(v, k, sizeof *v, cmp_blk);
	for (size_t i = 1; i < k; i++)
		ck_assert_msg(v[i - 1].p + v[i - 1].n <= v[i].p,
			      "%s block %p+%zu overlaps %s block %p",
			      v[i - 1].ours ? "osalloc" : "libc",
			      (void *)v[i - 1].p, v[i - 1].n,
			      v[i].ours ? "osalloc" : "libc", (void *)v[i].p);
	free(v);
}

/* ---- interleaved use ------------------------------------------------- */

START_TEST(test_interleaved_libc_and_osalloc_blocks_keep_their_contents)
{
	enum { SLOTS = 3000, ROUNDS = 40000 };
	static struct blk s[SLOTS];
	uint64_t rng = 2024, seed = 1;
	uintptr_t brk0 = (uintptr_t)sbrk(0);
	for (int r = 0; r < ROUNDS; r++) {
		struct blk *b = &s[tst_rand(&rng) % SLOTS];
		if (b->p) {
			blk_verify(b, "before free");
			blk_free(b);
			continue;
		}
		uint64_t k = tst_rand(&rng) % 100;
		b->n = k < 80 ? tst_rand_range(&rng, 1, 2000)
			      : tst_rand_range(&rng, 2001, 100000);
		b->ours = tst_rand(&rng) & 1;
		b->p = b->ours ? os_malloc(b->n) : libc_malloc(b->n);
		ck_assert_ptr_nonnull(b->p);
		b->seed = seed++;
		tst_fill(b->p, b->n, b->seed);
		if (r % 10000 == 0) {
			assert_disjoint(s, SLOTS);
			ck_assert_int_eq(os_heap_check(), 0);
		}
	}
	assert_disjoint(s, SLOTS);
	for (size_t i = 0; i < SLOTS; i++)
		if (s[i].p)
			blk_verify(&s[i], "at the end");
	ck_assert_int_eq(os_heap_check(), 0);
	/* The scenario did what it is about: both moved the break, and
	 * osalloc had to start new segments after the C library's growth.
	 * (Not under valgrind, whose malloc replaces the C library's and
	 * never moves the break: the contents were checked all the same.) */
	struct os_mallinfo m;
	tst_mallinfo_exact(&m);
	if (tst_under_valgrind()) {
		tst_skip_note(__FILE__, __LINE__,
			      "valgrind's malloc does not move the break "
			      "(the interleaving was not checked)");
	} else {
		ck_assert_msg((uintptr_t)sbrk(0) - brk0 > m.heap_bytes,
			      "the C library did not grow the break");
		ck_assert_msg(m.heap_segments >= 2,
			      "only %zu segment(s): the break was never moved "
			      "between two growths",
			      m.heap_segments);
	}
	for (size_t i = 0; i < SLOTS; i++)
		if (s[i].p)
			blk_free(&s[i]);
	ck_assert_int_eq(os_heap_check(), 0);
	tst_mallinfo_exact(&m);
	ck_assert_uint_le(m.in_use_bytes, sizeof(struct osa_tcache) + 64);
}
END_TEST

START_TEST(test_libc_growth_between_two_growths_starts_a_new_segment)
{
	TST_SKIP_UNDER_VALGRIND("valgrind's malloc replaces the C library's "
				"and does not move the break");
	struct os_mallinfo m;
	void *first = os_malloc(64);
	tst_mallinfo_exact(&m);
	ck_assert_uint_eq(m.heap_segments, 1);
	size_t segs = 1;
	void *ours[20], *theirs[20];
	for (int i = 0; i < 20; i++) {
		ours[i] = os_malloc(120000);
		ck_assert_ptr_nonnull(ours[i]);
		tst_fill(ours[i], 120000, (uint64_t)i);
		uintptr_t before = (uintptr_t)sbrk(0);
		theirs[i] = libc_malloc(120000); /* grows the break too */
		ck_assert_ptr_nonnull(theirs[i]);
		tst_fill(theirs[i], 120000, 100 + (uint64_t)i);
		if ((uintptr_t)sbrk(0) != before)
			segs++;
	}
	tst_mallinfo_exact(&m);
	ck_assert_uint_ge(segs, 5); /* the C library really moved it */
	ck_assert_uint_ge(m.heap_segments, 5);
	for (int i = 0; i < 20; i++) {
		ck_assert(tst_verify(ours[i], 120000, (uint64_t)i, NULL));
		ck_assert(tst_verify(theirs[i], 120000, 100 + (uint64_t)i,
				     NULL));
	}
	ck_assert_int_eq(os_heap_check(), 0);
	for (int i = 0; i < 20; i++) {
		os_free(ours[i]);
		libc_free(theirs[i]);
	}
	ck_assert_int_eq(os_heap_check(), 0);
	os_free(first);
}
END_TEST

/* ---- a foreign sbrk -------------------------------------------------- */

START_TEST(test_foreign_sbrk_is_never_covered_or_merged)
{
	enum { GAP = 4096 };
	void *first = os_malloc(64);
	struct os_mallinfo m;
	tst_mallinfo_exact(&m);
	ck_assert_uint_eq(m.heap_segments, 1);
	/* Someone else takes the next page of the break. */
	unsigned char *gap = sbrk(GAP);
	ck_assert(gap != (void *)-1);
	tst_fill(gap, GAP, 4242);
	uintptr_t glo = (uintptr_t)gap, ghi = glo + GAP;

	/* Enough to need more memory: a new segment after the gap. */
	unsigned char *p[40];
	for (int i = 0; i < 40; i++) {
		p[i] = os_malloc(20000);
		ck_assert_ptr_nonnull(p[i]);
		uintptr_t a = (uintptr_t)p[i];
		ck_assert_msg(a + os_malloc_usable_size(p[i]) <= glo || a >= ghi,
			      "block %p covers the foreign page %p", (void *)p[i],
			      (void *)gap);
		memset(p[i], 0xee, os_malloc_usable_size(p[i]));
	}
	tst_mallinfo_exact(&m);
	ck_assert_uint_eq(m.heap_segments, 2);
	ck_assert_msg(tst_verify(gap, GAP, 4242, NULL),
		      "the foreign page was written");
	ck_assert_int_eq(os_heap_check(), 0);

	/* All free: the end of the first segment and the start of the second
	 * are free space on both sides of the gap, and must stay apart. */
	for (int i = 0; i < 40; i++)
		os_free(p[i]);
	ck_assert_int_eq(os_heap_check(), 0);
	unsigned char *q[8];
	for (int i = 0; i < 8; i++) {
		q[i] = os_malloc(131000);
		ck_assert_ptr_nonnull(q[i]);
		uintptr_t a = (uintptr_t)q[i];
		ck_assert_msg(a + 131000 <= glo || a >= ghi,
			      "block %p spans the foreign page %p",
			      (void *)q[i], (void *)gap);
		memset(q[i], 0xdd, 131000);
	}
	ck_assert(tst_verify(gap, GAP, 4242, NULL));
	ck_assert_int_eq(os_heap_check(), 0);
	for (int i = 0; i < 8; i++)
		os_free(q[i]);
	ck_assert_int_eq(os_heap_check(), 0);
	os_free(first);
}
END_TEST

START_TEST(test_break_moved_down_by_someone_else_is_survived)
{
	/* A foreign sbrk, then that party gives its page back: the break
	 * ends where osalloc left it, and growth continues in a segment that
	 * does not overlap anything. */
	void *first = os_malloc(64);
	unsigned char *gap = sbrk(65536);
	ck_assert(gap != (void *)-1);
	ck_assert(sbrk(-65536) != (void *)-1);
	void *p[10];
	for (int i = 0; i < 10; i++) {
		p[i] = os_malloc(100000);
		ck_assert_ptr_nonnull(p[i]);
		tst_fill(p[i], 100000, (uint64_t)i);
	}
	for (int i = 0; i < 10; i++) {
		ck_assert(tst_verify(p[i], 100000, (uint64_t)i, NULL));
		os_free(p[i]);
	}
	ck_assert_int_eq(os_heap_check(), 0);
	os_free(first);
}
END_TEST

/* ---- stdio ----------------------------------------------------------- */

START_TEST(test_stdio_works_while_both_allocators_grow)
{
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(mem);
	FILE *tmp = tmpfile();
	ck_assert_ptr_nonnull(tmp);
	enum { N = 3000 };
	static struct blk s[N];
	for (int i = 0; i < N; i++) {
		s[i].n = 1 + (size_t)(i * 37) % 9000;
		s[i].ours = i % 2;
		s[i].p = s[i].ours ? os_malloc(s[i].n) : libc_malloc(s[i].n);
		ck_assert_ptr_nonnull(s[i].p);
		s[i].seed = (uint64_t)i;
		tst_fill(s[i].p, s[i].n, s[i].seed);
		fprintf(mem, "line %d: block of %zu bytes\n", i, s[i].n);
		fprintf(tmp, "%d %zu\n", i, s[i].n);
		if (i % 3 == 0)
			blk_verify(&s[i / 2], "during stdio");
	}
	ck_assert_int_eq(fclose(mem), 0);
	/* The memory stream holds exactly what was printed. */
	char *want = malloc(len + 1), *at = want;
	for (int i = 0; i < N; i++)
		at += sprintf(at, "line %d: block of %zu bytes\n", i, s[i].n);
	ck_assert_uint_eq((size_t)(at - want), len);
	ck_assert_int_eq(memcmp(want, text, len), 0);
	free(want);
	free(text);
	rewind(tmp);
	for (int i = 0; i < N; i++) {
		int j;
		size_t n;
		ck_assert_int_eq(fscanf(tmp, "%d %zu", &j, &n), 2);
		ck_assert_int_eq(j, i);
		ck_assert_uint_eq(n, s[i].n);
	}
	fclose(tmp);
	for (int i = 0; i < N; i++) {
		blk_verify(&s[i], "after stdio");
		blk_free(&s[i]);
	}
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* ---- trimming -------------------------------------------------------- */

START_TEST(test_libc_trim_leaves_the_osalloc_heap_alone)
{
	enum { N = 200 };
	void *theirs[N];
	for (int i = 0; i < N; i++)
		theirs[i] = libc_malloc(20000); /* 4 MB of brk heap */
	unsigned char *ours[N];
	for (int i = 0; i < N; i++) {
		ours[i] = os_malloc(20000); /* our segment above it */
		tst_fill(ours[i], 20000, (uint64_t)i);
	}
	for (int i = 0; i < N; i++)
		libc_free(theirs[i]);
	malloc_trim(0); /* glibc must not cut the break below us */
	for (int i = 0; i < N; i++) {
		ck_assert(tst_verify(ours[i], 20000, (uint64_t)i, NULL));
		memset(ours[i], 1, 20000); /* still writable */
	}
	ck_assert_int_eq(os_heap_check(), 0);
	for (int i = 0; i < N; i++)
		os_free(ours[i]);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_osalloc_trim_leaves_libc_blocks_alone)
{
	/* osalloc frees a big top (it may give pages back); glibc blocks
	 * allocated in between keep their contents. */
	enum { N = 40 };
	unsigned char *theirs[N], *ours[N];
	for (int i = 0; i < N; i++) {
		ours[i] = os_malloc(100000);
		theirs[i] = libc_malloc(50000);
		ck_assert(ours[i] && theirs[i]);
		tst_fill(theirs[i], 50000, 500 + (uint64_t)i);
	}
	for (int i = N - 1; i >= 0; i--)
		os_free(ours[i]);
	for (int i = 0; i < N; i++) {
		ck_assert(tst_verify(theirs[i], 50000, 500 + (uint64_t)i,
				     NULL));
		libc_free(theirs[i]);
	}
	ck_assert_int_eq(os_heap_check(), 0);
	/* And the freed space serves again, zeroed where calloc says so. */
	unsigned char *c = os_calloc(1, 100000);
	ck_assert(tst_all_bytes(c, 100000, 0, NULL));
	os_free(c);
}
END_TEST

/* ---- threads: the break is glibc's while there are two ------------- */

static pthread_mutex_t hold = PTHREAD_MUTEX_INITIALIZER;

static void *wait_for_release(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&hold);
	pthread_mutex_unlock(&hold);
	return NULL;
}

/* With a second thread alive, growth of the first thread's arena (the brk
 * heap's) moves the break no more: it continues in a window of its own. */
START_TEST(test_a_process_with_threads_never_moves_the_break)
{
	void *first = os_malloc(100); /* arena 0, on the break */
	ck_assert_ptr_nonnull(first);
	pthread_mutex_lock(&hold);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, wait_for_release, NULL), 0);
	struct os_mallinfo before, after;
	tst_mallinfo_exact(&before);
	void *brk_before = sbrk(0);
	static void *p[2000];
	for (int i = 0; i < 2000; i++) { /* 6 MB: many growths */
		p[i] = os_malloc(3000);
		ck_assert_ptr_nonnull(p[i]);
		memset(p[i], i & 0xff, 3000);
	}
	ck_assert_ptr_eq(sbrk(0), brk_before);
	tst_mallinfo_exact(&after);
	ck_assert_uint_ge(after.heap_bytes, before.heap_bytes + 6000000);
	/* Its window lies above the break, so that the arena's home (the
	 * range whose blocks its thread caches as its own) holds the blocks
	 * on the break and those in the window.  (valgrind lays out the
	 * client's mappings itself: the window lands elsewhere there.) */
	uintptr_t lo;
	size_t len;
	osa_heap_lock_acquire();
	osa_heap_home(osa_heap_thread_arena(), &lo, &len);
	osa_heap_lock_release();
	ck_assert_msg(tst_under_valgrind() || (uintptr_t)first - lo < len,
		      "%p outside [%#lx, +%zu)", first, (unsigned long)lo, len);
	ck_assert_msg(tst_under_valgrind() || (uintptr_t)p[1999] - lo < len,
		      "%p outside [%#lx, +%zu)", p[1999], (unsigned long)lo,
		      len);
	for (int i = 0; i < 2000; i++) {
		ck_assert_uint_eq(((unsigned char *)p[i])[2999], i & 0xff);
		os_free(p[i]);
	}
	pthread_mutex_unlock(&hold);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	os_free(first);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* The race itself: one thread grows osalloc's heap while another grows
 * glibc's (both with the break, before): pages given to both, blocks
 * overwritten, SIGSEGV in 5 of 6 runs. */
enum { RACE_BLOCKS = 20000, RACE_SIZE = 3000 };

static void *osalloc_side(void *arg)
{
	void **p = arg;
	for (int i = 0; i < RACE_BLOCKS; i++) {
		p[i] = os_malloc(RACE_SIZE);
		if (p[i])
			memset(p[i], 0x22, RACE_SIZE);
	}
	return NULL;
}

START_TEST(test_threads_growing_both_heaps_at_once_share_no_byte)
{
	TST_SKIP_UNDER_VALGRIND("valgrind replaces the C library's malloc");
	static void *mine[RACE_BLOCKS], *theirs[RACE_BLOCKS];
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, osalloc_side, mine), 0);
	for (int i = 0; i < RACE_BLOCKS; i++) {
		theirs[i] = malloc(RACE_SIZE);
		ck_assert_ptr_nonnull(theirs[i]);
		memset(theirs[i], 0x11, RACE_SIZE);
	}
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	size_t bad = 0;
	for (int i = 0; i < RACE_BLOCKS; i++) {
		ck_assert_ptr_nonnull(mine[i]);
		ck_assert_msg(tst_all_bytes(mine[i], RACE_SIZE, 0x22, &bad),
			      "osalloc block %d, byte %zu", i, bad);
		ck_assert_msg(tst_all_bytes(theirs[i], RACE_SIZE, 0x11, &bad),
			      "glibc block %d, byte %zu", i, bad);
	}
	ck_assert_int_eq(os_heap_check(), 0);
	for (int i = 0; i < RACE_BLOCKS; i++) {
		os_free(mine[i]);
		free(theirs[i]);
	}
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("coexist");
	TCase *tc = tcase_create("interleaved");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc,
		       test_interleaved_libc_and_osalloc_blocks_keep_their_contents);
	tcase_add_test(tc, test_libc_growth_between_two_growths_starts_a_new_segment);
	suite_add_tcase(s, tc);

	tc = tcase_create("foreign_sbrk");
	tcase_add_test(tc, test_foreign_sbrk_is_never_covered_or_merged);
	tcase_add_test(tc, test_break_moved_down_by_someone_else_is_survived);
	suite_add_tcase(s, tc);

	tc = tcase_create("stdio");
	tcase_add_test(tc, test_stdio_works_while_both_allocators_grow);
	suite_add_tcase(s, tc);

	tc = tcase_create("threads");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_a_process_with_threads_never_moves_the_break);
	tcase_add_test(tc, test_threads_growing_both_heaps_at_once_share_no_byte);
	suite_add_tcase(s, tc);

	tc = tcase_create("trim");
	tcase_add_test(tc, test_libc_trim_leaves_the_osalloc_heap_alone);
	tcase_add_test(tc, test_osalloc_trim_leaves_libc_blocks_alone);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	return tst_main(argc, argv, make_suite, NULL);
}
