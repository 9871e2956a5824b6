/* check_malloc.c - os_malloc and os_free: size 0, alignment, usable size,
 * content integrity across many allocations, and sizes that cannot be
 * served (NULL, ENOMEM, nothing touched).
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 */
#include "common.h"

#include <errno.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "osalloc.h"
#include "reliable.h"

/* Sizes around every interesting edge: tiny, cache classes, exact bins,
 * ranged bins, page sizes and the mmap threshold. */
static const size_t edge_sizes[] = {
	1,      2,      7,      8,      9,      15,     16,     17,
	23,     24,     25,     31,     32,     33,     47,     48,
	63,     64,     65,     100,    127,    128,    129,    255,
	256,    257,    511,    512,    513,    991,    992,    993,
	1000,   1007,   1008,   1009,   1023,   1024,   1025,   2047,
	2048,   2049,   4095,   4096,   4097,   8191,   8192,   8193,
	65535,  65536,  65537,  131055, 131056, 131071, 131072, 131073,
	262144, 1048576,
};
enum { N_EDGE = sizeof edge_sizes / sizeof edge_sizes[0] };

/* ---- size 0 and NULL ------------------------------------------------- */

START_TEST(test_malloc_zero_returns_null_and_keeps_errno)
{
	errno = 1234;
	ck_assert_ptr_null(os_malloc(0));
	ck_assert_int_eq(errno, 1234);
	/* Also once the allocator is running. */
	void *p = os_malloc(10);
	ck_assert_ptr_nonnull(p);
	errno = 4321;
	ck_assert_ptr_null(os_malloc(0));
	ck_assert_int_eq(errno, 4321);
	os_free(p);
}
END_TEST

START_TEST(test_malloc_zero_allocates_nothing)
{
	void *warm = os_malloc(10);
	struct os_mallinfo before, after;
	tst_mallinfo_exact(&before);
	for (int i = 0; i < 100; i++)
		ck_assert_ptr_null(os_malloc(0));
	tst_mallinfo_exact(&after);
	ck_assert_uint_eq(after.alloc_calls, before.alloc_calls);
	ck_assert_uint_eq(after.in_use_bytes, before.in_use_bytes);
	os_free(warm);
}
END_TEST

START_TEST(test_free_null_does_nothing_and_keeps_errno)
{
	errno = 77;
	os_free(NULL); /* before the allocator is initialised */
	ck_assert_int_eq(errno, 77);
	void *p = os_malloc(100);
	struct os_mallinfo before, after;
	tst_mallinfo_exact(&before);
	errno = 78;
	for (int i = 0; i < 10; i++)
		os_free(NULL);
	ck_assert_int_eq(errno, 78);
	tst_mallinfo_exact(&after);
	ck_assert_uint_eq(after.free_calls, before.free_calls);
	ck_assert_uint_eq(after.in_use_bytes, before.in_use_bytes);
	ck_assert_int_eq(os_heap_check(), 0);
	os_free(p);
}
END_TEST

START_TEST(test_free_keeps_errno)
{
	void *small = os_malloc(40), *medium = os_malloc(5000),
	     *large = os_malloc(300000);
	ck_assert(small && medium && large);
	errno = 55;
	os_free(small);
	ck_assert_int_eq(errno, 55);
	os_free(medium);
	ck_assert_int_eq(errno, 55);
	os_free(large);
	ck_assert_int_eq(errno, 55);
}
END_TEST

/* ---- alignment and usable size --------------------------------------- */

