/* check_misuse.c - os_free and os_realloc of a pointer the allocator never
 * returned, of an interior pointer, or of a block already freed: one line
 * "osalloc: <call>(): <cause>: 0x<ptr>" on stderr, then SIGABRT.  Each
 * misuse runs in a forked child; the parent reads the child's stderr to the
 * end and compares it with the exact line.  The check is O(1): it works with
 * every other block of a large heap made inaccessible.
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 *
 * (The complete misuse catalog of MISUSE.md is tests/check_misuse_catalog.c;
 * this suite covers the cases of issue 2.)
 */
#include "common.h"

#include <errno.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "osalloc.h"

static const char DOUBLE_FREE[] = "double free";
static const char NOT_OURS[] = "pointer not allocated by osalloc";
static const char NOT_START[] = "pointer is not the start of a block";
static const char MISALIGNED[] = "misaligned pointer";

/* What a child does with the pointer it is given. */
static int do_free(void *p)
{
	os_free(p);
	return TST_CHILD_RETURNED;
}

static int do_realloc(void *p)
{
	void *q = os_realloc(p, 100);
	(void)q;
	return TST_CHILD_RETURNED;
}

static int do_realloc_large(void *p)
{
	void *q = os_realloc(p, 400000);
	(void)q;
	return TST_CHILD_RETURNED;
}

static int do_usable_size(void *p)
{
	return os_malloc_usable_size(p) == 0 ? TST_CHILD_RETURNED
					      : TST_CHILD_RETURNED + 1;
}

/* Checks a misuse with os_free, then with os_realloc (both grow and a size
 * that would need a mapping). */
static void expect_both(void *ptr, const char *cause)
{
	TST_EXPECT_MISUSE(do_free, ptr, "os_free", cause, ptr);
	TST_EXPECT_MISUSE(do_realloc, ptr, "os_realloc", cause, ptr);
	TST_EXPECT_MISUSE(do_realloc_large, ptr, "os_realloc", cause, ptr);
}

/* ---- double free ----------------------------------------------------- */

START_TEST(test_double_free_of_a_small_block_aborts)
{
	void *p = os_malloc(32);
	os_free(p);
	expect_both(p, DOUBLE_FREE);
	/* The parent is fine: the block is reused normally. */
	ck_assert_ptr_eq(os_malloc(32), p);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_double_free_after_other_frees_aborts)
{
	/* Without caches the three merge, and a double free of a merged block
	 * reads "pointer is not the start of a block" (os_malloc(3)). */
	TST_SKIP_UNDER_VALGRIND("no thread caches under valgrind");
	void *p = os_malloc(32), *q = os_malloc(32), *r = os_malloc(500);
	os_free(p);
	os_free(q);
	os_free(r);
	expect_both(p, DOUBLE_FREE);
	expect_both(q, DOUBLE_FREE);
	expect_both(r, DOUBLE_FREE);
}
END_TEST

START_TEST(test_double_free_of_a_small_block_without_caches_aborts)
{
	setenv("OSALLOC_OPTIONS", "cache=0", 1);
	void *p = os_malloc(32), *g = os_malloc(32);
	os_free(p);
	expect_both(p, DOUBLE_FREE);
	os_free(g);
}
END_TEST

START_TEST(test_double_free_of_a_medium_block_aborts)
{
	void *p = os_malloc(5000), *g = os_malloc(5000);
	os_free(p); /* into a bin: g keeps it from the top */
	expect_both(p, DOUBLE_FREE);
	os_free(g);
}
END_TEST

START_TEST(test_double_free_of_a_block_merged_into_the_top_aborts)
{
	void *p = os_malloc(5000);
	os_free(p);
	expect_both(p, DOUBLE_FREE);
}
END_TEST

START_TEST(test_double_free_of_a_block_just_under_the_threshold_aborts)
{
	void *p = os_malloc(131071), *g = os_malloc(2000);
	os_free(p);
	expect_both(p, DOUBLE_FREE);
	os_free(g);
}
END_TEST

START_TEST(test_double_free_of_an_mmap_block_aborts)
{
	void *p = os_malloc(300000);
	os_free(p);
	expect_both(p, DOUBLE_FREE);
}
END_TEST

