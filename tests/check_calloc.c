/* check_calloc.c - os_calloc: size 0, zeroed memory also when a dirty
 * freed block is reused (thread cache, bins, top, merged blocks), and no
 * memset on memory fresh from the system (pages stay untouched).
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 */
#include "common.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "osalloc.h"

/* ---- size 0 ---------------------------------------------------------- */

START_TEST(test_calloc_with_a_zero_argument_returns_null_keeping_errno)
{
	static const size_t cases[][2] = {
		{0, 0}, {0, 1}, {1, 0}, {0, 4096}, {4096, 0},
		{0, SIZE_MAX}, {SIZE_MAX, 0}, /* 0 bytes, not an overflow */
	};
	void *warm = os_malloc(1);
	struct os_mallinfo before, after;
	tst_mallinfo_exact(&before);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		errno = 99;
		void *p = os_calloc(tst_opaque(cases[i][0]),
				    tst_opaque(cases[i][1]));
		ck_assert_msg(p == NULL, "os_calloc(%zu, %zu) = %p",
			      cases[i][0], cases[i][1], p);
		ck_assert_msg(errno == 99, "os_calloc(%zu, %zu) set errno %d",
			      cases[i][0], cases[i][1], errno);
	}
	tst_mallinfo_exact(&after);
	ck_assert_uint_eq(after.alloc_calls, before.alloc_calls);
	ck_assert_uint_eq(after.in_use_bytes, before.in_use_bytes);
	os_free(warm);
}
END_TEST

/* ---- dirty memory reused --------------------------------------------- */

/* os_calloc(nmemb, size) after a block of the same total size was filled
 * with 0xff and freed: the same address comes back, all zero.  `guard`:
 * keep a live block after it, so the freed block stays in a bin or cache
 * instead of merging into the top. */
static void dirty_reuse(size_t nmemb, size_t size, bool guard)
{
	size_t total = nmemb * size;
	unsigned char *p = os_malloc(total);
	ck_assert_ptr_nonnull(p);
	void *g = guard ? os_malloc(64) : NULL;
	size_t usable = os_malloc_usable_size(p);
	memset(p, 0xff, usable);
	os_free(p);
	unsigned char *q = os_calloc(nmemb, size);
	ck_assert_ptr_nonnull(q);
	ck_assert_msg(q == p,
		      "os_calloc(%zu, %zu) = %p, not the freed block %p: the "
		      "test did not exercise reuse",
		      nmemb, size, (void *)q, (void *)p);
	size_t bad = 0;
	ck_assert_msg(tst_all_bytes(q, total, 0, &bad),
		      "os_calloc(%zu, %zu) reused %p with byte %zu = 0x%02x",
		      nmemb, size, (void *)q, bad, q[bad]);
	os_free(q);
	os_free(g);
	ck_assert_int_eq(os_heap_check(), 0);
}

START_TEST(test_calloc_zeroes_a_reused_block_from_the_thread_cache)
{
	static const size_t sizes[] = {1, 8, 16, 24, 33, 100, 255, 512, 1000,
				       1008};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		dirty_reuse(1, sizes[i], true);
		dirty_reuse(sizes[i], 1, false);
	}
}
END_TEST

START_TEST(test_calloc_zeroes_a_reused_block_from_a_bin)
{
	static const size_t sizes[] = {1009, 1500, 4000, 4096, 10000, 65536,
				       100000, 131071};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		dirty_reuse(1, sizes[i], true);
}
END_TEST

START_TEST(test_calloc_zeroes_a_reused_block_merged_into_the_top)
{
	static const size_t sizes[] = {2000, 4096, 50000, 131071};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		dirty_reuse(4, sizes[i] / 4, false);
}
END_TEST

START_TEST(test_calloc_zeroes_a_reused_block_without_caches)
{
	setenv("OSALLOC_OPTIONS", "cache=0", 1);
	static const size_t sizes[] = {1, 16, 17, 100, 500, 1000, 3000};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		dirty_reuse(1, sizes[i], true);
		dirty_reuse(1, sizes[i], false);
	}
}
END_TEST