START_TEST(test_every_size_up_to_4096_is_16_aligned)
{
	enum { MAX = 4096 };
	static void *p[MAX + 1];
	ck_assert_uint_eq(alignof(max_align_t), OSA_ALIGN);
	for (size_t n = 1; n <= MAX; n++) {
		p[n] = os_malloc(n);
		ck_assert_msg(p[n] != NULL, "os_malloc(%zu) failed", n);
		ck_assert_msg((uintptr_t)p[n] % alignof(max_align_t) == 0,
			      "os_malloc(%zu) = %p is not 16-aligned", n, p[n]);
	}
	/* Reused memory is aligned too: free every other one, then again. */
	for (size_t n = 1; n <= MAX; n += 2) {
		os_free(p[n]);
		p[n] = NULL;
	}
	for (size_t n = MAX; n >= 1; n--) {
		if (p[n])
			continue;
		p[n] = os_malloc(n);
		ck_assert_msg(p[n] && (uintptr_t)p[n] % 16 == 0,
			      "reused os_malloc(%zu) = %p", n, p[n]);
	}
	for (size_t n = 1; n <= MAX; n++)
		os_free(p[n]);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_edge_sizes_are_aligned_and_usable)
{
	void *p[N_EDGE];
	for (size_t i = 0; i < N_EDGE; i++) {
		size_t n = edge_sizes[i];
		p[i] = os_malloc(n);
		ck_assert_msg(p[i] != NULL, "os_malloc(%zu) failed", n);
		ck_assert_msg((uintptr_t)p[i] % 16 == 0,
			      "os_malloc(%zu) = %p not aligned", n, p[i]);
		size_t u = os_malloc_usable_size(p[i]);
		ck_assert_msg(u >= n, "usable size %zu < %zu", u, n);
		/* All of the usable size may be written. */
		tst_fill(p[i], u, i);
	}
	for (size_t i = 0; i < N_EDGE; i++) {
		size_t u = os_malloc_usable_size(p[i]), bad = 0;
		ck_assert_msg(tst_verify(p[i], u, i, &bad),
			      "block of %zu bytes damaged at offset %zu",
			      edge_sizes[i], bad);
	}
	ck_assert_int_eq(os_heap_check(), 0);
	for (size_t i = 0; i < N_EDGE; i++)
		os_free(p[i]);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_usable_size_of_null_is_zero)
{
	ck_assert_uint_eq(os_malloc_usable_size(NULL), 0);
}
END_TEST

START_TEST(test_usable_size_is_at_least_requested_and_bounded)
{
	for (size_t n = 1; n < 3000; n += 7) {
		void *p = os_malloc(n);
		size_t u = os_malloc_usable_size(p);
		ck_assert_msg(u >= n && u < n + 64,
			      "usable %zu for a request of %zu", u, n);
		os_free(p);
	}
	/* An mmap'd block: at least the request, within one page more. */
	void *p = os_malloc(200000);
	size_t u = os_malloc_usable_size(p);
	ck_assert_uint_ge(u, 200000);
	ck_assert_uint_lt(u, 200000 + 4096 + 16);
	os_free(p);
}
END_TEST

START_TEST(test_aligned_alloc_honours_alignment)
{
	static const size_t aligns[] = {1,   2,    4,    8,    16,   32,
					64,  128,  256,  512,  1024, 4096,
					8192, 65536, 1u << 20};
	static const size_t sizes[] = {1, 24, 100, 1000, 5000, 70000, 300000};
	for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++)
		for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
			size_t al = aligns[a], n = sizes[s];
			void *p = os_aligned_alloc(al, n);
			ck_assert_msg(p != NULL, "aligned_alloc(%zu, %zu)", al,
				      n);
			size_t want = al < 16 ? 16 : al;
			ck_assert_msg((uintptr_t)p % want == 0,
				      "aligned_alloc(%zu, %zu) = %p", al, n, p);
			ck_assert_uint_ge(os_malloc_usable_size(p), n);
			tst_fill(p, n, al + n);
			void *q = NULL;
			int rc = os_posix_memalign(&q, al < 8 ? 8 : al, n);
			ck_assert_int_eq(rc, 0);
			ck_assert_msg((uintptr_t)q % want == 0,
				      "posix_memalign(%zu, %zu) = %p", al, n,
				      q);
			ck_assert(tst_verify(p, n, al + n, NULL));
			os_free(p);
			os_free(q);
		}
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* ---- content integrity ----------------------------------------------- */

struct slot {
	unsigned char *p;
	size_t n;
	uint64_t seed;
};