START_TEST(test_usable_size_of_a_freed_block_aborts)
{
	void *p = os_malloc(5000), *g = os_malloc(100);
	os_free(p);
	TST_EXPECT_MISUSE(do_usable_size, p, "os_malloc_usable_size",
			  DOUBLE_FREE, p);
	os_free(g);
}
END_TEST

/* ---- pointers never returned ----------------------------------------- */

static alignas(16) unsigned char global_buf[256];

START_TEST(test_free_of_a_stack_address_aborts)
{
	alignas(16) unsigned char buf[64];
	memset(buf, 0, sizeof buf);
	void *p = os_malloc(10); /* the allocator is running */
	expect_both(buf, NOT_OURS);
	os_free(p);
}
END_TEST

START_TEST(test_free_of_a_stack_address_before_any_allocation_aborts)
{
	alignas(16) unsigned char buf[64];
	memset(buf, 0, sizeof buf);
	expect_both(buf, NOT_OURS);
}
END_TEST

START_TEST(test_free_of_a_global_address_aborts)
{
	void *p = os_malloc(10);
	expect_both(global_buf + 64, NOT_OURS);
	os_free(p);
}
END_TEST

START_TEST(test_free_of_a_c_library_malloc_pointer_aborts)
{
	void *mine = os_malloc(100);
	void *theirs = malloc(100), *big = malloc(300000);
	ck_assert((uintptr_t)theirs % 16 == 0 && (uintptr_t)big % 16 == 0);
	expect_both(theirs, NOT_OURS);
	expect_both(big, NOT_OURS);
	free(theirs);
	free(big);
	os_free(mine);
}
END_TEST

