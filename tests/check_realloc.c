/* check_realloc.c - os_realloc: NULL and 0, shrinking in place, growing in
 * place (free neighbour, last block before the top, heap growth), moving
 * with the contents kept, blocks crossing the mmap threshold, and failed
 * reallocs that leave the old block intact and freeable.
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 */
#include "common.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"
#include "osalloc.h"

#define ASSERT_NEIGHBOURS(a, b)                                                \
	ck_assert_msg((unsigned char *)(b) == tst_next_block(a),                   \
		      "setup: %p does not follow %p", (void *)(b), (void *)(a))

#define ASSERT_PATTERN(p, n, seed)                                             \
	do {                                                                   \
		size_t bad_ = 0;                                               \
		ck_assert_msg(tst_verify((p), (n), (seed), &bad_),             \
			      "contents lost at offset %zu of %zu", bad_,      \
			      (size_t)(n));                                    \
	} while (0)

/* ---- NULL and 0 ------------------------------------------------------ */

START_TEST(test_realloc_null_acts_as_malloc)
{
	static const size_t sizes[] = {1, 100, 1000, 5000, 131072, 500000};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		struct os_mallinfo before, after;
		tst_mallinfo_exact(&before);
		errno = 0;
		unsigned char *p = os_realloc(NULL, sizes[i]);
		ck_assert_ptr_nonnull(p);
		ck_assert_int_eq(errno, 0);
		ck_assert((uintptr_t)p % 16 == 0);
		ck_assert_uint_ge(os_malloc_usable_size(p), sizes[i]);
		tst_fill(p, sizes[i], i);
		tst_mallinfo_exact(&after);
		ck_assert_uint_eq(after.alloc_calls, before.alloc_calls + 1);
		ASSERT_PATTERN(p, sizes[i], i);
		os_free(p);
	}
}
END_TEST

START_TEST(test_realloc_null_zero_returns_null_keeping_errno)
{
	errno = 31;
	ck_assert_ptr_null(os_realloc(NULL, 0));
	ck_assert_int_eq(errno, 31);
}
END_TEST

/* os_realloc(p, 0) frees p: the statistics say so and, in a child, freeing
 * p again is a double free. */
static int free_again(void *p)
{
	os_free(p);
	return TST_CHILD_RETURNED;
}

static void realloc_zero_frees(size_t size)
{
	void *p = os_malloc(size);
	void *guard = os_malloc(64); /* p stays a block of its own */
	ck_assert_ptr_nonnull(p);
	struct os_mallinfo before, after;
	tst_mallinfo_exact(&before);
	errno = 12345;
	ck_assert_ptr_null(os_realloc(p, 0));
	ck_assert_int_eq(errno, 12345);
	tst_mallinfo_exact(&after);
	ck_assert_uint_eq(after.free_calls, before.free_calls + 1);
	ck_assert_uint_lt(after.in_use_bytes, before.in_use_bytes);
	ck_assert_uint_ge(before.in_use_bytes - after.in_use_bytes, size);
	TST_EXPECT_MISUSE(free_again, p, "os_free", "double free", p);
	ck_assert_int_eq(os_heap_check(), 0);
	os_free(guard);
}

START_TEST(test_realloc_to_zero_frees_the_block)
{
	realloc_zero_frees(24);
	realloc_zero_frees(3000);
	realloc_zero_frees(300000);
}
END_TEST

/* ---- shrinking ------------------------------------------------------- */