/* Sizes mostly small, some medium, a few above the mmap threshold. */
static size_t random_size(uint64_t *rng)
{
	uint64_t r = tst_rand(rng) % 1000;
	if (r < 700)
		return tst_rand_range(rng, 1, 512);
	if (r < 950)
		return tst_rand_range(rng, 513, 16384);
	if (r < 995)
		return tst_rand_range(rng, 16385, 131071);
	return tst_rand_range(rng, 131072, 600000);
}

static int cmp_slot(const void *a, const void *b)
{
	const struct slot *x = a, *y = b;
	return x->p < y->p ? -1 : x->p > y->p;
}

/* No two live blocks overlap (their usable ranges included). */
static void assert_no_overlap(struct slot *s, size_t n)
{
	struct slot *v = malloc(n * sizeof *v);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (s[i].p)
			v[k++] = s[i];
	qsort(v, k, sizeof *v, cmp_slot);
	for (size_t i = 1; i < k; i++) {
		size_t u = os_malloc_usable_size(v[i - 1].p);
		ck_assert_msg(v[i - 1].p + u <= v[i].p,
			      "blocks %p (+%zu usable) and %p overlap",
			      (void *)v[i - 1].p, u, (void *)v[i].p);
	}
	free(v);
}

START_TEST(test_contents_survive_many_allocations)
{
	enum { SLOTS = 4000, ROUNDS = 60000 };
	static struct slot s[SLOTS];
	uint64_t rng = 0x1234567;
	uint64_t seed = 1;
	for (int r = 0; r < ROUNDS; r++) {
		struct slot *x = &s[tst_rand(&rng) % SLOTS];
		if (x->p) {
			size_t bad = 0;
			ck_assert_msg(tst_verify(x->p, x->n, x->seed, &bad),
				      "round %d: block %p of %zu bytes "
				      "damaged at offset %zu",
				      r, (void *)x->p, x->n, bad);
			os_free(x->p);
			x->p = NULL;
			continue;
		}
		x->n = random_size(&rng);
		x->p = os_malloc(x->n);
		ck_assert_msg(x->p != NULL, "os_malloc(%zu) failed", x->n);
		ck_assert((uintptr_t)x->p % 16 == 0);
		x->seed = seed++;
		tst_fill(x->p, x->n, x->seed);
	}
	assert_no_overlap(s, SLOTS);
	for (size_t i = 0; i < SLOTS; i++)
		if (s[i].p)
			ck_assert_msg(tst_verify(s[i].p, s[i].n, s[i].seed, NULL),
				      "block %zu damaged at the end", i);
	ck_assert_int_eq(os_heap_check(), 0);
	for (size_t i = 0; i < SLOTS; i++)
		os_free(s[i].p);
	ck_assert_int_eq(os_heap_check(), 0);

	/* Everything given back: nothing in use but the thread cache. */
	struct os_mallinfo m;
	tst_mallinfo_exact(&m);
	ck_assert_uint_eq(m.mmap_count, 0);
	ck_assert_uint_le(m.in_use_bytes, sizeof(struct osa_tcache) + 64);
}
END_TEST

