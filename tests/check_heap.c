/* check_heap.c - how the brk heap reuses memory: best fit, splitting,
 * coalescing, the top block growing in place, and no walk over blocks.
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 *
 * Every case starts with a fresh allocator (tst_main forces CK_FORK), so
 * blocks carved one after the other are neighbours; the cases assert that
 * (ASSERT_NEIGHBOURS) before relying on it.  Requests above 1 KiB bypass
 * the thread caches; cases with smaller blocks turn the caches off.  The
 * "no walk" cases do not time anything: they make every unrelated block
 * inaccessible (PROT_NONE) and show that allocating and freeing still work,
 * so no operation can have read them.
 */
#include "common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "osalloc.h"

#define ASSERT_NEIGHBOURS(a, b)                                                \
	ck_assert_msg((unsigned char *)(b) == tst_next_block(a),               \
		      "setup: %p does not follow %p", (void *)(b), (void *)(a))

/* A block that keeps its neighbours apart: above the cache limit, so it
 * comes from the heap in order. */
enum { GUARD = 1100 };

static size_t block_of(size_t request)
{
	return osa_request_to_block(request);
}

/* ---- best fit -------------------------------------------------------- */

START_TEST(test_best_fit_takes_the_tightest_of_several_free_blocks)
{
	enum { A, B, C, D, N };
	static const size_t size[N] = {8000, 3000, 5000, 3200};
	unsigned char *p[N], *g[N];
	for (int i = 0; i < N; i++) {
		p[i] = os_malloc(size[i]);
		g[i] = os_malloc(GUARD);
		ASSERT_NEIGHBOURS(p[i], g[i]);
	}
	/* Freed in a mixed order: neither LIFO nor FIFO gives the answer. */
	os_free(p[C]);
	os_free(p[A]);
	os_free(p[D]);
	os_free(p[B]);
	ck_assert_int_eq(os_heap_check(), 0);
	/* 3100: B is too small, D (3200) is tighter than C and A. */
	ck_assert_ptr_eq(os_malloc(3100), p[D]);
	/* 2900: B (3000) fits best. */
	ck_assert_ptr_eq(os_malloc(2900), p[B]);
	/* 4000: C; 6000: A. */
	ck_assert_ptr_eq(os_malloc(4000), p[C]);
	ck_assert_ptr_eq(os_malloc(6000), p[A]);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

static void two_in_one_bin(bool smaller_first)
{
	/* Blocks of 2576 and 2672 bytes share a bin (2560..2687). */
	unsigned char *s = os_malloc(2560), *gs = os_malloc(GUARD);
	unsigned char *l = os_malloc(2656), *gl = os_malloc(GUARD);
	ASSERT_NEIGHBOURS(s, gs);
	ASSERT_NEIGHBOURS(l, gl);
	ck_assert_uint_eq(block_of(2560), 2576);
	ck_assert_uint_eq(block_of(2656), 2672);
	if (smaller_first) {
		os_free(s);
		os_free(l);
	} else {
		os_free(l);
		os_free(s);
	}
	ck_assert_ptr_eq(os_malloc(2500), s);
	ck_assert_ptr_eq(os_malloc(2500), l);
	ck_assert_int_eq(os_heap_check(), 0);
}

START_TEST(test_best_fit_prefers_the_smaller_block_within_one_bin)
{
	two_in_one_bin(true);
}
END_TEST

START_TEST(test_best_fit_prefers_the_smaller_block_whatever_the_free_order)
{
	two_in_one_bin(false);
}
END_TEST

START_TEST(test_best_fit_uses_exact_size_bins_for_small_blocks)
{
	setenv("OSALLOC_OPTIONS", "cache=0", 1);
	static const size_t size[] = {32, 200, 80, 48};
	unsigned char *p[4], *g[4];
	for (int i = 0; i < 4; i++) {
		p[i] = os_malloc(size[i]);
		g[i] = os_malloc(16);
		ASSERT_NEIGHBOURS(p[i], g[i]);
	}
	for (int i = 0; i < 4; i++)
		os_free(p[i]);
	/* 60 bytes need a block of 80: the tightest free one is 96 (for 80
	 * bytes), not 224 (200). */
	ck_assert_uint_eq(block_of(60), 80);
	ck_assert_ptr_eq(os_malloc(60), p[2]);
	/* 33 needs 64: the block of 48 bytes' request. */
	ck_assert_ptr_eq(os_malloc(33), p[3]);
	ck_assert_ptr_eq(os_malloc(1), p[0]);
	ck_assert_ptr_eq(os_malloc(150), p[1]);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_freed_memory_is_reused_for_every_size)
{
	setenv("OSALLOC_OPTIONS", "cache=0", 1);
	for (size_t n = 1; n < 20000; n += (n < 2048 ? 1 : 97)) {
		unsigned char *p = os_malloc(n);
		void *g = os_malloc(16);
		os_free(p);
		unsigned char *q = os_malloc(n);
		ck_assert_msg(q == p, "os_malloc(%zu) after freeing %p gave %p",
			      n, (void *)p, (void *)q);
		os_free(q);
		os_free(g);
	}
	struct os_mallinfo m;
	os_mallinfo(&m);
	ck_assert_uint_eq(m.heap_bytes, 131072); /* never needed more */
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* ---- split ----------------------------------------------------------- */

START_TEST(test_a_larger_free_block_is_split_and_the_rest_stays_free)
{
	unsigned char *a = os_malloc(20000), *g = os_malloc(GUARD);
	ASSERT_NEIGHBOURS(a, g);
	os_free(a);
	struct os_mallinfo m0, m1, m2;
	tst_mallinfo_exact(&m0);
	unsigned char *p = os_malloc(5000);
	ck_assert_ptr_eq(p, a);
	tst_mallinfo_exact(&m1);
	ck_assert_uint_eq(m0.heap_free_bytes - m1.heap_free_bytes,
			  block_of(5000));
	ck_assert_uint_eq(os_malloc_usable_size(p), block_of(5000) - OSA_HDR);
	/* The rest, right after p, serves the next request that fits. */
	unsigned char *q = os_malloc(14000);
	ck_assert_ptr_eq(q, tst_next_block(p));
	tst_mallinfo_exact(&m2);
	ck_assert_uint_eq(m1.heap_free_bytes - m2.heap_free_bytes,
			  block_of(14000));
	/* And what is left of it still: 20016 - 5024 - 14016 = 976 bytes. */
	ck_assert_uint_eq(block_of(20000) - block_of(5000) - block_of(14000),
			  976);
	ck_assert_ptr_eq(os_malloc(900), tst_next_block(q));
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_a_remainder_too_small_for_a_block_is_not_split_off)
{
	unsigned char *a = os_malloc(3000), *g = os_malloc(GUARD);
	ASSERT_NEIGHBOURS(a, g);
	os_free(a);
	/* 2990 needs 3008 bytes of the 3024: 16 left, less than a block. */
	ck_assert_uint_eq(block_of(3000) - block_of(2990), 16);
	unsigned char *p = os_malloc(2990);
	ck_assert_ptr_eq(p, a);
	ck_assert_uint_eq(os_malloc_usable_size(p), block_of(3000) - OSA_HDR);
	ck_assert_ptr_eq(tst_next_block(p), g);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* ---- coalesce -------------------------------------------------------- */

/* Blocks a, b, c side by side, then a guard; frees them in `order` (a
 * string of 'a', 'b', 'c') and checks that one request of their joint size
 * gets a's address. */
static void coalesce(const char *order)
{
	unsigned char *x[3];
	x[0] = os_malloc(3000);
	x[1] = os_malloc(4000);
	x[2] = os_malloc(5000);
	unsigned char *g = os_malloc(GUARD);
	ASSERT_NEIGHBOURS(x[0], x[1]);
	ASSERT_NEIGHBOURS(x[1], x[2]);
	ASSERT_NEIGHBOURS(x[2], g);
	tst_fill(g, GUARD, 5);
	for (const char *o = order; *o; o++) {
		os_free(x[*o - 'a']);
		ck_assert_int_eq(os_heap_check(), 0);
	}
	size_t joint = block_of(3000) + block_of(4000) + block_of(5000);
	unsigned char *p = os_malloc(joint - OSA_HDR);
	ck_assert_msg(p == x[0],
		      "freeing in order %s: a request of the joint size got "
		      "%p, not %p",
		      order, (void *)p, (void *)x[0]);
	ck_assert_ptr_eq(tst_next_block(p), g);
	ck_assert(tst_verify(g, GUARD, 5, NULL));
	/* The headers merged away (now inside p) are no longer valid: a
	 * stale header must not pass for a block (lib/heap.c start_clear). */
	for (int i = 1; i <= 2 && !tst_under_valgrind(); i++) {
		/* The address only: hidden from gcc's bounds analysis.  (Not
		 * under memcheck: those bytes are p's, not yet written.) */
		uintptr_t a = tst_opaque((uintptr_t)x[i]);
		ck_assert(!osa_header_ok(osa_block_from_ptr((void *)a)));
	}
	ck_assert_int_eq(os_heap_check(), 0);
}

START_TEST(test_free_merges_with_the_free_next_block)
{
	coalesce("cba");
}
END_TEST

START_TEST(test_free_merges_with_the_free_previous_block)
{
	coalesce("abc");
}
END_TEST

START_TEST(test_free_merges_with_both_free_neighbours)
{
	coalesce("acb");
}
END_TEST

START_TEST(test_free_merges_in_any_order)
{
	coalesce("bac");
	coalesce("cab");
	coalesce("bca");
}
END_TEST

START_TEST(test_many_freed_neighbours_merge_into_one_block)
{
	enum { N = 60, SIZE = 2000 }; /* 60 blocks: under the mmap threshold */
	unsigned char *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = os_malloc(SIZE);
		if (i > 0)
			ASSERT_NEIGHBOURS(p[i - 1], p[i]);
	}
	unsigned char *g = os_malloc(GUARD);
	ASSERT_NEIGHBOURS(p[N - 1], g);
	uint64_t rng = 5;
	int order[N];
	for (int i = 0; i < N; i++)
		order[i] = i;
	for (int i = N - 1; i > 0; i--) {
		int j = (int)(tst_rand(&rng) % (uint64_t)(i + 1)), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (int i = 0; i < N; i++)
		os_free(p[order[i]]);
	ck_assert_int_eq(os_heap_check(), 0);
	unsigned char *big = os_malloc(N * block_of(SIZE) - OSA_HDR);
	ck_assert_ptr_eq(big, p[0]);
	ck_assert_ptr_eq(tst_next_block(big), g);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_small_blocks_coalesce_without_caches)
{
	setenv("OSALLOC_OPTIONS", "cache=0", 1);
	unsigned char *a = os_malloc(16), *b = os_malloc(16), *c = os_malloc(16);
	unsigned char *g = os_malloc(16);
	ASSERT_NEIGHBOURS(a, b);
	ASSERT_NEIGHBOURS(b, c);
	ASSERT_NEIGHBOURS(c, g);
	os_free(a);
	os_free(c);
	os_free(b); /* 32 + 32 + 32 bytes: one block of 96 */
	ck_assert_ptr_eq(os_malloc(96 - OSA_HDR), a);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* ---- the top block --------------------------------------------------- */

START_TEST(test_a_freed_last_block_merges_into_the_top)
{
	unsigned char *first = os_malloc(GUARD);
	unsigned char *x = os_malloc(10000);
	ASSERT_NEIGHBOURS(first, x);
	struct os_mallinfo m0, m1;
	tst_mallinfo_exact(&m0);
	os_free(x);
	tst_mallinfo_exact(&m1);
	ck_assert_uint_eq(m1.heap_free_bytes - m0.heap_free_bytes,
			  block_of(10000));
	/* No hole: a bigger request starts where x was. */
	unsigned char *y = os_malloc(50000);
	ck_assert_ptr_eq(y, x);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_the_top_grows_in_place_when_the_heap_grows)
{
	/* 10 MB of contiguous growth. */
	TST_SKIP_UNDER_VALGRIND("valgrind's emulated break cannot grow past about 8 MiB");
	struct tst_sys s0, s1;
	unsigned char *first = os_malloc(64);
	tst_sys_snapshot(&s0);
	unsigned char *a = os_malloc(100000), *b = os_malloc(100000);
	tst_sys_snapshot(&s1);
	ASSERT_NEIGHBOURS(a, b);
	ck_assert_uint_eq(s1.sbrk - s0.sbrk, 1);
	ck_assert_uint_ge(s1.brk - s0.brk, 128 * 1024);
	struct os_mallinfo m;
	tst_mallinfo_exact(&m);
	ck_assert_uint_eq(m.heap_segments, 1);
	ck_assert_uint_eq(m.heap_bytes, 131072 + (s1.brk - s0.brk));
	/* Many growths: still one segment, every block after the last. */
	unsigned char *prev = b;
	for (int i = 0; i < 100; i++) {
		unsigned char *p = os_malloc(100000);
		ASSERT_NEIGHBOURS(prev, p);
		prev = p;
	}
	tst_mallinfo_exact(&m);
	ck_assert_uint_eq(m.heap_segments, 1);
	ck_assert_int_eq(os_heap_check(), 0);
	(void)first;
}
END_TEST

/* Does this kernel fault pages in on request (Linux 5.14 and later)? */
static bool populate_supported(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	void *m = mmap(NULL, pg, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(m, MAP_FAILED);
	bool ok = madvise(m, pg, 23 /* MADV_POPULATE_WRITE */) == 0;
	munmap(m, pg);
	return ok;
}

/* Blocks carved from the top are written when they are allocated, so the
 * pages after the top are faulted in ahead, OSA_POPULATE_AHEAD bytes at a
 * time, and never further than that past the top. */
START_TEST(test_the_pages_after_the_top_are_faulted_in_ahead_and_no_further)
{
	TST_SKIP_UNDER_VALGRIND("no pages are faulted in ahead under valgrind");
	if (!populate_supported()) {
		fprintf(stderr, "%s:%d: skipped: the kernel has no "
				"MADV_POPULATE_WRITE\n",
			__FILE__, __LINE__);
		return;
	}
	const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	const uintptr_t ahead = OSA_POPULATE_AHEAD;
	/* The first allocation makes a fresh segment of 128 KiB; its pages
	 * are faulted in from the first carve that leaves the first page. */
	unsigned char *p = os_malloc(GUARD);
	ck_assert_ptr_nonnull(p);
	uintptr_t first_page = (uintptr_t)p & ~(pg - 1), top = 0;
	bool seen = false;
	/* Carving on: pages up to top + ahead are there when top enters a
	 * new page, and never one past top + ahead. */
	for (int i = 0; i < 200; i++) {
		p = os_malloc(GUARD);
		ck_assert_ptr_nonnull(p);
		memset(p, 1, GUARD);
		uintptr_t last_top = top;
		top = (uintptr_t)p - OSA_HDR + block_of(GUARD);
		uintptr_t page = top & ~(pg - 1);
		/* The segment's last page holds its fence header. */
		uintptr_t end = ((uintptr_t)sbrk(0) & ~(pg - 1)) - pg;
		if (!seen && page > first_page && page + ahead < end) {
			ck_assert_uint_eq(last_top & ~(pg - 1), first_page);
			ck_assert_uint_eq(tst_resident_pages((void *)page,
							     ahead),
					  ahead / pg);
			seen = true;
		}
		if (page + ahead < end)
			ck_assert_msg(tst_resident_pages(
					      (void *)(page + ahead),
					      end - page - ahead) == 0,
				      "block %d: pages resident past the top "
				      "and %lu bytes",
				      i, (unsigned long)ahead);
	}
	ck_assert(seen);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_a_free_block_before_the_top_is_absorbed_when_growing)
{
	/* x is free and last (merged into the top); growing the heap for a
	 * request larger than the top starts the new block at x. */
	unsigned char *first = os_malloc(GUARD);
	unsigned char *x = os_malloc(20000);
	ASSERT_NEIGHBOURS(first, x);
	os_free(x);
	unsigned char *y = os_malloc(130000); /* more than the top holds */
	ck_assert_ptr_eq(y, x);
	struct os_mallinfo m;
	tst_mallinfo_exact(&m);
	ck_assert_uint_eq(m.heap_segments, 1);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* ---- no walk over blocks --------------------------------------------- */

enum { BULK = 1000000 };
static unsigned char *bulk[BULK];

/* Makes the pages strictly inside [lo, hi), less `margin` at each end,
 * inaccessible.  Returns the number of bytes protected. */
static size_t protect_inside(uintptr_t lo, uintptr_t hi, size_t margin)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t from = (lo + margin + pg - 1) & ~(uintptr_t)(pg - 1);
	uintptr_t to = (hi - margin) & ~(uintptr_t)(pg - 1);
	TST_CHILD_REQUIRE(to > from, "nothing to protect");
	TST_CHILD_REQUIRE(mprotect((void *)from, to - from, PROT_NONE) == 0,
			  "mprotect: %d", errno);
	return to - from;
}

static void unprotect_inside(uintptr_t lo, uintptr_t hi, size_t margin)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t from = (lo + margin + pg - 1) & ~(uintptr_t)(pg - 1);
	uintptr_t to = (hi - margin) & ~(uintptr_t)(pg - 1);
	TST_CHILD_REQUIRE(mprotect((void *)from, to - from,
				   PROT_READ | PROT_WRITE) == 0,
			  "mprotect back");
}

/* Allocations and frees of many sizes, none of which may need the
 * protected blocks.  `min_block`: smallest block size requested. */
static void workload_beside_protected_blocks(size_t min_request,
					     size_t min_in_use)
{
	uint64_t rng = 17;
	void *keep[64] = {0};
	for (int r = 0; r < 20000; r++) {
		size_t k = tst_rand(&rng) % 64;
		if (keep[k]) {
			os_free(keep[k]);
			keep[k] = NULL;
			continue;
		}
		size_t n;
		switch (tst_rand(&rng) % 4) {
		case 0: n = tst_rand_range(&rng, min_request, 1000); break;
		case 1: n = tst_rand_range(&rng, 1001, 20000); break;
		case 2: n = tst_rand_range(&rng, 20001, 120000); break;
		default: n = tst_rand_range(&rng, 131072, 300000); break;
		}
		keep[k] = os_malloc(n);
		TST_CHILD_REQUIRE(keep[k] != NULL, "os_malloc(%zu)", n);
		memset(keep[k], 0x11, n < 64 ? n : 64);
		if (r % 7 == 0) {
			void *q = os_realloc(keep[k], n + 5000);
			TST_CHILD_REQUIRE(q != NULL, "os_realloc");
			keep[k] = q;
		}
		if (r % 11 == 0) {
			void *c = os_calloc(1, n);
			TST_CHILD_REQUIRE(c != NULL, "os_calloc");
			os_free(c);
		}
	}
	for (int k = 0; k < 64; k++)
		os_free(keep[k]);
	struct os_mallinfo m;
	os_mallinfo(&m);
	TST_CHILD_REQUIRE(m.in_use_bytes >= min_in_use,
			  "statistics lost the protected blocks");
}

/* A million live blocks, their memory inaccessible: allocation and free of
 * other blocks (thread caches on) never look at them. */
static int million_live_blocks(void *arg)
{
	(void)arg;
	unsigned char *before = os_malloc(GUARD);
	for (size_t i = 0; i < BULK; i++) {
		bulk[i] = os_malloc(16);
		TST_CHILD_REQUIRE(bulk[i] != NULL, "bulk %zu", i);
	}
	osa_tcache_flush_self(); /* blocks still cached go back now */
	unsigned char *after = os_malloc(GUARD);
	struct os_mallinfo m;
	os_mallinfo(&m);
	TST_CHILD_REQUIRE(m.heap_segments == 1, "one segment expected");
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	for (size_t i = 0; i < BULK; i++) {
		if ((uintptr_t)bulk[i] < lo)
			lo = (uintptr_t)bulk[i];
		if ((uintptr_t)bulk[i] > hi)
			hi = (uintptr_t)bulk[i];
	}
	TST_CHILD_REQUIRE(hi - lo < (size_t)BULK * 64, "bulk not contiguous");
	/* Cached leftovers of the last batch (flushed above, now a free block
	 * that later requests may take) sit within 4 KiB of its end. */
	size_t prot = protect_inside(lo, hi, 64 * 1024);
	TST_CHILD_REQUIRE(prot > (size_t)BULK * 16, "protected %zu", prot);

	workload_beside_protected_blocks(1, (size_t)BULK * 32);
	os_free(before);
	os_free(after);
	TST_CHILD_REQUIRE(os_malloc_usable_size(bulk[0]) >= 16, "usable");
	TST_CHILD_REQUIRE(os_malloc_usable_size(bulk[BULK - 1]) >= 16,
			  "usable");

	unprotect_inside(lo, hi, 64 * 1024);
	TST_CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	for (size_t i = 0; i < BULK; i++)
		os_free(bulk[i]);
	TST_CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return TST_CHILD_OK;
}

START_TEST(test_malloc_and_free_never_touch_a_million_unrelated_live_blocks)
{
	/* A million blocks in one segment. */
	TST_SKIP_UNDER_VALGRIND("valgrind's emulated break cannot grow past about 8 MiB");
	struct tst_child c;
	tst_run_child(million_live_blocks, NULL, 60, &c);
	TST_ASSERT_CHILD_OK(&c);
	tst_child_release(&c);
}
END_TEST

enum { PAIRS = 200000 };
static unsigned char *freed[PAIRS], *kept[PAIRS];

/* 200,000 free blocks of one size in a bin, each between live blocks, all
 * inaccessible: allocations of other sizes and frees never visit them. */
static int many_free_blocks_in_a_bin(void *arg)
{
	(void)arg;
	setenv("OSALLOC_OPTIONS", "cache=0", 1);
	unsigned char *before = os_malloc(GUARD);
	unsigned char *sep = os_malloc(16); /* before never merges with them */
	for (size_t i = 0; i < PAIRS; i++) {
		freed[i] = os_malloc(32); /* block of 48 */
		kept[i] = os_malloc(16);  /* block of 32 */
		TST_CHILD_REQUIRE(freed[i] && kept[i], "setup %zu", i);
		TST_CHILD_REQUIRE(kept[i] == tst_next_block(freed[i]),
				  "setup: not neighbours");
	}
	for (size_t i = 0; i < PAIRS; i++)
		os_free(freed[i]);
	unsigned char *after = os_malloc(GUARD);
	uintptr_t lo = (uintptr_t)freed[0], hi = (uintptr_t)kept[PAIRS - 1];
	/* The bin's head (the last block freed) stays accessible: a free block
	 * of 48 bytes made by the workload is linked in front of it. */
	protect_inside(lo, hi, 4096);
	/* Requests needing blocks of 64 bytes and more: the bin of 48-byte
	 * blocks below them is never searched. */
	workload_beside_protected_blocks(block_of(40) - OSA_HDR,
					 (size_t)PAIRS * 32);
	os_free(before);
	os_free(after);
	unprotect_inside(lo, hi, 4096);
	TST_CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	/* Those free blocks are still there, and serve 48-byte blocks. */
	size_t reused = 0;
	for (size_t i = 0; i < PAIRS; i++) {
		uintptr_t p = (uintptr_t)os_malloc(32);
		reused += p >= lo && p <= hi;
	}
	TST_CHILD_REQUIRE(reused >= PAIRS - 100, "only %zu reused", reused);
	TST_CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	(void)sep;
	return TST_CHILD_OK;
}

START_TEST(test_allocations_never_walk_a_bin_of_other_sizes)
{
	/* 200,000 pairs of neighbours in one segment. */
	TST_SKIP_UNDER_VALGRIND("valgrind's emulated break cannot grow past about 8 MiB");
	struct tst_child c;
	tst_run_child(many_free_blocks_in_a_bin, NULL, 60, &c);
	TST_ASSERT_CHILD_OK(&c);
	tst_child_release(&c);
}
END_TEST

/* ---- statistics ------------------------------------------------------ */

/* os_mallinfo(3): the peak counts what the thread caches hold too (they
 * take blocks from the heap in batches), so it is at least in_use_bytes +
 * cached_bytes at any time; with caches, a malloc of 64 bytes makes the
 * batch part of it. */
START_TEST(test_the_peak_counts_the_blocks_that_caches_hold)
{
	void *p = os_malloc(64);
	ck_assert_ptr_nonnull(p);
	struct os_mallinfo m;
	os_mallinfo(&m);
	ck_assert_uint_ge(m.peak_in_use_bytes, m.in_use_bytes + m.cached_bytes);
	if (m.cached_bytes > 0) /* caches are off under valgrind */
		ck_assert_uint_gt(m.peak_in_use_bytes, m.in_use_bytes);
	os_free(p);
	os_mallinfo(&m);
	ck_assert_uint_ge(m.peak_in_use_bytes, m.in_use_bytes + m.cached_bytes);
}
END_TEST

/* os_mallinfo(3): in_use_bytes is what the program holds.  A thread's
 * cache is a heap block of the allocator's own, counted in cached_bytes:
 * once the program has freed everything, in the main thread and in one
 * more, nothing is in use. */
static void *alloc_and_free(void *arg)
{
	(void)arg;
	void *p[100];
	for (int i = 0; i < 100; i++)
		p[i] = os_malloc(16 + (size_t)i * 8);
	for (int i = 0; i < 100; i++)
		os_free(p[i]);
	return NULL;
}

START_TEST(test_nothing_is_in_use_once_the_program_freed_everything)
{
	struct os_mallinfo m;
	alloc_and_free(NULL);
	os_mallinfo(&m);
	ck_assert_uint_eq(m.in_use_bytes, 0);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, alloc_and_free, NULL), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	alloc_and_free(NULL);
	os_mallinfo(&m);
	ck_assert_uint_eq(m.in_use_bytes, 0);
	ck_assert_uint_eq(m.alloc_calls, m.free_calls);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("heap");
	TCase *tc = tcase_create("bestfit");
	tcase_add_test(tc, test_best_fit_takes_the_tightest_of_several_free_blocks);
	tcase_add_test(tc, test_best_fit_prefers_the_smaller_block_within_one_bin);
	tcase_add_test(
	    tc, test_best_fit_prefers_the_smaller_block_whatever_the_free_order);
	tcase_add_test(tc, test_best_fit_uses_exact_size_bins_for_small_blocks);
	tcase_add_test(tc, test_freed_memory_is_reused_for_every_size);
	suite_add_tcase(s, tc);

	tc = tcase_create("split");
	tcase_add_test(tc, test_a_larger_free_block_is_split_and_the_rest_stays_free);
	tcase_add_test(tc, test_a_remainder_too_small_for_a_block_is_not_split_off);
	suite_add_tcase(s, tc);

	tc = tcase_create("coalesce");
	tcase_add_test(tc, test_free_merges_with_the_free_next_block);
	tcase_add_test(tc, test_free_merges_with_the_free_previous_block);
	tcase_add_test(tc, test_free_merges_with_both_free_neighbours);
	tcase_add_test(tc, test_free_merges_in_any_order);
	tcase_add_test(tc, test_many_freed_neighbours_merge_into_one_block);
	tcase_add_test(tc, test_small_blocks_coalesce_without_caches);
	suite_add_tcase(s, tc);

	tc = tcase_create("top");
	tcase_add_test(tc, test_a_freed_last_block_merges_into_the_top);
	tcase_add_test(tc, test_the_top_grows_in_place_when_the_heap_grows);
	tcase_add_test(tc, test_a_free_block_before_the_top_is_absorbed_when_growing);
	tcase_add_test(tc,
		       test_the_pages_after_the_top_are_faulted_in_ahead_and_no_further);
	suite_add_tcase(s, tc);

	tc = tcase_create("stats");
	tcase_add_test(tc, test_the_peak_counts_the_blocks_that_caches_hold);
	tcase_add_test(tc, test_nothing_is_in_use_once_the_program_freed_everything);
	suite_add_tcase(s, tc);

	tc = tcase_create("nowalk");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc,
		       test_malloc_and_free_never_touch_a_million_unrelated_live_blocks);
	tcase_add_test(tc, test_allocations_never_walk_a_bin_of_other_sizes);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	return tst_main(argc, argv, make_suite, NULL);
}