START_TEST(test_realloc_shrinks_a_small_block_in_place)
{
	static const size_t from[] = {64, 200, 1000, 1008};
	for (size_t i = 0; i < 4; i++)
		for (size_t to = 1; to <= from[i]; to += 13) {
			unsigned char *p = os_malloc(from[i]);
			tst_fill(p, from[i], to);
			unsigned char *q = os_realloc(p, to);
			ck_assert_msg(q == p, "realloc(%zu -> %zu) moved %p to %p",
				      from[i], to, (void *)p, (void *)q);
			ASSERT_PATTERN(q, to, to);
			os_free(q);
		}
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_realloc_shrinks_a_heap_block_in_place_and_frees_the_tail)
{
	unsigned char *p = os_malloc(40000);
	void *guard = os_malloc(100);
	ASSERT_NEIGHBOURS(p, guard);
	tst_fill(p, 40000, 1);
	struct os_mallinfo before, after;
	tst_mallinfo_exact(&before);
	unsigned char *q = os_realloc(p, 10000);
	ck_assert_ptr_eq(q, p);
	ASSERT_PATTERN(q, 10000, 1);
	tst_mallinfo_exact(&after);
	/* The 30000 bytes past the new end are a free block now... */
	ck_assert_uint_eq(after.heap_free_bytes - before.heap_free_bytes,
			  40000 - 10000);
	ck_assert_uint_eq(before.in_use_bytes - after.in_use_bytes, 30000);
	/* ... which the next fitting request gets. */
	unsigned char *r = os_malloc(29000);
	ck_assert_ptr_eq(r, tst_next_block(q));
	ck_assert_int_eq(os_heap_check(), 0);
	os_free(r);
	os_free(q);
	os_free(guard);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_realloc_to_the_same_size_keeps_the_pointer)
{
	static const size_t sizes[] = {1, 48, 1000, 5000, 100000, 200000};
	/* Under valgrind a large (mmap) block moves on realloc (no mremap, so
	 * that memcheck keeps its history): the heap sizes only. */
	size_t n = tst_under_valgrind() ? 5 : 6;
	if (n < 6)
		tst_skip_note(__FILE__, __LINE__,
			      "realloc of a large block moves under valgrind "
			      "(200000 not checked)");
	for (size_t i = 0; i < n; i++) {
		unsigned char *p = os_malloc(sizes[i]);
		tst_fill(p, sizes[i], 3);
		ck_assert_ptr_eq(os_realloc(p, sizes[i]), p);
		ASSERT_PATTERN(p, sizes[i], 3);
		os_free(p);
	}
}
END_TEST

START_TEST(test_realloc_shrinks_an_mmap_block_in_place)
{
	TST_SKIP_UNDER_VALGRIND("realloc of a large block moves under valgrind "
				"(no mremap, so that memcheck keeps its "
				"history)");
	unsigned char *p = os_malloc(1 << 20);
	tst_fill(p, 1 << 20, 9);
	struct os_mallinfo before, after;
	os_mallinfo(&before);
	unsigned char *q = os_realloc(p, 600000); /* by less than half */
	ck_assert_ptr_eq(q, p);
	ASSERT_PATTERN(q, 600000, 9);
	q = os_realloc(q, 200000); /* by more: the mapping shrinks */
	ck_assert_ptr_eq(q, p);
	ASSERT_PATTERN(q, 200000, 9);
	os_mallinfo(&after);
	ck_assert_uint_eq(after.mmap_count, before.mmap_count);
	ck_assert_uint_lt(after.mmap_bytes, before.mmap_bytes);
	ck_assert(!tst_is_mapped(p + 600000));
	os_free(q);
}
END_TEST

/* ---- growing in place ------------------------------------------------ */