START_TEST(test_blocks_freed_in_any_order_keep_neighbours_intact)
{
	enum { N = 3000 };
	static struct slot s[N];
	uint64_t rng = 99;
	for (size_t i = 0; i < N; i++) {
		s[i].n = tst_rand_range(&rng, 1, 3000);
		s[i].p = os_malloc(s[i].n);
		ck_assert_ptr_nonnull(s[i].p);
		s[i].seed = i + 1000;
		tst_fill(s[i].p, s[i].n, s[i].seed);
	}
	/* Free in a shuffled order, verifying every survivor each 500. */
	size_t order[N];
	for (size_t i = 0; i < N; i++)
		order[i] = i;
	for (size_t i = N - 1; i > 0; i--) {
		size_t j = tst_rand(&rng) % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (size_t k = 0; k < N; k++) {
		struct slot *x = &s[order[k]];
		os_free(x->p);
		x->p = NULL;
		if (k % 500 != 0)
			continue;
		for (size_t i = 0; i < N; i++)
			if (s[i].p)
				ck_assert_msg(tst_verify(s[i].p, s[i].n,
							 s[i].seed, NULL),
					      "block %zu damaged after %zu frees",
					      i, k + 1);
		ck_assert_int_eq(os_heap_check(), 0);
	}
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_distinct_live_pointers)
{
	enum { N = 20000 };
	static struct slot s[N];
	for (size_t i = 0; i < N; i++) {
		s[i].n = 1 + i % 200;
		s[i].p = os_malloc(s[i].n);
		ck_assert_ptr_nonnull(s[i].p);
	}
	assert_no_overlap(s, N);
	for (size_t i = 0; i < N; i++)
		os_free(s[i].p);
}
END_TEST

START_TEST(test_large_blocks_hold_their_contents)
{
	static const size_t sizes[] = {131072, 131073, 200000, 1 << 20,
				       (1 << 20) + 1, 5 << 20};
	void *p[6];
	for (size_t i = 0; i < 6; i++) {
		p[i] = os_malloc(sizes[i]);
		ck_assert_ptr_nonnull(p[i]);
		ck_assert((uintptr_t)p[i] % 16 == 0);
		tst_fill(p[i], sizes[i], 777 + i);
	}
	for (size_t i = 0; i < 6; i++) {
		size_t bad = 0;
		ck_assert_msg(tst_verify(p[i], sizes[i], 777 + i, &bad),
			      "large block %zu damaged at %zu", i, bad);
	}
	struct os_mallinfo m;
	os_mallinfo(&m);
	ck_assert_uint_eq(m.mmap_count, 6);
	for (size_t i = 0; i < 6; i++)
		os_free(p[i]);
	os_mallinfo(&m);
	ck_assert_uint_eq(m.mmap_count, 0);
	ck_assert_uint_eq(m.mmap_bytes, 0);
}
END_TEST

/* ---- sizes that cannot be served ------------------------------------- */

struct snapshot {
	struct os_mallinfo info;
	struct tst_sys sys;
	long maps;
};

static void take(struct snapshot *s)
{
	tst_mallinfo_exact(&s->info);
	tst_sys_snapshot(&s->sys);
	s->maps = tst_maps_count();
}

/* Nothing the allocator owns changed between a and b. */
static void assert_untouched(const struct snapshot *a, const struct snapshot *b,
			     const char *what)
{
	ck_assert_msg(a->info.heap_bytes == b->info.heap_bytes &&
			  a->info.heap_segments == b->info.heap_segments &&
			  a->info.heap_free_bytes == b->info.heap_free_bytes &&
			  a->info.cached_bytes == b->info.cached_bytes &&
			  a->info.in_use_bytes == b->info.in_use_bytes &&
			  a->info.mmap_count == b->info.mmap_count &&
			  a->info.mmap_bytes == b->info.mmap_bytes &&
			  a->info.peak_in_use_bytes ==
			      b->info.peak_in_use_bytes &&
			  a->info.alloc_calls == b->info.alloc_calls &&
			  a->info.free_calls == b->info.free_calls,
		      "%s changed the statistics", what);
	ck_assert_msg(a->sys.sbrk == b->sys.sbrk && a->sys.mmap == b->sys.mmap &&
			  a->sys.munmap == b->sys.munmap &&
			  a->sys.mremap == b->sys.mremap,
		      "%s made a system call (sbrk %lu->%lu, mmap %lu->%lu)",
		      what, a->sys.sbrk, b->sys.sbrk, a->sys.mmap,
		      b->sys.mmap);
	ck_assert_msg(a->sys.brk == b->sys.brk, "%s moved the break", what);
	ck_assert_msg(a->maps == b->maps, "%s changed the mappings (%ld->%ld)",
		      what, a->maps, b->maps);
}

/* A live block of each kind whose contents must not change. */
struct witnesses {
	void *p[3];
};
static const size_t witness_size[3] = {48, 6000, 250000};

static void witnesses_make(struct witnesses *w)
{
	for (int i = 0; i < 3; i++) {
		w->p[i] = os_malloc(witness_size[i]);
		ck_assert_ptr_nonnull(w->p[i]);
		tst_fill(w->p[i], witness_size[i], 31 + i);
	}
}

static void witnesses_check_free(struct witnesses *w)
{
	for (int i = 0; i < 3; i++) {
		ck_assert(tst_verify(w->p[i], witness_size[i], 31 + i, NULL));
		os_free(w->p[i]);
	}
	ck_assert_int_eq(os_heap_check(), 0);
}

START_TEST(test_impossible_malloc_sizes_fail_with_enomem_touching_nothing)
{
	static const size_t sizes[] = {
		SIZE_MAX,
		SIZE_MAX - 1,
		SIZE_MAX - 15,
		SIZE_MAX - 4096,
		SIZE_MAX - 16384,
		(size_t)PTRDIFF_MAX + 1,
		(size_t)PTRDIFF_MAX + 4096,
		(size_t)PTRDIFF_MAX,
		(size_t)PTRDIFF_MAX - 15,
		(size_t)0xfffc000000000000ULL, /* top bits set */
	};
	struct witnesses w;
	witnesses_make(&w);
	struct snapshot a, b;
	take(&a);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		errno = 0;
		void *p = os_malloc(tst_opaque(sizes[i]));
		ck_assert_msg(p == NULL, "os_malloc(%zu) returned %p", sizes[i],
			      p);
		ck_assert_msg(errno == ENOMEM, "os_malloc(%zu): errno %d",
			      sizes[i], errno);
	}
	take(&b);
	assert_untouched(&a, &b, "os_malloc of an impossible size");
	witnesses_check_free(&w);
}
END_TEST