START_TEST(test_free_of_a_pointer_into_an_inaccessible_mapping_aborts)
{
	/* Reading the "header" would fault: the check must not read it. */
	void *p = os_malloc(100);
	unsigned char *m = mmap(NULL, 8192, PROT_NONE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(m != MAP_FAILED);
	expect_both(m + 4096, NOT_OURS);
	expect_both(m + 16, NOT_OURS);
	munmap(m, 8192);
	os_free(p);
}
END_TEST

START_TEST(test_free_of_a_misaligned_pointer_aborts)
{
	unsigned char *p = os_malloc(100), *l = os_malloc(300000);
	expect_both(p + 1, MISALIGNED);
	expect_both(p + 8, MISALIGNED);
	expect_both(l + 1, MISALIGNED);
	os_free(p);
	os_free(l);
}
END_TEST

/* ---- interior pointers ----------------------------------------------- */

START_TEST(test_free_of_an_interior_pointer_of_a_small_block_aborts)
{
	unsigned char *p = os_malloc(100);
	expect_both(p + 16, NOT_START);
	expect_both(p + 64, NOT_START);
	os_free(p);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_free_of_an_interior_pointer_of_a_medium_block_aborts)
{
	unsigned char *p = os_malloc(20000);
	expect_both(p + 16, NOT_START);
	expect_both(p + 4096, NOT_START);
	expect_both(p + 19984, NOT_START);
	os_free(p);
}
END_TEST

START_TEST(test_free_of_an_interior_pointer_of_an_mmap_block_aborts)
{
	unsigned char *p = os_malloc(500000);
	expect_both(p + 16, NOT_START);
	expect_both(p + 4096, NOT_START);
	expect_both(p + 400000, NOT_START);
	os_free(p);
}
END_TEST

START_TEST(test_free_of_a_pointer_into_free_heap_space_aborts)
{
	/* Inside the top block (never handed out), and inside a free block
	 * in a bin. */
	unsigned char *a = os_malloc(5000), *g = os_malloc(5000);
	unsigned char *top = tst_next_block(g) + 4096;
	os_free(a);
	expect_both(top, NOT_START);
	expect_both(a + 1024, NOT_START);
	os_free(g);
}
END_TEST

/* ---- O(1): no other block is read ------------------------------------ */

enum { BULK = 200000 };
static unsigned char *bulk[BULK];

START_TEST(test_misuse_checks_read_no_other_block)
{
	/* 200,000 blocks in one segment, protected as one range. */
	TST_SKIP_UNDER_VALGRIND("valgrind's emulated break cannot grow past about 8 MiB");
	/* 200,000 live blocks and a freed medium block, then every page of
	 * the live blocks made inaccessible: each check still reports
	 * exactly, so it did not walk the heap. */
	unsigned char *freed = os_malloc(5000), *g = os_malloc(5000);
	unsigned char *inner = os_malloc(3000);
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	for (size_t i = 0; i < BULK; i++) {
		bulk[i] = os_malloc(1 + i % 200);
		ck_assert_ptr_nonnull(bulk[i]);
		if ((uintptr_t)bulk[i] < lo)
			lo = (uintptr_t)bulk[i];
		if ((uintptr_t)bulk[i] > hi)
			hi = (uintptr_t)bulk[i];
	}
	os_free(freed);
	uintptr_t from = (lo + 65536) & ~(uintptr_t)4095;
	uintptr_t to = (hi - 65536) & ~(uintptr_t)4095;
	ck_assert_uint_gt(to, from + (1u << 20));
	ck_assert_int_eq(mprotect((void *)from, to - from, PROT_NONE), 0);

	unsigned char *mid = (unsigned char *)((from + to) / 2 & ~(uintptr_t)15);
	alignas(16) unsigned char stack[32];
	memset(stack, 0, sizeof stack);
	expect_both(mid, NOT_START);      /* inside the protected range */
	expect_both(mid + 1, MISALIGNED);
	expect_both(stack, NOT_OURS);
	expect_both(freed, DOUBLE_FREE);
	expect_both(inner + 32, NOT_START);

	ck_assert_int_eq(mprotect((void *)from, to - from,
				  PROT_READ | PROT_WRITE),
			 0);
	ck_assert_int_eq(os_heap_check(), 0);
	os_free(g);
	os_free(inner);
}
END_TEST

/* ---- the report ------------------------------------------------------ */

/* Both frees in the child. */
static int free_twice(void *p)
{
	os_free(p);
	os_free(p);
	return TST_CHILD_RETURNED;
}

START_TEST(test_the_report_is_one_line_and_nothing_else)
{
	/* Also from a child that wrote nothing before: the whole of stderr
	 * is the line, newline-terminated, and stdout is empty. */
	void *p = os_malloc(64);
	TST_EXPECT_MISUSE(free_twice, p, "os_free", DOUBLE_FREE, p);
	char line[200];
	tst_misuse_line(line, sizeof line, "os_free", DOUBLE_FREE,
			(void *)0x55d0c0a01010);
	ck_assert_str_eq(line, "osalloc: os_free(): double free: 0x55d0c0a01010");
	os_free(p);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("misuse");
	TCase *tc = tcase_create("double_free");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_double_free_of_a_small_block_aborts);
	tcase_add_test(tc, test_double_free_after_other_frees_aborts);
	tcase_add_test(tc, test_double_free_of_a_small_block_without_caches_aborts);
	tcase_add_test(tc, test_double_free_of_a_medium_block_aborts);
	tcase_add_test(tc, test_double_free_of_a_block_merged_into_the_top_aborts);
	tcase_add_test(tc,
		       test_double_free_of_a_block_just_under_the_threshold_aborts);
	tcase_add_test(tc, test_double_free_of_an_mmap_block_aborts);
	tcase_add_test(tc, test_usable_size_of_a_freed_block_aborts);
	suite_add_tcase(s, tc);

	tc = tcase_create("not_ours");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_free_of_a_stack_address_aborts);
	tcase_add_test(tc, test_free_of_a_stack_address_before_any_allocation_aborts);
	tcase_add_test(tc, test_free_of_a_global_address_aborts);
	tcase_add_test(tc, test_free_of_a_c_library_malloc_pointer_aborts);
	tcase_add_test(tc,
		       test_free_of_a_pointer_into_an_inaccessible_mapping_aborts);
	tcase_add_test(tc, test_free_of_a_misaligned_pointer_aborts);
	suite_add_tcase(s, tc);

	tc = tcase_create("interior");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_free_of_an_interior_pointer_of_a_small_block_aborts);
	tcase_add_test(tc,
		       test_free_of_an_interior_pointer_of_a_medium_block_aborts);
	tcase_add_test(tc, test_free_of_an_interior_pointer_of_an_mmap_block_aborts);
	tcase_add_test(tc, test_free_of_a_pointer_into_free_heap_space_aborts);
	suite_add_tcase(s, tc);

	tc = tcase_create("constant_time");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_misuse_checks_read_no_other_block);
	suite_add_tcase(s, tc);

	tc = tcase_create("report");
	tcase_add_test(tc, test_the_report_is_one_line_and_nothing_else);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	return tst_main(argc, argv, make_suite, NULL);
}