START_TEST(test_realloc_grows_in_place_into_a_free_next_block)
{
	unsigned char *a = os_malloc(3000), *b = os_malloc(5000),
		      *c = os_malloc(3000);
	ASSERT_NEIGHBOURS(a, b);
	ASSERT_NEIGHBOURS(b, c);
	tst_fill(a, 3000, 11);
	tst_fill(c, 3000, 12);
	os_free(b);
	unsigned char *q = os_realloc(a, 6000);
	ck_assert_msg(q == a, "realloc moved %p to %p although the next block "
			      "was free", (void *)a, (void *)q);
	ASSERT_PATTERN(q, 3000, 11);
	/* The rest of b is still a free block: a 1900-byte request gets it. */
	unsigned char *r = os_malloc(1900);
	ck_assert_ptr_eq(r, tst_next_block(q));
	/* Neither neighbour was overwritten. */
	tst_fill(q, 6000, 13);
	ASSERT_PATTERN(c, 3000, 12);
	ck_assert_int_eq(os_heap_check(), 0);
	os_free(r);
	os_free(q);
	os_free(c);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* zero=1 makes every allocation read as zeros: the part that a realloc
 * adds in place too, into a freed neighbour (which held other bytes) or
 * into the top. */
START_TEST(test_realloc_grown_in_place_reads_zeros_with_zero_1)
{
	setenv("OSALLOC_OPTIONS", "zero=1", 1);
	/* Sizes whose usable size is the request: the program may write all
	 * of it (and _FORTIFY_SOURCE lets it). */
	unsigned char *a = os_malloc(3008), *b = os_malloc(5000),
		      *c = os_malloc(3008);
	ASSERT_NEIGHBOURS(a, b);
	ASSERT_NEIGHBOURS(b, c);
	size_t ua = os_malloc_usable_size(a), uc = os_malloc_usable_size(c);
	ck_assert_uint_eq(ua, 3008);
	ck_assert_uint_eq(uc, 3008);
	memset(a, 0xa5, ua);
	memset(b, 0x42, 5000);
	os_free(b);
	unsigned char *q = os_realloc(a, 6000);
	ck_assert_ptr_eq(q, a);
	size_t bad = 0;
	ck_assert_msg(tst_all_bytes(q, ua, 0xa5, &bad), "byte %zu changed",
		      bad);
	ck_assert_msg(tst_all_bytes(q + ua, 6000 - ua, 0, &bad),
		      "byte %zu of the added part is not zero", ua + bad);
	/* The last block grows into the top. */
	memset(c, 0x17, uc);
	unsigned char *r = os_realloc(c, 9000);
	ck_assert_ptr_eq(r, c);
	ck_assert_msg(tst_all_bytes(r + uc, 9000 - uc, 0, &bad),
		      "byte %zu of the part taken from the top is not zero",
		      uc + bad);
	os_free(q);
	os_free(r);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* zero=1: what a block held beyond the request also reads as zeros when a
 * realloc gives it back to the program: after a shrink and a growth back
 * (heap and mapped blocks), and in the slack of a reused block. */
START_TEST(test_realloc_regrown_in_place_reads_zeros_with_zero_1)
{
	setenv("OSALLOC_OPTIONS", "zero=1", 1);
	size_t bad = 0;
	/* A heap block, shrunk and grown back. */
	unsigned char *a = os_malloc(3000), *guard = os_malloc(64);
	memset(a, 0xaa, 3000);
	ck_assert_ptr_eq(os_realloc(a, 1000), a);
	unsigned char *q = os_realloc(a, 3000);
	ck_assert_ptr_nonnull(q);
	ck_assert_msg(tst_all_bytes(q, 1000, 0xaa, &bad), "byte %zu", bad);
	ck_assert_msg(tst_all_bytes(q + 1000, 2000, 0, &bad),
		      "heap: byte %zu of the regrown part is not zero",
		      1000 + bad);
	os_free(q);
	/* A reused block's slack: 112 bytes written, freed, taken again for
	 * 100 (usable 112), grown to 112 in place. */
	unsigned char *w = os_malloc(112);
	ck_assert_uint_eq(os_malloc_usable_size(w), 112);
	memset(w, 0xbb, 112);
	os_free(w);
	unsigned char *r = os_malloc(100);
	ck_assert_ptr_eq(r, w);
	ck_assert_ptr_eq(os_realloc(r, 112), r);
	ck_assert_msg(tst_all_bytes(r, 112, 0, &bad),
		      "slack: byte %zu is not zero", bad);
	os_free(r);
	/* A mapped block shrunk by less than half keeps its mapping (under
	 * valgrind, a mapped block that changes size moves). */
	unsigned char *m = os_malloc(400000);
	memset(m, 0xaa, 400000);
	unsigned char *k = os_realloc(m, 300000);
	ck_assert_ptr_nonnull(k);
	if (!tst_under_valgrind())
		ck_assert_ptr_eq(k, m);
	unsigned char *n = os_realloc(k, 400000);
	ck_assert_ptr_nonnull(n);
	ck_assert_msg(tst_all_bytes(n, 300000, 0xaa, &bad), "byte %zu", bad);
	ck_assert_msg(tst_all_bytes(n + 300000, 100000, 0, &bad),
		      "mapped: byte %zu of the regrown part is not zero",
		      300000 + bad);
	os_free(n);
	/* An aligned block, in a freed block's bytes, grown in place. */
	unsigned char *o = os_malloc(4000);
	memset(o, 0xcc, 4000);
	os_free(o);
	unsigned char *al = os_aligned_alloc(64, 100);
	ck_assert_ptr_nonnull(al);
	unsigned char *ag = os_realloc(al, 200);
	ck_assert_ptr_nonnull(ag);
	ck_assert_msg(tst_all_bytes(ag + 100, 100, 0, &bad),
		      "aligned: byte %zu of the added part is not zero",
		      100 + bad);
	os_free(ag);
	os_free(guard);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_realloc_grows_in_place_into_a_free_small_neighbour_without_caches)
{
	setenv("OSALLOC_OPTIONS", "cache=0", 1);
	unsigned char *a = os_malloc(100), *b = os_malloc(200),
		      *c = os_malloc(100);
	ASSERT_NEIGHBOURS(a, b);
	ASSERT_NEIGHBOURS(b, c);
	tst_fill(a, 100, 21);
	os_free(b);
	unsigned char *q = os_realloc(a, 250);
	ck_assert_ptr_eq(q, a);
	ASSERT_PATTERN(q, 100, 21);
	os_free(q);
	os_free(c);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_realloc_grows_the_last_block_into_the_top)
{
	void *first = os_malloc(64);
	unsigned char *p = os_malloc(5000);
	tst_fill(p, 5000, 31);
	struct os_mallinfo m;
	tst_mallinfo_exact(&m);
	ck_assert_uint_gt(m.heap_free_bytes, 60000);
	for (size_t n = 6000; n <= 60000; n += 6000) {
		unsigned char *q = os_realloc(p, n);
		ck_assert_msg(q == p, "realloc to %zu moved the last block", n);
		ASSERT_PATTERN(q, 5000, 31);
	}
	ck_assert_int_eq(os_heap_check(), 0);
	os_free(p);
	os_free(first);
}
END_TEST

START_TEST(test_realloc_grows_the_last_block_across_a_heap_growth)
{
	void *first = os_malloc(64);
	unsigned char *p = os_malloc(5000);
	tst_fill(p, 5000, 32);
	struct tst_sys s0, s1;
	tst_sys_snapshot(&s0);
	/* Far beyond the first 128 KiB segment, below the mmap threshold. */
	unsigned char *q = os_realloc(p, 131000);
	ck_assert_ptr_eq(q, p);
	ASSERT_PATTERN(q, 5000, 32);
	tst_sys_snapshot(&s1);
	ck_assert_uint_eq(s1.sbrk - s0.sbrk, 1);
	ck_assert_uint_eq(s1.mmap, s0.mmap);
	struct os_mallinfo m;
	tst_mallinfo_exact(&m);
	ck_assert_uint_eq(m.heap_segments, 1);
	tst_fill(q, 131000, 33);
	ASSERT_PATTERN(q, 131000, 33);
	ck_assert_int_eq(os_heap_check(), 0);
	os_free(q);
	os_free(first);
}
END_TEST

START_TEST(test_realloc_grows_an_mmap_block_keeping_contents)
{
	unsigned char *p = os_malloc(200000);
	tst_fill(p, 200000, 41);
	size_t n = 200000;
	for (int i = 0; i < 8; i++) {
		size_t m = n * 2;
		unsigned char *q = os_realloc(p, m);
		ck_assert_ptr_nonnull(q);
		ASSERT_PATTERN(q, n, 41 + (uint64_t)i);
		tst_fill(q, m, 42 + (uint64_t)i);
		p = q;
		n = m;
	}
	struct os_mallinfo info;
	os_mallinfo(&info);
	ck_assert_uint_eq(info.mmap_count, 1);
	os_free(p);
	os_mallinfo(&info);
	ck_assert_uint_eq(info.mmap_count, 0);
}
END_TEST

/* ---- moving ---------------------------------------------------------- */

START_TEST(test_realloc_moves_when_the_next_block_is_used_keeping_contents)
{
	unsigned char *a = os_malloc(3000), *b = os_malloc(3000);
	ASSERT_NEIGHBOURS(a, b);
	tst_fill(a, 3000, 51);
	tst_fill(b, 3000, 52);
	unsigned char *q = os_realloc(a, 9000);
	ck_assert_ptr_nonnull(q);
	ck_assert_ptr_ne(q, a);
	ASSERT_PATTERN(q, 3000, 51);
	ASSERT_PATTERN(b, 3000, 52);
	/* The old block was freed: the same size comes back at a. */
	unsigned char *r = os_malloc(3000);
	ck_assert_ptr_eq(r, a);
	os_free(r);
	os_free(q);
	os_free(b);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* A block that has to move to grow gets a quarter more than asked, and
 * later small growths stay in that room: no split, no move. */
START_TEST(test_realloc_that_moves_leaves_room_for_the_next_growth)
{
	TST_SKIP_UNDER_VALGRIND("no headroom under valgrind");
	unsigned char *a = os_malloc(3000), *b = os_malloc(3000);
	ASSERT_NEIGHBOURS(a, b);
	tst_fill(a, 3000, 61);
	unsigned char *q = os_realloc(a, 8000);
	ck_assert_ptr_nonnull(q);
	ck_assert_ptr_ne(q, a);
	size_t room = os_malloc_usable_size(q);
	ck_assert_uint_ge(room, 8000 + 8000 / 4);
	/* Growing within the room, or shrinking by less than a quarter,
	 * keeps the block as it is. */
	ck_assert_ptr_eq(os_realloc(q, 9500), q);
	ck_assert_uint_eq(os_malloc_usable_size(q), room);
	ck_assert_ptr_eq(os_realloc(q, 8000), q);
	ck_assert_uint_eq(os_malloc_usable_size(q), room);
	ASSERT_PATTERN(q, 3000, 61);
	/* Shrinking by more gives the tail back. */
	ck_assert_ptr_eq(os_realloc(q, 3000), q);
	ck_assert_uint_lt(os_malloc_usable_size(q), 3100);
	ASSERT_PATTERN(q, 3000, 61);
	os_free(q);
	os_free(b);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* A string built by appending 10 bytes at a time.  Whenever it moves, a
 * larger block is allocated at once, which lands right after it when both
 * come from the top, so the string cannot simply grow into the top: it
 * moves O(log n) times, not once per append (6,125 times without the
 * room). */
START_TEST(test_realloc_growing_in_small_steps_moves_rarely)
{
	TST_SKIP_UNDER_VALGRIND("no headroom under valgrind");
	enum { START = 2000, END = 100000, STEP = 10 };
	static void *guard[64];
	unsigned char *p = os_malloc(START);
	void *first_guard = os_malloc(START);
	ASSERT_NEIGHBOURS(p, first_guard);
	memset(p, 'x', START);
	unsigned moves = 0;
	for (size_t n = START + STEP; n <= END; n += STEP) {
		unsigned char *q = os_realloc(p, n);
		ck_assert_ptr_nonnull(q);
		memset(q + n - STEP, 'x', STEP);
		if (q != p) {
			ck_assert_uint_lt(moves, 64);
			/* whatever follows q now stays in use */
			guard[moves++] = os_malloc(os_malloc_usable_size(q) + 4096);
			ck_assert_ptr_nonnull(guard[moves - 1]);
		}
		p = q;
	}
	ck_assert_uint_eq(p[0], 'x');
	ck_assert_uint_eq(p[END - 1], 'x');
	/* 2000 -> 100000 by a quarter at a time: about 18 moves. */
	ck_assert_uint_le(moves, 25);
	for (unsigned i = 0; i < moves; i++)
		os_free(guard[i]);
	os_free(first_guard);
	os_free(p);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_realloc_keeps_contents_through_many_random_resizes)
{
	enum { N = 300, ROUNDS = 20000 };
	static unsigned char *p[N];
	static size_t n[N];
	static uint64_t seed[N];
	uint64_t rng = 777, next_seed = 1;
	for (int r = 0; r < ROUNDS; r++) {
		size_t i = tst_rand(&rng) % N;
		size_t m;
		uint64_t k = tst_rand(&rng) % 100;
		if (k < 60)
			m = tst_rand_range(&rng, 1, 2000);
		else if (k < 95)
			m = tst_rand_range(&rng, 2001, 100000);
		else
			m = tst_rand_range(&rng, 100001, 400000);
		unsigned char *q = os_realloc(p[i], m);
		ck_assert_msg(q != NULL, "realloc(%zu) failed", m);
		ck_assert((uintptr_t)q % 16 == 0);
		if (p[i]) {
			size_t keep = n[i] < m ? n[i] : m, bad = 0;
			ck_assert_msg(tst_verify(q, keep, seed[i], &bad),
				      "round %d: realloc %zu -> %zu lost byte "
				      "%zu",
				      r, n[i], m, bad);
		}
		p[i] = q;
		n[i] = m;
		seed[i] = next_seed++;
		tst_fill(q, m, seed[i]);
	}
	ck_assert_int_eq(os_heap_check(), 0);
	for (size_t i = 0; i < N; i++) {
		ASSERT_PATTERN(p[i], n[i], seed[i]);
		os_free(p[i]);
	}
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_realloc_across_the_mmap_threshold_keeps_contents)
{
	unsigned char *p = os_malloc(1000);
	tst_fill(p, 1000, 61);
	unsigned char *q = os_realloc(p, 131072); /* heap -> own mapping */
	ASSERT_PATTERN(q, 1000, 61);
	struct os_mallinfo m;
	os_mallinfo(&m);
	ck_assert_uint_eq(m.mmap_count, 1);
	tst_fill(q, 131072, 62);
	unsigned char *r = os_realloc(q, 131071); /* mapping -> heap */
	ASSERT_PATTERN(r, 131071, 62);
	os_mallinfo(&m);
	ck_assert_uint_eq(m.mmap_count, 0);
	unsigned char *s = os_realloc(r, 50); /* shrink in the heap */
	ck_assert_ptr_eq(s, r);
	ASSERT_PATTERN(s, 50, 62);
	os_free(s);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_reallocarray_resizes_like_realloc)
{
	unsigned char *p = os_reallocarray(NULL, 10, 100);
	ck_assert_ptr_nonnull(p);
	tst_fill(p, 1000, 71);
	unsigned char *q = os_reallocarray(p, 100, 100);
	ck_assert_ptr_nonnull(q);
	ASSERT_PATTERN(q, 1000, 71);
	ck_assert_ptr_null(os_reallocarray(q, 0, 100)); /* frees */
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* ---- failures -------------------------------------------------------- */

START_TEST(test_realloc_to_an_impossible_size_fails_and_keeps_the_block)
{
	static const size_t old_sizes[] = {24, 3000, 200000};
	static const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4096,
				       (size_t)PTRDIFF_MAX + 1,
				       (size_t)PTRDIFF_MAX};
	for (size_t i = 0; i < 3; i++)
		for (size_t j = 0; j < 4; j++) {
			size_t n = old_sizes[i];
			unsigned char *p = os_malloc(n);
			tst_fill(p, n, i * 10 + j);
			struct os_mallinfo before, after;
			tst_mallinfo_exact(&before);
			errno = 0;
			void *q = os_realloc(p, tst_opaque(sizes[j]));
			ck_assert_msg(q == NULL && errno == ENOMEM,
				      "realloc(%zu -> %zu) = %p, errno %d", n,
				      sizes[j], q, errno);
			tst_mallinfo_exact(&after);
			ck_assert_uint_eq(after.in_use_bytes,
					  before.in_use_bytes);
			ck_assert_uint_eq(after.alloc_calls, before.alloc_calls);
			ASSERT_PATTERN(p, n, i * 10 + j);
			ck_assert_uint_ge(os_malloc_usable_size(p), n);
			/* Still usable: grows for real, then freed. */
			unsigned char *r = os_realloc(p, n + 100);
			ck_assert_ptr_nonnull(r);
			ASSERT_PATTERN(r, n, i * 10 + j);
			os_free(r);
		}
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_realloc_fails_cleanly_when_mmap_fails)
{
	unsigned char *p = os_malloc(3000);
	void *guard = os_malloc(64);
	tst_fill(p, 3000, 81);
	osa_sys_fail_nth(1, OSA_SYS_MMAP);
	errno = 0;
	void *q = os_realloc(p, 500000); /* needs a mapping of its own */
	int err = errno;
	osa_sys_fail_nth(0, 0);
	ck_assert_ptr_null(q);
	ck_assert_int_eq(err, ENOMEM);
	ASSERT_PATTERN(p, 3000, 81);
	ck_assert_int_eq(os_heap_check(), 0);
	q = os_realloc(p, 500000); /* works once mmap does */
	ck_assert_ptr_nonnull(q);
	ASSERT_PATTERN(q, 3000, 81);
	os_free(q);
	os_free(guard);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* Under 2 MiB, so that one call decides: mremap, or under valgrind (which
 * moves large blocks) one mmap; a mapping of 2 MiB or more has a fallback
 * (check_faults). */
START_TEST(test_realloc_of_an_mmap_block_fails_cleanly_when_mremap_fails)
{
	unsigned char *p = os_malloc(300000);
	tst_fill(p, 300000, 82);
	struct os_mallinfo before, after;
	os_mallinfo(&before);
	osa_sys_fail_nth(1, OSA_SYS_MREMAP | OSA_SYS_MMAP);
	errno = 0;
	void *q = os_realloc(p, 1500000);
	int err = errno;
	osa_sys_fail_nth(0, 0);
	ck_assert_ptr_null(q);
	ck_assert_int_eq(err, ENOMEM);
	os_mallinfo(&after);
	ck_assert_uint_eq(after.mmap_bytes, before.mmap_bytes);
	ASSERT_PATTERN(p, 300000, 82);
	ck_assert_int_eq(os_heap_check(), 0);
	os_free(p);
	ck_assert(!tst_is_mapped(p));
}
END_TEST

/* Current data size of this process (what RLIMIT_DATA limits), bytes. */
static size_t vm_data(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	size_t kb = 0;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmData: %zu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

/* In a child: no memory at all from the system (RLIMIT_DATA at the current
 * size), and a realloc that would need some: both sbrk and the mmap
 * fallback fail.  The old block stays intact, freeable, and the heap sound;
 * with the limit lifted the same realloc works. */
static int realloc_without_memory(void *arg)
{
	(void)arg;
	unsigned char *p = os_malloc(3000);
	void *guard = os_malloc(3000);
	TST_CHILD_REQUIRE(p && guard, "setup");
	tst_fill(p, 3000, 91);
	/* Use up the top so that the realloc needs new memory. */
	struct os_mallinfo m;
	tst_mallinfo_exact(&m);
	void *filler = os_malloc(m.heap_free_bytes - 2000);
	TST_CHILD_REQUIRE(filler != NULL, "filler of %zu", m.heap_free_bytes);
	struct rlimit old, lim;
	getrlimit(RLIMIT_DATA, &old);
	lim = old;
	lim.rlim_cur = vm_data();
	TST_CHILD_REQUIRE(lim.rlim_cur > 0 && setrlimit(RLIMIT_DATA, &lim) == 0,
			  "setrlimit");
	struct tst_sys s0, s1;
	tst_sys_snapshot(&s0);
	errno = 0;
	void *q = os_realloc(p, 60000);
	int err = errno;
	tst_sys_snapshot(&s1);
	TST_CHILD_REQUIRE(q == NULL, "realloc returned %p", q);
	TST_CHILD_REQUIRE(err == ENOMEM, "errno %d", err);
	TST_CHILD_REQUIRE(s1.sbrk > s0.sbrk && s1.mmap > s0.mmap,
			  "sbrk and mmap were not both tried (%lu, %lu)",
			  s1.sbrk - s0.sbrk, s1.mmap - s0.mmap);
	size_t bad = 0;
	TST_CHILD_REQUIRE(tst_verify(p, 3000, 91, &bad), "byte %zu lost", bad);
	TST_CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	TST_CHILD_REQUIRE(setrlimit(RLIMIT_DATA, &old) == 0, "setrlimit");
	q = os_realloc(p, 60000);
	TST_CHILD_REQUIRE(q != NULL, "realloc with memory failed");
	TST_CHILD_REQUIRE(tst_verify(q, 3000, 91, &bad), "byte %zu lost", bad);
	os_free(q);
	os_free(guard);
	os_free(filler);
	TST_CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return TST_CHILD_OK;
}

START_TEST(test_realloc_fails_cleanly_when_the_system_has_no_memory)
{
	TST_SKIP_UNDER_VALGRIND("valgrind applies RLIMIT_DATA to its emulated "
				"break only, not to mmap");
	struct tst_child c;
	tst_run_child(realloc_without_memory, NULL, 20, &c);
	TST_ASSERT_CHILD_OK(&c);
	ck_assert_uint_eq(c.err_len, 0);
	tst_child_release(&c);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("realloc");
	TCase *tc = tcase_create("null_zero");
	tcase_add_test(tc, test_realloc_null_acts_as_malloc);
	tcase_add_test(tc, test_realloc_null_zero_returns_null_keeping_errno);
	tcase_add_test(tc, test_realloc_to_zero_frees_the_block);
	suite_add_tcase(s, tc);

	tc = tcase_create("shrink");
	tcase_add_test(tc, test_realloc_shrinks_a_small_block_in_place);
	tcase_add_test(tc,
		       test_realloc_shrinks_a_heap_block_in_place_and_frees_the_tail);
	tcase_add_test(tc, test_realloc_to_the_same_size_keeps_the_pointer);
	tcase_add_test(tc, test_realloc_shrinks_an_mmap_block_in_place);
	suite_add_tcase(s, tc);

	tc = tcase_create("grow");
	tcase_add_test(tc, test_realloc_grows_in_place_into_a_free_next_block);
	tcase_add_test(
	    tc,
	    test_realloc_grows_in_place_into_a_free_small_neighbour_without_caches);
	tcase_add_test(tc, test_realloc_grows_the_last_block_into_the_top);
	tcase_add_test(tc, test_realloc_grown_in_place_reads_zeros_with_zero_1);
	tcase_add_test(tc, test_realloc_regrown_in_place_reads_zeros_with_zero_1);
	tcase_add_test(tc,
		       test_realloc_grows_the_last_block_across_a_heap_growth);
	tcase_add_test(tc, test_realloc_grows_an_mmap_block_keeping_contents);
	suite_add_tcase(s, tc);

	tc = tcase_create("move");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc,
		       test_realloc_moves_when_the_next_block_is_used_keeping_contents);
	tcase_add_test(tc, test_realloc_that_moves_leaves_room_for_the_next_growth);
	tcase_add_test(tc, test_realloc_growing_in_small_steps_moves_rarely);
	tcase_add_test(tc, test_realloc_keeps_contents_through_many_random_resizes);
	tcase_add_test(tc, test_realloc_across_the_mmap_threshold_keeps_contents);
	tcase_add_test(tc, test_reallocarray_resizes_like_realloc);
	suite_add_tcase(s, tc);

	tc = tcase_create("failure");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc,
		       test_realloc_to_an_impossible_size_fails_and_keeps_the_block);
	tcase_add_test(tc, test_realloc_fails_cleanly_when_mmap_fails);
	tcase_add_test(tc,
		       test_realloc_of_an_mmap_block_fails_cleanly_when_mremap_fails);
	tcase_add_test(tc,
		       test_realloc_fails_cleanly_when_the_system_has_no_memory);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	return tst_main(argc, argv, make_suite, NULL);
}