START_TEST(test_calloc_overflow_fails_with_enomem_touching_nothing)
{
	static const size_t cases[][2] = {
		{SIZE_MAX / 2 + 1, 2},
		{2, SIZE_MAX / 2 + 1},
		{(size_t)1 << 32, (size_t)1 << 32},
		{1, SIZE_MAX},
		{SIZE_MAX, 1},
		{SIZE_MAX, SIZE_MAX},
		{65537, (SIZE_MAX / 65537) + 1},
		{(size_t)PTRDIFF_MAX / 8 + 1, 8}, /* no overflow, > PTRDIFF_MAX */
	};
	struct witnesses w;
	witnesses_make(&w);
	struct snapshot a, b;
	take(&a);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		errno = 0;
		void *p = os_calloc(tst_opaque(cases[i][0]),
				    tst_opaque(cases[i][1]));
		ck_assert_msg(p == NULL, "os_calloc(%zu, %zu) returned %p",
			      cases[i][0], cases[i][1], p);
		ck_assert_msg(errno == ENOMEM, "os_calloc(%zu, %zu): errno %d",
			      cases[i][0], cases[i][1], errno);
	}
	take(&b);
	assert_untouched(&a, &b, "os_calloc with an overflowing product");
	witnesses_check_free(&w);
}
END_TEST