START_TEST(test_calloc_zeroes_two_merged_dirty_blocks)
{
	/* a and b dirty and adjacent, c keeps them off the top; freeing a and
	 * b merges them; a calloc of their joint size reuses both. */
	unsigned char *a = os_malloc(3000), *b = os_malloc(5000);
	void *c = os_malloc(3000);
	ck_assert(a && b && c);
	ck_assert_msg(b == a + os_malloc_usable_size(a) + OSA_HDR,
		      "a %p and b %p are not neighbours", (void *)a, (void *)b);
	/* Through a volatile copy: with _FORTIFY_SOURCE (Debian's hardened
	 * build) the compiler knows a and b by their requested sizes and
	 * would stop a memset of their full usable size. */
	unsigned char *volatile va = a, *volatile vb = b;
	memset(va, 0xab, os_malloc_usable_size(a));
	memset(vb, 0xcd, os_malloc_usable_size(b));
	os_free(a);
	os_free(b);
	size_t total = 3000 + 5000;
	unsigned char *q = os_calloc(total, 1);
	ck_assert_ptr_eq(q, a);
	size_t bad = 0;
	ck_assert_msg(tst_all_bytes(q, total, 0, &bad), "byte %zu = 0x%02x",
		      bad, q[bad]);
	os_free(q);
	os_free(c);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_calloc_zeroes_the_tail_left_by_a_shrinking_realloc)
{
	/* The tail given back by a shrinking realloc is dirty too. */
	unsigned char *p = os_malloc(8000);
	void *g = os_malloc(100);
	memset(p, 0x5a, 8000);
	ck_assert_ptr_eq(os_realloc(p, 2000), p);
	unsigned char *q = os_calloc(1, 5000);
	ck_assert_msg(q > p && q < p + 8000,
		      "the shrunk tail was not reused (%p, block %p)",
		      (void *)q, (void *)p);
	size_t bad = 0;
	ck_assert_msg(tst_all_bytes(q, 5000, 0, &bad), "byte %zu = 0x%02x",
		      bad, q[bad]);
	os_free(q);
	os_free(p);
	os_free(g);
}
END_TEST