START_TEST(test_reallocarray_overflow_fails_and_keeps_the_block)
{
	unsigned char *p = os_malloc(100);
	tst_fill(p, 100, 5);
	struct snapshot a, b;
	take(&a);
	errno = 0;
	ck_assert_ptr_null(os_reallocarray(p, tst_opaque(SIZE_MAX / 2 + 1), 2));
	ck_assert_int_eq(errno, ENOMEM);
	errno = 0;
	ck_assert_ptr_null(os_reallocarray(NULL, tst_opaque((size_t)1 << 32),
					   tst_opaque((size_t)1 << 32)));
	ck_assert_int_eq(errno, ENOMEM);
	take(&b);
	assert_untouched(&a, &b, "os_reallocarray with an overflow");
	ck_assert(tst_verify(p, 100, 5, NULL));
	os_free(p);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

START_TEST(test_request_refused_by_the_system_fails_with_enomem)
{
	/* Below PTRDIFF_MAX, so the system is asked, and refuses: 2^46 and
	 * 2^62 bytes are more than this address space holds. */
	static const size_t sizes[] = {(size_t)1 << 62, (size_t)1 << 50,
				       (size_t)1 << 47};
	struct witnesses w;
	witnesses_make(&w);
	struct os_mallinfo before, after;
	tst_mallinfo_exact(&before);
	long maps = tst_maps_count();
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		errno = 0;
		void *p = os_malloc(tst_opaque(sizes[i]));
		ck_assert_msg(p == NULL && errno == ENOMEM,
			      "os_malloc(%zu) = %p, errno %d", sizes[i], p,
			      errno);
	}
	tst_mallinfo_exact(&after);
	ck_assert_uint_eq(after.in_use_bytes, before.in_use_bytes);
	ck_assert_uint_eq(after.mmap_count, before.mmap_count);
	ck_assert_uint_eq(after.alloc_calls, before.alloc_calls);
	ck_assert_int_eq(tst_maps_count(), maps);
	witnesses_check_free(&w);
	/* Still usable. */
	void *p = os_malloc(1000);
	ck_assert_ptr_nonnull(p);
	os_free(p);
}
END_TEST

/* ---- OSALLOC_OPTIONS and errno at the first call ---- */

/* osalloc(7): a bad value gets one warning line and keeps the default.
 * Values beyond a switch's maximum of 1 or 2 were taken as on, silently. */
static int bad_option_child(void *arg)
{
	const char *opt = arg;
	setenv("OSALLOC_OPTIONS", opt, 1);
	void *p = os_malloc(1);
	TST_CHILD_REQUIRE(p != NULL, "os_malloc");
	TST_CHILD_REQUIRE(!osa_opt.zero && !osa_opt.junk && osa_opt.check == 1 &&
				  osa_opt.cache == -1 && !osa_opt.stats &&
				  osa_opt.thp,
			  "%s changed a setting", opt);
	os_free(p);
	return TST_CHILD_OK;
}

START_TEST(test_an_option_value_above_its_maximum_is_refused)
{
	static const char *bad[] = {"zero=7",  "zero=10", "junk=5", "check=3",
				    "check=9", "cache=3", "stats=4", "thp=8"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct tst_child c;
		char want[96];
		tst_run_child(bad_option_child, (void *)bad[i], 30, &c);
		TST_ASSERT_CHILD_OK(&c);
		snprintf(want, sizeof want,
			 "osalloc: OSALLOC_OPTIONS: bad value, default kept: "
			 "'%s'\n",
			 bad[i]);
		ck_assert_msg(strstr(c.err, want) != NULL,
			      "no warning for %s; stderr: %s", bad[i], c.err);
		tst_child_release(&c);
	}
}
END_TEST

/* The first call initialises the library; what that tries (a duplicate of
 * stderr for stats=1 above descriptor 100, refused under RLIMIT_NOFILE of
 * 64) must not show in errno after a success. */
static int init_errno_child(void *unused)
{
	(void)unused;
	setenv("OSALLOC_OPTIONS", "stats=1", 1);
	struct rlimit rl = {64, 64};
	TST_CHILD_REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit");
	errno = EDOM;
	void *p = os_malloc(10);
	int e = errno;
	TST_CHILD_REQUIRE(p != NULL, "os_malloc");
	TST_CHILD_REQUIRE(e == EDOM, "errno %d (%s) after the first os_malloc",
			  e, strerror(e));
	os_free(p);
	return TST_CHILD_OK;
}

START_TEST(test_the_first_call_keeps_errno)
{
	TST_SKIP_UNDER_VALGRIND("valgrind keeps RLIMIT_NOFILE for itself");
	struct tst_child c;
	tst_run_child(init_errno_child, NULL, 30, &c);
	TST_ASSERT_CHILD_OK(&c);
	tst_child_release(&c);
}
END_TEST

/* A thread's first allocation creates its cache, a heap block of its own.
 * When the heap has no room for it, the request is served without a cache,
 * and the success keeps errno.  The heap is filled with aligned blocks
 * (which create no cache) under RLIMIT_DATA, then one is freed. */
/* VmData of /proc/self/status, in KiB. */
static long vmdata_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "VmData:", 7) == 0)
			kib = atol(line + 7);
	if (f)
		fclose(f);
	return kib;
}

static int cache_errno_child(void *unused)
{
	(void)unused;
	enum { MAX = 100000 };
	static void *p[MAX];
	size_t n = 0;
	void *first = os_aligned_alloc(32, 100); /* initialised, no cache */
	TST_CHILD_REQUIRE(first != NULL, "os_aligned_alloc");
	TST_CHILD_REQUIRE(osa_tcache_self == NULL, "a cache exists already");
	struct rlimit rl;
	TST_CHILD_REQUIRE(getrlimit(RLIMIT_DATA, &rl) == 0, "getrlimit");
	rl.rlim_cur = (rlim_t)vmdata_kib() * 1024 + 64 * 1024;
	TST_CHILD_REQUIRE(setrlimit(RLIMIT_DATA, &rl) == 0, "setrlimit");
	while (n < MAX && (p[n] = os_aligned_alloc(32, 2000)) != NULL)
		n++;
	while (n < MAX && (p[n] = os_aligned_alloc(32, 16)) != NULL)
		n++;
	TST_CHILD_REQUIRE(n > 0 && n < MAX, "%zu blocks", n);
	os_free(p[--n]);
	errno = EDOM;
	void *q = os_malloc(16);
	int e = errno;
	TST_CHILD_REQUIRE(q != NULL, "os_malloc(16) after a free");
	TST_CHILD_REQUIRE(osa_tcache_self == NULL, "a cache was made after all");
	TST_CHILD_REQUIRE(e == EDOM, "errno %d (%s) after a successful os_malloc",
			  e, strerror(e));
	return TST_CHILD_OK;
}

START_TEST(test_a_first_allocation_without_room_for_a_cache_keeps_errno)
{
	if (RELIABLE_SANITIZED || tst_under_valgrind())
		return; /* RLIMIT_DATA: no room for the sanitizer's shadow */
	struct tst_child c;
	tst_run_child(cache_errno_child, NULL, 60, &c);
	TST_ASSERT_CHILD_OK(&c);
	tst_child_release(&c);
}
END_TEST

/* OSALLOC_OPTIONS is ignored in a set-user-ID program (AT_SECURE), which
 * whoever runs it must not be able to steer.  The probe says whether it
 * runs with AT_SECURE and whether mmap_threshold=4096 took effect. */
static int scenario_options_probe(void)
{
	void *p = os_malloc(8192);
	struct os_mallinfo m;
	os_mallinfo(&m);
	printf("secure=%lu mapped=%zu\n", getauxval(AT_SECURE), m.mmap_count);
	os_free(p);
	/* Without exit handlers: LeakSanitizer's cannot work in a process
	 * of another user (nor read its options there). */
	fflush(stdout);
	_exit(p ? TST_CHILD_OK : TST_CHILD_FAILED);
}

static const struct tst_scenario scenarios[] = {
	{"options_probe", scenario_options_probe},
	{NULL, NULL},
};

/* Runs the probe in `exe` with mmap_threshold=4096: "secure=S mapped=M",
 * or what went wrong, in out[]. */
static void run_probe(const char *exe, char *out, size_t len)
{
	char *argv[] = {(char *)exe, (char *)"--scenario",
			(char *)"options_probe", NULL};
	char *env[] = {(char *)"OSALLOC_OPTIONS=mmap_threshold=4096", NULL};
	struct tst_child c;
	tst_run_program(argv, env, 30, &c);
	if (c.exit_code == TST_CHILD_OK && c.out)
		snprintf(out, len, "%s", c.out);
	else
		snprintf(out, len, "probe: %s; stderr: %s",
			 tst_child_describe(&c), c.err ? c.err : "");
	tst_child_release(&c);
}