START_TEST(test_calloc_zeroes_many_mixed_reuses)
{
	enum { N = 2000 };
	static unsigned char *p[N];
	static size_t n[N];
	uint64_t rng = 4242;
	for (int round = 0; round < 10; round++) {
		for (size_t i = 0; i < N; i++) {
			n[i] = tst_rand_range(&rng, 1, 6000);
			p[i] = os_calloc(1, n[i]);
			ck_assert_ptr_nonnull(p[i]);
			size_t bad = 0;
			ck_assert_msg(tst_all_bytes(p[i], n[i], 0, &bad),
				      "round %d: os_calloc(1, %zu) byte %zu "
				      "not zero",
				      round, n[i], bad);
			memset(p[i], 0xee, os_malloc_usable_size(p[i]));
		}
		for (size_t i = 0; i < N; i++)
			if (tst_rand(&rng) & 1) {
				os_free(p[i]);
				p[i] = NULL;
			}
		for (size_t i = 0; i < N; i++)
			os_free(p[i]);
	}
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* ---- fresh memory: no memset ----------------------------------------- */

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

START_TEST(test_calloc_of_fresh_mmap_memory_leaves_pages_untouched)
{
	TST_SKIP_UNDER_VALGRIND("libosalloc clears calloc memory under valgrind (memcheck must see the zeros written)");
	size_t len = 64u << 20, pg = page_size();
	unsigned char *p = os_calloc(1, len);
	ck_assert_ptr_nonnull(p);
	size_t pages = len / pg;
	size_t resident = tst_resident_pages(p, len);
	ck_assert_uint_ne(resident, (size_t)-1);
	/* A memset would have made every page resident.  Allow transparent
	 * huge pages around the header (2 MiB each). */
	ck_assert_msg(resident < pages / 8,
		      "%zu of %zu pages resident: os_calloc cleared memory "
		      "that came zeroed from mmap",
		      resident, pages);
	/* And it reads as zero. */
	for (size_t i = 0; i < len; i += pg)
		ck_assert_uint_eq(p[i], 0);
	ck_assert_uint_eq(p[len - 1], 0);
	os_free(p);
}
END_TEST

START_TEST(test_calloc_of_fresh_heap_memory_leaves_pages_untouched)
{
	TST_SKIP_UNDER_VALGRIND("libosalloc clears calloc memory under valgrind (memcheck must see the zeros written)");
	/* The first allocation of this (fresh) process: the heap's first
	 * segment is new, so the block below the mmap threshold is known
	 * zero. */
	size_t len = 120000, pg = page_size();
	unsigned char *p = os_calloc(1, len);
	ck_assert_ptr_nonnull(p);
	ck_assert_msg((uintptr_t)p < (uintptr_t)sbrk(0),
		      "%p does not come from the brk heap", (void *)p);
	/* Pages wholly inside the block: none may be resident. */
	uintptr_t from = ((uintptr_t)p + pg - 1) & ~(uintptr_t)(pg - 1);
	uintptr_t to = ((uintptr_t)p + len) & ~(uintptr_t)(pg - 1);
	size_t pages = (to - from) / pg;
	ck_assert_uint_gt(pages, 20);
	size_t resident = tst_resident_pages((void *)from, to - from);
	ck_assert_msg(resident <= 1,
		      "%zu of %zu pages resident: os_calloc cleared fresh "
		      "heap memory",
		      resident, pages);
	size_t bad = 0;
	ck_assert_msg(tst_all_bytes(p, len, 0, &bad), "byte %zu not zero", bad);
	os_free(p);
}
END_TEST

/* A program that raised its break, wrote there and lowered it inside a
 * page leaves those bytes past the break: the kernel keeps the page.  The
 * heap's first segment starts in that page, and what is left of it is not
 * taken for zeros. */
START_TEST(test_calloc_is_zero_where_the_program_lowered_the_break_in_a_page)
{
	TST_SKIP_UNDER_VALGRIND("valgrind emulates the break");
	unsigned char *q = sbrk(0);
	ck_assert_ptr_ne(sbrk(8192), (void *)-1);
	memset(q, 0xaa, 8192);
	ck_assert_ptr_ne(sbrk(-(8192 - 100)), (void *)-1);
	unsigned char *p = os_calloc(1, 3000);
	ck_assert_ptr_nonnull(p);
	ck_assert_msg(p > q && p < q + 4096,
		      "%p is not in the page the program wrote at %p",
		      (void *)p, (void *)q);
	size_t bad = 0;
	ck_assert_msg(tst_all_bytes(p, 3000, 0, &bad), "byte %zu not zero",
		      bad);
	os_free(p);
}
END_TEST

START_TEST(test_calloc_of_fresh_heap_growth_leaves_pages_untouched)
{
	TST_SKIP_UNDER_VALGRIND("libosalloc clears calloc memory under valgrind (memcheck must see the zeros written)");
	/* Use up the first segment with dirty data, then a calloc that needs
	 * the heap to grow gets memory straight from the break. */
	struct os_mallinfo m;
	void *first = os_malloc(64);
	tst_mallinfo_exact(&m);
	size_t room = m.heap_free_bytes;
	ck_assert_uint_gt(room, 4096);
	unsigned char *fill = os_malloc(room - 4096);
	ck_assert_ptr_nonnull(fill);
	memset(fill, 0x77, room - 4096);
	size_t len = 100000, pg = page_size();
	unsigned char *p = os_calloc(len, 1);
	ck_assert_ptr_nonnull(p);
	tst_mallinfo_exact(&m);
	ck_assert_msg(m.heap_bytes > 131072, "the heap did not grow");
	uintptr_t from = ((uintptr_t)p + 4096 + pg - 1) & ~(uintptr_t)(pg - 1);
	uintptr_t to = ((uintptr_t)p + len) & ~(uintptr_t)(pg - 1);
	size_t resident = tst_resident_pages((void *)from, to - from);
	ck_assert_msg(resident <= 1, "%zu of %zu pages resident", resident,
		      (to - from) / pg);
	ck_assert(tst_all_bytes(p, len, 0, NULL));
	os_free(p);
	os_free(fill);
	os_free(first);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("calloc");
	TCase *tc = tcase_create("size0");
	tcase_add_test(tc,
		       test_calloc_with_a_zero_argument_returns_null_keeping_errno);
	suite_add_tcase(s, tc);

	tc = tcase_create("dirty");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_calloc_zeroes_a_reused_block_from_the_thread_cache);
	tcase_add_test(tc, test_calloc_zeroes_a_reused_block_from_a_bin);
	tcase_add_test(tc, test_calloc_zeroes_a_reused_block_merged_into_the_top);
	tcase_add_test(tc, test_calloc_zeroes_a_reused_block_without_caches);
	tcase_add_test(tc, test_calloc_zeroes_two_merged_dirty_blocks);
	tcase_add_test(tc,
		       test_calloc_zeroes_the_tail_left_by_a_shrinking_realloc);
	tcase_add_test(tc, test_calloc_zeroes_many_mixed_reuses);
	suite_add_tcase(s, tc);

	tc = tcase_create("fresh");
	tcase_add_test(
	    tc, test_calloc_is_zero_where_the_program_lowered_the_break_in_a_page);
	tcase_add_test(tc, test_calloc_of_fresh_mmap_memory_leaves_pages_untouched);
	tcase_add_test(tc, test_calloc_of_fresh_heap_memory_leaves_pages_untouched);
	tcase_add_test(tc, test_calloc_of_fresh_heap_growth_leaves_pages_untouched);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	return tst_main(argc, argv, make_suite, NULL);
}