START_TEST(test_options_are_ignored_in_a_set_user_id_program)
{
	if (geteuid() != 0 || tst_under_valgrind()) {
		fprintf(stderr, "set-user-ID case skipped: needs root, not "
				"valgrind\n");
		return;
	}
	/* A copy of this program owned by nobody, run plain and then
	 * set-user-ID; removed before anything is asserted. */
	char dir[] = "/tmp/osalloc-suid.XXXXXX", exe[64], cmd[256];
	char plain[512] = "not run", suid[512] = "not run";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(exe, sizeof exe, "%s/probe", dir);
	snprintf(cmd, sizeof cmd, "cp /proc/%ld/exe %s", (long)getpid(), exe);
	if (chmod(dir, 0755) == 0 && system(cmd) == 0 &&
	    chown(exe, 65534, 65534) == 0 && chmod(exe, 0755) == 0) {
		run_probe(exe, plain, sizeof plain);
		if (chmod(exe, 04755) == 0)
			run_probe(exe, suid, sizeof suid);
	}
	unlink(exe);
	ck_assert_int_eq(rmdir(dir), 0);
	unsigned long secure;
	size_t mapped;
	ck_assert_msg(sscanf(plain, "secure=%lu mapped=%zu", &secure,
			     &mapped) == 2, "plain copy: %s", plain);
	ck_assert_uint_eq(secure, 0);
	ck_assert_uint_eq(mapped, 1); /* the option works in a plain program */
	ck_assert_msg(sscanf(suid, "secure=%lu mapped=%zu", &secure,
			     &mapped) == 2, "set-user-ID copy: %s", suid);
	if (!secure) { /* nosuid mount, fakeroot, a sandbox */
		fprintf(stderr, "set-user-ID case skipped: the copy did not "
				"run set-user-ID here\n");
		return;
	}
	ck_assert_uint_eq(mapped, 0);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("malloc");
	TCase *tc = tcase_create("size0");
	tcase_add_test(tc, test_malloc_zero_returns_null_and_keeps_errno);
	tcase_add_test(tc, test_malloc_zero_allocates_nothing);
	tcase_add_test(tc, test_free_null_does_nothing_and_keeps_errno);
	tcase_add_test(tc, test_free_keeps_errno);
	suite_add_tcase(s, tc);

	tc = tcase_create("alignment");
	tcase_add_test(tc, test_every_size_up_to_4096_is_16_aligned);
	tcase_add_test(tc, test_edge_sizes_are_aligned_and_usable);
	tcase_add_test(tc, test_usable_size_of_null_is_zero);
	tcase_add_test(tc, test_usable_size_is_at_least_requested_and_bounded);
	tcase_add_test(tc, test_aligned_alloc_honours_alignment);
	suite_add_tcase(s, tc);

	tc = tcase_create("integrity");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_contents_survive_many_allocations);
	tcase_add_test(tc, test_blocks_freed_in_any_order_keep_neighbours_intact);
	tcase_add_test(tc, test_distinct_live_pointers);
	tcase_add_test(tc, test_large_blocks_hold_their_contents);
	suite_add_tcase(s, tc);

	tc = tcase_create("enomem");
	tcase_add_test(tc,
		       test_impossible_malloc_sizes_fail_with_enomem_touching_nothing);
	tcase_add_test(tc, test_calloc_overflow_fails_with_enomem_touching_nothing);
	tcase_add_test(tc, test_reallocarray_overflow_fails_and_keeps_the_block);
	tcase_add_test(tc, test_request_refused_by_the_system_fails_with_enomem);
	tcase_add_test(tc,
		       test_a_first_allocation_without_room_for_a_cache_keeps_errno);
	suite_add_tcase(s, tc);

	tc = tcase_create("options");
	tcase_add_test(tc, test_an_option_value_above_its_maximum_is_refused);
	tcase_add_test(tc, test_the_first_call_keeps_errno);
	tcase_add_test(tc, test_options_are_ignored_in_a_set_user_id_program);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	return tst_main(argc, argv, make_suite, scenarios);
}
