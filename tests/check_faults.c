/* check_faults.c - failing system calls (TESTING.md, fault plan F01-F11).
 *
 * Real failures: RLIMIT_DATA and RLIMIT_AS lowered in forked children (also
 * with 8 threads), the break obstructed by a mapping, the break moved by
 * someone else.  Injected failures: osa_sys_fail_nth() makes the k-th
 * sbrk/mmap/munmap/mremap call fail; the sweep runs a scripted workload
 * once per k until a run reaches no injected failure.  After every failure:
 * NULL with ENOMEM and nothing on stderr, every live block byte-identical,
 * os_heap_check() == 0, the allocator usable afterwards and nothing leaked.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "osalloc.h"
#include "reliable.h"

enum {
	KiB = 1024,
	MiB = 1024 * 1024,
	THRESHOLD = 128 * KiB,
	CHILD_TIMEOUT = 60,
	CHILD_OK_NULL = 4, /* a run whose operation returned NULL */
};

/* ---- content tags: full for small blocks, sampled for big ones ---- */

static uint64_t word_for(uint64_t tag, size_t i)
{
	return (tag * 0x9e3779b97f4a7c15ULL) ^ (i * 0xbf58476d1ce4e5b9ULL);
}

static void tag_at(unsigned char *p, size_t i, uint64_t tag)
{
	p[i] = (unsigned char)(word_for(tag, i) >> 56);
}

static bool tag_ok_at(const unsigned char *p, size_t i, uint64_t tag)
{
	return p[i] == (unsigned char)(word_for(tag, i) >> 56);
}

/* Positions tagged: every byte of the first 16 KiB, the first 64 bytes
 * of every later 16 KiB (the same positions whatever the block size, so
 * that a prefix can be checked after realloc), and the block's last 64
 * bytes. */
enum { TAG_STRIDE = 16 * KiB };
static bool tagged(size_t i)
{
	return i < TAG_STRIDE || (i & (TAG_STRIDE - 1)) < 64;
}

/* The next position after i that is tagged in a block of n bytes. */
static size_t next_tagged(size_t i, size_t n)
{
	size_t j = i + 1;
	if (tagged(j) || j + 64 >= n)
		return j;
	size_t next = (j & ~(size_t)(TAG_STRIDE - 1)) + TAG_STRIDE;
	return next < n - 64 ? next : n - 64;
}

static void tag_fill(void *p, size_t n, uint64_t tag)
{
	for (size_t i = 0; i < n; i = next_tagged(i, n))
		tag_at(p, i, tag);
}

/* The tagged positions of [0, n), the last 64 bytes included. */
static bool tag_check(const void *p, size_t n, uint64_t tag)
{
	for (size_t i = 0; i < n; i = next_tagged(i, n))
		if (!tag_ok_at(p, i, tag))
			return false;
	return true;
}

/* Only positions tagged whatever the block size: a prefix of a bigger
 * tagged block. */
static bool tag_check_prefix(const void *p, size_t n, uint64_t tag)
{
	for (size_t i = 0; i < n; i++) {
		if (!tagged(i)) {
			i = (i & ~(size_t)(TAG_STRIDE - 1)) + TAG_STRIDE - 1;
			continue;
		}
		if (!tag_ok_at(p, i, tag))
			return false;
	}
	return true;
}

/* Zero everywhere in heap-sized blocks; at the tagged positions beyond
 * (fresh mappings, not worth reading page by page). */
static bool all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i = i < THRESHOLD ? i + 1 : next_tagged(i, n))
		if (c[i])
			return false;
	return true;
}

/* ---- process limits ---- */

static size_t status_kib(const char *field)
{
	char buf[4096];
	FILE *f = fopen("/proc/self/status", "r");
	size_t kib = 0, len = strlen(field);
	if (!f)
		return 0;
	while (fgets(buf, sizeof buf, f))
		if (strncmp(buf, field, len) == 0 && buf[len] == ':')
			kib = strtoul(buf + len + 1, NULL, 10);
	fclose(f);
	return kib;
}

/* Lowers the soft limit to what is in use now plus `headroom`. */
static void limit_to_usage(int resource, const char *field, size_t headroom)
{
	struct rlimit rl;
	CHILD_REQUIRE(getrlimit(resource, &rl) == 0, "getrlimit");
	rl.rlim_cur = status_kib(field) * KiB + headroom;
	CHILD_REQUIRE(setrlimit(resource, &rl) == 0, "setrlimit: %s",
	              strerror(errno));
}

static void unlimit(int resource)
{
	struct rlimit rl;
	CHILD_REQUIRE(getrlimit(resource, &rl) == 0, "getrlimit");
	rl.rlim_cur = rl.rlim_max;
	CHILD_REQUIRE(setrlimit(resource, &rl) == 0, "setrlimit");
}

static bool limits_testable(void)
{
	return !RELIABLE_SANITIZED && !under_valgrind();
}

/* Runs fn in a child and asserts exit 0 with nothing on stderr. */
static void expect_child_ok(int (*fn)(void *), void *arg, const char *what)
{
	struct child_result r;
	char st[64];
	run_forked(fn, arg, CHILD_TIMEOUT, &r);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
	              "%s: %s; stderr: %s", what,
	              describe_status(r.status, st, sizeof st), r.err);
	ck_assert_msg(r.err_len == 0, "%s: unexpected output: %s", what, r.err);
}

static size_t in_use_now(void)
{
	struct os_mallinfo m;
	osa_tcache_flush_self();
	os_mallinfo(&m);
	return m.in_use_bytes;
}

/* A mixed allocation that must now succeed (after limits are raised). */
static void allocate_freely(size_t total)
{
	static const size_t sizes[] = {16, 144, 1000, 4096, 70000, 300000};
	void *keep[4096];
	size_t n = 0, got = 0;
	while (got < total && n < 4096) {
		size_t s = sizes[n % 6];
		keep[n] = os_malloc(s);
		CHILD_REQUIRE(keep[n] != NULL, "os_malloc(%zu) after the limit",
		              s);
		tag_fill(keep[n], s, n);
		got += s;
		n++;
	}
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	for (size_t i = 0; i < n; i++) {
		CHILD_REQUIRE(tag_check(keep[i], sizes[i % 6], i), "contents");
		os_free(keep[i]);
	}
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
}

/* ---- F01 / F10: RLIMIT_DATA, each API x size, allocate until NULL ---- */

enum api {
	API_MALLOC,
	API_CALLOC,
	API_REALLOC,
	API_ALIGNED,
	API_MEMALIGN,
	API_N
};
static const char *const api_name[] = {"os_malloc", "os_calloc", "os_realloc",
                                       "os_aligned_alloc", "os_posix_memalign"};
static const size_t f01_sizes[][2] = {
    {144, 16}, {4096, 16}, {512, 128}, {4096, 128}, {17 * 4096, 16}};

/* One allocation through `api`; NULL with *err the error number. */
static void *api_alloc(enum api api, size_t size, size_t align, int *err)
{
	void *p = NULL;
	errno = 0;
	switch (api) {
	case API_MALLOC:
		p = os_malloc(size);
		break;
	case API_CALLOC:
		p = os_calloc(1, size);
		break;
	case API_REALLOC: {
		/* Grow a 16-byte block; a failure must leave it intact. */
		unsigned char *old = os_malloc(16);
		if (!old)
			break;
		memset(old, 0xab, 16);
		p = os_realloc(old, size);
		if (!p) {
			int e = errno;
			for (int i = 0; i < 16; i++)
				CHILD_REQUIRE(
				    old[i] == 0xab,
				    "failed realloc changed the block");
			os_free(old);
			errno = e;
		} else {
			for (int i = 0; i < 16; i++)
				CHILD_REQUIRE(((unsigned char *)p)[i] == 0xab,
				              "realloc lost the contents");
		}
		break;
	}
	case API_ALIGNED:
		p = os_aligned_alloc(align, size);
		break;
	case API_MEMALIGN: {
		void *m = &m;
		int rc = os_posix_memalign(&m, align, size);
		if (rc) {
			CHILD_REQUIRE(m == &m, "posix_memalign set *memptr");
			*err = rc;
			return NULL;
		}
		p = m;
		break;
	}
	default:
		break;
	}
	*err = errno;
	return p;
}

enum { MAX_BLOCKS = 400000 };
static void *blocks[MAX_BLOCKS];

/* Allocates until NULL; returns the count. */
static size_t fill_until_null(enum api api, size_t size, size_t align,
                              uint64_t round)
{
	size_t n = 0;
	for (; n < MAX_BLOCKS; n++) {
		int err;
		unsigned char *p = api_alloc(api, size, align, &err);
		if (!p) {
			CHILD_REQUIRE(err == ENOMEM,
			              "%s(%zu): NULL with error %d, not ENOMEM",
			              api_name[api], size, err);
			break;
		}
		size_t want =
		    api == API_ALIGNED || api == API_MEMALIGN ? align : 16;
		CHILD_REQUIRE((uintptr_t)p % want == 0, "%s(%zu): misaligned",
		              api_name[api], size);
		if (api == API_CALLOC)
			CHILD_REQUIRE(all_zero(p, size),
			              "calloc'd block not zero (round %lu)",
			              (unsigned long)round);
		tag_fill(p, size, n * 2 + round);
		blocks[n] = p;
	}
	CHILD_REQUIRE(n < MAX_BLOCKS, "never ran out of memory");
	return n;
}

struct f01_arg {
	enum api api;
	size_t size, align;
};

static int f01_child(void *argp)
{
	const struct f01_arg *a = argp;
	os_free(os_malloc(100)); /* initialised before the limit */
	size_t baseline = in_use_now();
	limit_to_usage(RLIMIT_DATA, "VmData", 24 * MiB);
	size_t first = 0;
	for (uint64_t round = 0; round < 2; round++) {
		size_t n = fill_until_null(a->api, a->size, a->align, round);
		CHILD_REQUIRE(n > 0, "nothing could be allocated");
		if (round == 0)
			first = n;
		else
			CHILD_REQUIRE(n >= first / 2,
			              "round 2 got %zu blocks, round 1 %zu", n,
			              first);
		/* Other sizes now: served or refused cleanly. */
		static const size_t more[] = {16, 5000, 200000};
		for (int i = 0; i < 3; i++) {
			errno = 0;
			void *p = os_malloc(more[i]);
			CHILD_REQUIRE(p || errno == ENOMEM, "os_malloc(%zu)",
			              more[i]);
			os_free(p);
		}
		for (size_t i = 0; i < n; i++)
			CHILD_REQUIRE(
			    tag_check(blocks[i], a->size, i * 2 + round),
			    "block %zu changed", i);
		CHILD_REQUIRE(os_heap_check() == 0, "heap check when full");
		for (size_t i = 0; i < n; i++)
			os_free(blocks[i]);
		CHILD_REQUIRE(os_heap_check() == 0, "heap check after free");
		CHILD_REQUIRE(in_use_now() == baseline,
		              "in use %zu after freeing all, baseline %zu",
		              in_use_now(), baseline);
		/* Freed memory serves a new allocation under the limit. */
		int err;
		void *p = api_alloc(a->api, a->size, a->align, &err);
		CHILD_REQUIRE(p != NULL, "no allocation after freeing all");
		os_free(p);
	}
	unlimit(RLIMIT_DATA);
	allocate_freely(64 * MiB);
	return CHILD_OK;
}

START_TEST(test_rlimit_data_each_api_runs_out_cleanly)
{
	if (!limits_testable())
		return;
	struct f01_arg a;
	a.api = (enum api)(_i / 5);
	a.size = f01_sizes[_i % 5][0];
	a.align = f01_sizes[_i % 5][1];
	char what[128];
	snprintf(what, sizeof what, "RLIMIT_DATA %s size %zu align %zu",
	         api_name[a.api], a.size, a.align);
	expect_child_ok(f01_child, &a, what);
}
END_TEST

/* F06 under a real limit: a realloc that cannot grow keeps the block. */
static int f06_rlimit_child(void *arg)
{
	(void)arg;
	unsigned char *small = os_malloc(100), *medium = os_malloc(5000);
	unsigned char *large = os_malloc(300000);
	CHILD_REQUIRE(small && medium && large, "setup");
	tag_fill(small, 100, 1);
	tag_fill(medium, 5000, 2);
	tag_fill(large, 300000, 3);
	limit_to_usage(RLIMIT_DATA, "VmData", 4 * MiB);
	size_t n = fill_until_null(API_MALLOC, 4096, 16, 7);
	struct {
		unsigned char **p;
		size_t size;
		uint64_t tag;
	} v[] = {{&small, 100, 1}, {&medium, 5000, 2}, {&large, 300000, 3}};
	static const size_t to[] = {60000, 100 * KiB, 8 * MiB, 64 * MiB};
	for (int i = 0; i < 3; i++) {
		for (int j = 0; j < 4; j++) {
			errno = 0;
			void *q = os_realloc(*v[i].p, to[j]);
			if (q) {
				/* Served from what was left: fine. */
				CHILD_REQUIRE(tag_check(q, v[i].size, v[i].tag),
				              "realloc lost the contents");
				*v[i].p = q;
				continue;
			}
			CHILD_REQUIRE(errno == ENOMEM, "errno %d", errno);
			CHILD_REQUIRE(tag_check(*v[i].p, v[i].size, v[i].tag),
			              "failed realloc changed the block");
		}
	}
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	for (size_t i = 0; i < n; i++)
		os_free(blocks[i]);
	os_free(small);
	os_free(medium);
	os_free(large);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	unlimit(RLIMIT_DATA);
	allocate_freely(16 * MiB);
	return CHILD_OK;
}

START_TEST(test_rlimit_data_failed_realloc_keeps_the_block)
{
	if (!limits_testable())
		return;
	expect_child_ok(f06_rlimit_child, NULL, "realloc under RLIMIT_DATA");
}
END_TEST

/* ---- F02 / F11: RLIMIT_AS with 8 threads at a barrier ---- */

enum { F02_THREADS = 8, F02_MAX = 40000 };

struct f02_thread {
	pthread_t t;
	size_t id, n;
	void *p[F02_MAX];
	size_t size[F02_MAX];
};

static struct f02_thread *f02;
static pthread_barrier_t f02_start, f02_filled, f02_freed;

static void *f02_run(void *arg)
{
	struct f02_thread *me = arg;
	static const size_t sizes[] = {144, 4096, 512, 4096, 17 * 4096, 200000};
	pthread_barrier_wait(&f02_start);
	for (me->n = 0; me->n < F02_MAX; me->n++) {
		size_t k = (me->n + me->id) % 6, s = sizes[k];
		void *p;
		int err;
		if (k == 2)
			p = api_alloc(API_ALIGNED, s, 128, &err);
		else if (k == 3)
			p = api_alloc(API_MEMALIGN, s, 128, &err);
		else if (k == 4)
			p = api_alloc(API_CALLOC, s, 16, &err);
		else
			p = api_alloc(API_MALLOC, s, 16, &err);
		if (!p) {
			CHILD_REQUIRE(err == ENOMEM,
			              "thread %zu: NULL with error %d", me->id,
			              err);
			break;
		}
		if (k == 4)
			CHILD_REQUIRE(all_zero(p, s), "calloc not zero");
		tag_fill(p, s, me->id * F02_MAX + me->n);
		me->p[me->n] = p;
		me->size[me->n] = s;
	}
	pthread_barrier_wait(&f02_filled);
	for (size_t i = 0; i < me->n; i++) {
		CHILD_REQUIRE(
		    tag_check(me->p[i], me->size[i], me->id * F02_MAX + i),
		    "thread %zu block %zu changed", me->id, i);
		os_free(me->p[i]);
	}
	pthread_barrier_wait(&f02_freed);
	/* The thread exits under the limit: its cache is flushed without
	 * new memory (F11). */
	return NULL;
}

static int f02_child(void *arg)
{
	(void)arg;
	os_free(os_malloc(100));
	size_t baseline = in_use_now();
	f02 = mmap(NULL, F02_THREADS * sizeof *f02, PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	CHILD_REQUIRE(f02 != MAP_FAILED, "mmap");
	pthread_barrier_init(&f02_start, NULL, F02_THREADS + 1);
	pthread_barrier_init(&f02_filled, NULL, F02_THREADS + 1);
	pthread_barrier_init(&f02_freed, NULL, F02_THREADS + 1);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * KiB);
	for (size_t i = 0; i < F02_THREADS; i++) {
		f02[i].id = i;
		CHILD_REQUIRE(
		    pthread_create(&f02[i].t, &attr, f02_run, &f02[i]) == 0,
		    "pthread_create");
	}
	limit_to_usage(RLIMIT_AS, "VmSize", 96 * MiB);
	pthread_barrier_wait(&f02_start);
	pthread_barrier_wait(&f02_filled);
	size_t total = 0;
	for (size_t i = 0; i < F02_THREADS; i++)
		total += f02[i].n;
	CHILD_REQUIRE(total > 0, "no thread could allocate");
	CHILD_REQUIRE(os_heap_check() == 0, "heap check when full");
	pthread_barrier_wait(&f02_freed);
	for (size_t i = 0; i < F02_THREADS; i++)
		pthread_join(f02[i].t, NULL);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check after the threads");
	CHILD_REQUIRE(in_use_now() == baseline,
	              "in use %zu after the threads, baseline %zu",
	              in_use_now(), baseline);
	unlimit(RLIMIT_AS);
	allocate_freely(64 * MiB);
	return CHILD_OK;
}

START_TEST(test_rlimit_as_with_eight_threads_runs_out_cleanly)
{
	if (!limits_testable())
		return;
	expect_child_ok(f02_child, NULL, "RLIMIT_AS, 8 threads");
}
END_TEST

/* ---- F03: the break obstructed by a mapping ---- */

static void *obstruct_break(void)
{
	uintptr_t brk_now = (uintptr_t)sbrk(0);
	uintptr_t page = (brk_now + 4095) & ~(uintptr_t)4095;
	void *m =
	    mmap((void *)page, 4096, PROT_NONE,
	         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHILD_REQUIRE(m == (void *)page, "could not map at the break");
	return m;
}

static void small_allocations_work(size_t count, uintptr_t avoid_from,
                                   uintptr_t avoid_to)
{
	void **p = mmap(NULL, count * sizeof *p, PROT_READ | PROT_WRITE,
	                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHILD_REQUIRE(p != MAP_FAILED, "mmap");
	for (size_t i = 0; i < count; i++) {
		size_t s = 16 + i % 2000;
		p[i] = os_malloc(s);
		CHILD_REQUIRE(p[i] != NULL, "os_malloc(%zu) #%zu: errno %d", s,
		              i, errno);
		CHILD_REQUIRE((uintptr_t)p[i] + s <= avoid_from ||
		                  (uintptr_t)p[i] >= avoid_to,
		              "block %p overlaps the obstruction", p[i]);
		tag_fill(p[i], s, i);
	}
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	for (size_t i = 0; i < count; i++) {
		CHILD_REQUIRE(tag_check(p[i], 16 + i % 2000, i),
		              "block %zu changed", i);
		os_free(p[i]);
	}
	CHILD_REQUIRE(os_heap_check() == 0, "heap check after free");
	munmap(p, count * sizeof *p);
}

/* Before the first allocation: the heap starts in an mmap'd segment. */
static int f03_fresh_child(void *arg)
{
	(void)arg;
	void *brk_before = sbrk(0);
	unsigned char *m = obstruct_break();
	small_allocations_work(5000, (uintptr_t)m, (uintptr_t)m + 4096);
	CHILD_REQUIRE(sbrk(0) == brk_before, "the break moved");
	struct os_mallinfo info;
	os_mallinfo(&info);
	CHILD_REQUIRE(info.heap_segments >= 1, "no segment");
	return CHILD_OK;
}

/* With a brk segment in use: growth continues in a new segment. */
static int f03_grown_child(void *arg)
{
	(void)arg;
	void *first = os_malloc(1000);
	CHILD_REQUIRE(first != NULL, "first allocation");
	tag_fill(first, 1000, 99);
	struct os_mallinfo before, after;
	os_mallinfo(&before);
	void *brk_before = sbrk(0);
	unsigned char *m = obstruct_break();
	small_allocations_work(5000, (uintptr_t)m, (uintptr_t)m + 4096);
	CHILD_REQUIRE(sbrk(0) == brk_before, "the break moved");
	os_mallinfo(&after);
	CHILD_REQUIRE(after.heap_segments > before.heap_segments,
	              "no new segment (%zu -> %zu)", before.heap_segments,
	              after.heap_segments);
	CHILD_REQUIRE(tag_check(first, 1000, 99), "first block changed");
	os_free(first);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return CHILD_OK;
}

/* The break obstructed and address space short (RLIMIT_AS): when a 1 MiB
 * mapping does not fit, the heap maps what it needs (it used to fail). */
static size_t address_space_now(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;
	if (f) {
		if (fscanf(f, "%lu", &pages) != 1)
			pages = 0;
		fclose(f);
	}
	return pages * 4096;
}

static int f03_tight_child(void *arg)
{
	(void)arg;
	enum { SIZE = 100 * KiB, N = 64 };
	static void *p[N];
	void *first = os_malloc(100);
	CHILD_REQUIRE(first != NULL, "first allocation");
	obstruct_break();
	struct os_mallinfo before, after;
	os_mallinfo(&before);
	size_t n = 0;
	/* Into a mapped segment (and its part of the block-start map). */
	do {
		CHILD_REQUIRE(n < N / 2, "no mapped segment");
		CHILD_REQUIRE((p[n] = os_malloc(SIZE)) != NULL, "os_malloc");
		tag_fill(p[n], SIZE, n);
		os_mallinfo(&after);
		n++;
	} while (after.heap_segments == before.heap_segments);
	size_t vm = address_space_now();
	CHILD_REQUIRE(vm > 0, "/proc/self/statm");
	struct rlimit rl = {vm + 640 * KiB, RLIM_INFINITY};
	CHILD_REQUIRE(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit");
	os_mallinfo(&before);
	for (; n < N; n++) {
		errno = 0;
		p[n] = os_malloc(SIZE);
		if (!p[n]) {
			CHILD_REQUIRE(errno == ENOMEM, "errno %d", errno);
			break;
		}
		tag_fill(p[n], SIZE, n);
	}
	CHILD_REQUIRE(n < N, "RLIMIT_AS never stopped the heap");
	os_mallinfo(&after);
	CHILD_REQUIRE(after.heap_segments > before.heap_segments,
		      "no mapping smaller than 1 MiB (%zu segments)",
		      after.heap_segments);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	for (size_t i = 0; i < n; i++) {
		CHILD_REQUIRE(tag_check(p[i], SIZE, i), "block %zu changed", i);
		os_free(p[i]);
	}
	os_free(first);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return CHILD_OK;
}

/* RLIMIT_AS: once the heap has taken the address space, a request of the
 * mmap threshold or more cannot have a mapping of its own; memory the
 * program freed in the heap serves it (as glibc's arena does), and the
 * block behaves as any other. */
static int free_heap_child(void *arg)
{
	(void)arg;
	enum { N = 40000, SMALL = 1000 };
	void **p = mmap(NULL, N * sizeof *p, PROT_READ | PROT_WRITE,
	                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHILD_REQUIRE(p != MAP_FAILED, "mmap");
	CHILD_REQUIRE(os_malloc(100) != NULL, "first allocation");
	struct rlimit rl = {address_space_now() + 8 * MiB, RLIM_INFINITY};
	CHILD_REQUIRE(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit");
	size_t n = 0;
	while (n < N && (p[n] = os_malloc(SMALL)) != NULL)
		n++;
	CHILD_REQUIRE(n < N, "RLIMIT_AS never stopped the heap");
	CHILD_REQUIRE(n > 1000, "only %zu small blocks", n);
	for (size_t i = 0; i < n; i++)
		os_free(p[i]);
	errno = 0;
	unsigned char *big = os_malloc(THRESHOLD + 68 * KiB);
	CHILD_REQUIRE(big != NULL, "os_malloc(%zu) after freeing: errno %d",
	              (size_t)(THRESHOLD + 68 * KiB), errno);
	CHILD_REQUIRE(errno == 0, "errno %d after a success", errno);
	tag_fill(big, THRESHOLD + 68 * KiB, 7);
	unsigned char *z = os_calloc(1, THRESHOLD + 4 * KiB);
	CHILD_REQUIRE(z != NULL, "os_calloc after freeing");
	for (size_t i = 0; i < THRESHOLD + 4 * KiB; i++)
		CHILD_REQUIRE(z[i] == 0, "calloc byte %zu", i);
	CHILD_REQUIRE(tag_check(big, THRESHOLD + 68 * KiB, 7), "big changed");
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	big = os_realloc(big, THRESHOLD + 100 * KiB);
	CHILD_REQUIRE(big != NULL, "os_realloc");
	CHILD_REQUIRE(tag_check_prefix(big, THRESHOLD + 68 * KiB, 7),
	              "big changed by realloc");
	os_free(big);
	os_free(z);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return CHILD_OK;
}

/* The break was obstructed during one growth, which fell back to a
 * mapping, and is free again: later growth goes back to the break, one new
 * segment that grows in place (it made a new 1 MiB mapping per growth). */
static int f03_freed_child(void *arg)
{
	(void)arg;
	enum { SIZE = 4000, FIRST = 40, MORE = 1000 };
	static void *p[FIRST + MORE];
	void *first = os_malloc(100);
	CHILD_REQUIRE(first != NULL, "first allocation");
	unsigned char *m = obstruct_break();
	int n = 0;
	while (n < FIRST) /* 160 KB: more than the 128 KiB preallocated */
		CHILD_REQUIRE((p[n++] = os_malloc(SIZE)) != NULL, "os_malloc");
	CHILD_REQUIRE(munmap(m, 4096) == 0, "munmap");
	struct os_mallinfo before, after;
	os_mallinfo(&before);
	uintptr_t brk_before = (uintptr_t)sbrk(0);
	while (n < FIRST + MORE) { /* 4 MB more */
		CHILD_REQUIRE((p[n] = os_malloc(SIZE)) != NULL, "os_malloc");
		tag_fill(p[n], SIZE, (uint64_t)n);
		n++;
	}
	os_mallinfo(&after);
	uintptr_t moved = (uintptr_t)sbrk(0) - brk_before;
	CHILD_REQUIRE(moved >= 2 * MiB, "the break moved by %zu bytes",
		      (size_t)moved);
	CHILD_REQUIRE(after.heap_segments <= before.heap_segments + 1,
		      "%zu segments, %zu before", after.heap_segments,
		      before.heap_segments);
	for (int i = FIRST; i < n; i++)
		CHILD_REQUIRE(tag_check(p[i], SIZE, (uint64_t)i),
			      "block %d changed", i);
	for (int i = 0; i < n; i++)
		os_free(p[i]);
	os_free(first);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return CHILD_OK;
}

/* valgrind emulates the break in a reserved area: nothing can be mapped
 * at it, and the break cannot grow far anyway. */
START_TEST(test_obstructed_break_before_first_use_falls_back_to_mmap)
{
	if (under_valgrind())
		return;
	expect_child_ok(f03_fresh_child, NULL, "brk obstructed, fresh");
}
END_TEST

START_TEST(test_obstructed_break_after_growth_starts_a_new_segment)
{
	if (under_valgrind())
		return;
	expect_child_ok(f03_grown_child, NULL, "brk obstructed, grown");
}
END_TEST

START_TEST(test_obstructed_break_and_little_address_space_map_what_is_needed)
{
	if (under_valgrind())
		return;
	expect_child_ok(f03_tight_child, NULL, "brk obstructed, RLIMIT_AS");
}
END_TEST

START_TEST(test_freed_heap_memory_serves_a_large_request_without_address_space)
{
	if (under_valgrind())
		return;
	expect_child_ok(free_heap_child, NULL, "RLIMIT_AS, large from heap");
}
END_TEST

START_TEST(test_a_break_free_again_is_used_again)
{
	if (under_valgrind())
		return;
	expect_child_ok(f03_freed_child, NULL, "brk obstructed, then free");
}
END_TEST

/* ---- F04: someone else moves the break ---- */

static int f04_child(void *arg)
{
	(void)arg;
	void *first = os_malloc(100);
	CHILD_REQUIRE(first != NULL, "first allocation");
	struct os_mallinfo before, after;
	os_mallinfo(&before);
	unsigned char *foreign = sbrk(4096);
	CHILD_REQUIRE(foreign != (void *)-1, "sbrk");
	memset(foreign, 0x3c, 4096);
	small_allocations_work(5000, (uintptr_t)foreign,
	                       (uintptr_t)foreign + 4096);
	for (int i = 0; i < 4096; i++)
		CHILD_REQUIRE(foreign[i] == 0x3c, "the foreign page changed");
	os_mallinfo(&after);
	CHILD_REQUIRE(after.heap_segments > before.heap_segments,
	              "no new segment after a foreign sbrk");
	os_free(first);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return CHILD_OK;
}

START_TEST(test_foreign_sbrk_starts_a_new_segment)
{
	expect_child_ok(f04_child, NULL, "foreign sbrk");
}
END_TEST

/* glibc's malloc grows the same break, in turns with osalloc. */
static int f04_glibc_child(void *arg)
{
	(void)arg;
	enum { N = 96 };
	void *mine[N], *theirs[N];
	for (int i = 0; i < N; i++) {
		size_t s = 20000 + 1000 * (size_t)i;
		mine[i] = os_malloc(s);
		theirs[i] = malloc(s);
		CHILD_REQUIRE(mine[i] && theirs[i], "allocation %d", i);
		tag_fill(mine[i], s, (uint64_t)i);
		tag_fill(theirs[i], s, (uint64_t)i + 1000);
	}
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	for (int i = 0; i < N; i++) {
		size_t s = 20000 + 1000 * (size_t)i;
		CHILD_REQUIRE(tag_check(mine[i], s, (uint64_t)i), "mine %d", i);
		CHILD_REQUIRE(tag_check(theirs[i], s, (uint64_t)i + 1000),
		              "theirs %d", i);
		if (i % 2)
			os_free(mine[i]);
		else
			free(theirs[i]);
	}
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	for (int i = 0; i < N; i++) {
		if (i % 2)
			free(theirs[i]);
		else
			os_free(mine[i]);
	}
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return CHILD_OK;
}

START_TEST(test_glibc_malloc_interleaving_on_the_break)
{
	expect_child_ok(f04_glibc_child, NULL, "glibc interleaving");
}
END_TEST

/* ---- F05: fail the k-th OS call of a scripted workload ---- */

enum { WL_SLOTS = 128, WL_OPS = 1000 };
/* OSALLOC_TEST_SWEEP_OPS=N runs a longer workload (CI). */
static int wl_ops = WL_OPS;

struct slot {
	unsigned char *p;
	size_t size;
	uint64_t tag;
};

static struct slot wl[WL_SLOTS];
static uint64_t wl_rng;
static uint64_t wl_tags;

static uint64_t rnd(void)
{
	wl_rng ^= wl_rng << 13;
	wl_rng ^= wl_rng >> 7;
	wl_rng ^= wl_rng << 17;
	return wl_rng;
}

static size_t wl_size(void)
{
	static const size_t edges[] = {1,      16,     17,     1008,   1009,
	                               4080,   4096,   131055, 131056, 131071,
	                               131072, 131073, 135168};
	unsigned r = (unsigned)(rnd() % 100);
	if (r < 50)
		return 1 + rnd() % 1024;
	if (r < 90)
		return 1025 + rnd() % (THRESHOLD - 1025);
	if (r < 94)
		return THRESHOLD + rnd() % (768 * KiB);
	return edges[rnd() % (sizeof edges / sizeof *edges)];
}

/* Fault bookkeeping of one run. */
struct sweep_state {
	unsigned long armed_at; /* k, or 0 for the reference run */
	unsigned long base;     /* OS calls counted before arming */
	bool fault_seen;        /* the k-th call happened */
	unsigned long nulls;    /* operations that returned NULL */
};
static struct sweep_state sw;

static unsigned long calls_so_far(void)
{
	return osa_sys_calls(OSA_SYS_ALL) - sw.base;
}

static void verify_all(const char *when)
{
	for (int i = 0; i < WL_SLOTS; i++)
		if (wl[i].p)
			CHILD_REQUIRE(tag_check(wl[i].p, wl[i].size, wl[i].tag),
			              "slot %d (%zu bytes) changed %s", i,
			              wl[i].size, when);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check %s", when);
}

/* Called after each operation with the call count before it; `failed`
 * means the operation returned NULL (or an error).  True when the injected
 * failure happened in this operation: the caller verifies everything once
 * its slot is up to date. */
static bool after_op(unsigned long before, bool failed, int err, const char *op,
                     size_t size)
{
	unsigned long after = calls_so_far();
	bool fired =
	    sw.armed_at && before < sw.armed_at && after >= sw.armed_at;
	if (fired)
		sw.fault_seen = true;
	if (failed) {
		CHILD_REQUIRE(fired,
		              "%s(%zu) failed with no injected failure "
		              "(calls %lu..%lu, armed at %lu), errno %d",
		              op, size, before, after, sw.armed_at, err);
		CHILD_REQUIRE(err == ENOMEM, "%s(%zu): errno %d, not ENOMEM",
		              op, size, err);
		sw.nulls++;
	}
	return fired;
}

static void verify_if(bool fired)
{
	if (fired)
		verify_all("after the injected failure");
}

static void wl_alloc(struct slot *s)
{
	size_t size = wl_size();
	unsigned kind = (unsigned)(rnd() % 10);
	unsigned long before = calls_so_far();
	unsigned char *p = NULL;
	const char *op;
	int err = 0;
	errno = 0;
	if (kind < 5) {
		op = "os_malloc";
		p = os_malloc(size);
	} else if (kind < 7) {
		op = "os_calloc";
		p = os_calloc(1, size);
		if (p)
			CHILD_REQUIRE(all_zero(p, size), "calloc not zero");
	} else if (kind < 8) {
		size_t align = (size_t)16 << (rnd() % 9);
		op = "os_aligned_alloc";
		p = os_aligned_alloc(align, size);
		if (p)
			CHILD_REQUIRE((uintptr_t)p % align == 0, "misaligned");
	} else if (kind < 9) {
		size_t align = (size_t)32 << (rnd() % 8);
		void *m = &m;
		op = "os_posix_memalign";
		err = os_posix_memalign(&m, align, size);
		if (err == 0) {
			p = m;
			CHILD_REQUIRE((uintptr_t)p % align == 0, "misaligned");
		} else {
			CHILD_REQUIRE(m == &m, "posix_memalign set *memptr");
		}
	} else {
		op = "os_realloc(NULL)";
		p = os_realloc(NULL, size);
	}
	if (!p && !err)
		err = errno;
	bool fired = after_op(before, p == NULL, err, op, size);
	if (!p) {
		verify_if(fired);
		return;
	}
	CHILD_REQUIRE((uintptr_t)p % 16 == 0, "misaligned");
	CHILD_REQUIRE(os_malloc_usable_size(p) >= size, "usable size");
	s->p = p;
	s->size = size;
	s->tag = ++wl_tags;
	tag_fill(p, size, s->tag);
	verify_if(fired);
}

static void wl_realloc(struct slot *s)
{
	size_t size = wl_size();
	if (rnd() % 4 == 0)
		size = s->size + 1 + rnd() % 64; /* small growth */
	else if (s->size >= THRESHOLD && s->size < 2 * MiB && rnd() % 2)
		size = s->size + s->size / 2; /* a mapping grows (mremap) */
	unsigned long before = calls_so_far();
	errno = 0;
	unsigned char *q = os_realloc(s->p, size);
	int err = errno;
	bool fired = after_op(before, q == NULL, err, "os_realloc", size);
	if (!q) {
		CHILD_REQUIRE(tag_check(s->p, s->size, s->tag),
		              "failed realloc changed the block");
		verify_if(fired);
		return;
	}
	CHILD_REQUIRE(size >= s->size ? tag_check(q, s->size, s->tag)
	                              : tag_check_prefix(q, size, s->tag),
	              "realloc lost the contents");
	s->p = q;
	s->size = size;
	s->tag = ++wl_tags;
	tag_fill(q, size, s->tag);
	verify_if(fired);
}

static void wl_free(struct slot *s)
{
	CHILD_REQUIRE(tag_check(s->p, s->size, s->tag), "block changed");
	unsigned long before = calls_so_far();
	errno = EDOM;
	os_free(s->p);
	CHILD_REQUIRE(errno == EDOM, "os_free changed errno to %d", errno);
	s->p = NULL;
	verify_if(after_op(before, false, 0, "os_free", s->size));
}

static void workload(void)
{
	wl_rng = 0x2545f4914f6cdd1dULL;
	for (int op = 0; op < wl_ops; op++) {
		struct slot *s = &wl[rnd() % WL_SLOTS];
		if (!s->p)
			wl_alloc(s);
		else if (rnd() % 10 < 5)
			wl_free(s);
		else if (rnd() % 10 < 9)
			wl_realloc(s);
		else
			CHILD_REQUIRE(os_malloc_usable_size(s->p) >= s->size,
			              "usable size");
	}
}

/* What the reference run (no fault) tells the sweep. */
struct sweep_ref {
	size_t in_use_end;
	unsigned long calls[4]; /* the workload's sbrk, mmap, munmap, mremap */
};
static struct sweep_ref ref;

/* One run: arm the k-th call (k = 0: reference), run, check everything. */
static int sweep_child(void *arg)
{
	unsigned long k = *(unsigned long *)arg, kinds[4];
	for (unsigned i = 0; i < 4; i++)
		kinds[i] = osa_sys_calls(1u << i);
	sw.base = osa_sys_calls(OSA_SYS_ALL);
	sw.armed_at = k;
	if (k)
		osa_sys_fail_nth(k, OSA_SYS_ALL);
	workload();
	osa_sys_fail_nth(0, 0);
	for (unsigned i = 0; i < 4; i++)
		kinds[i] = osa_sys_calls(1u << i) - kinds[i];
	unsigned long total = calls_so_far();
	if (k && !sw.fault_seen)
		CHILD_REQUIRE(total < k, "the failure was not noticed");
	verify_all("at the end");
	/* Usable after the fault. */
	static const size_t sizes[] = {24, 1000, 5000, 100000, 300000};
	for (int i = 0; i < 5; i++) {
		void *p = os_malloc(sizes[i]);
		CHILD_REQUIRE(p != NULL, "os_malloc(%zu) after the fault",
		              sizes[i]);
		tag_fill(p, sizes[i], 5);
		os_free(p);
	}
	for (int i = 0; i < WL_SLOTS; i++)
		if (wl[i].p)
			wl_free(&wl[i]);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check after freeing all");
	struct os_mallinfo m;
	size_t in_use = in_use_now();
	os_mallinfo(&m);
	CHILD_REQUIRE(m.mmap_count == 0, "%zu mappings left", m.mmap_count);
	if (k == 0) {
		struct sweep_ref r = {in_use,
		                      {kinds[0], kinds[1], kinds[2], kinds[3]}};
		ssize_t w = write(3, &r, sizeof r);
		CHILD_REQUIRE(w == (ssize_t)sizeof r, "write");
		return CHILD_OK;
	}
	CHILD_REQUIRE(in_use == ref.in_use_end,
	              "in use %zu after freeing all; %zu without the fault",
	              in_use, ref.in_use_end);
	if (!sw.fault_seen)
		return CHILD_NO_FAULT;
	return sw.nulls ? CHILD_OK_NULL : CHILD_OK;
}

START_TEST(test_fault_sweep_fails_every_os_call_of_a_workload)
{
	struct child_result r;
	char st[64];
	unsigned long k = 0, nulls = 0;
	run_forked(sweep_child, &k, CHILD_TIMEOUT, &r);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 &&
	                  r.err_len == 0 && r.aux_len == sizeof ref,
	              "reference run: %s; stderr: %s",
	              describe_status(r.status, st, sizeof st), r.err);
	memcpy(&ref, r.aux, sizeof ref);
	unsigned long total =
	    ref.calls[0] + ref.calls[1] + ref.calls[2] + ref.calls[3];
	/* Under valgrind libosalloc moves large blocks instead of calling
	 * mremap (so that memcheck keeps their history). */
	ck_assert_msg(ref.calls[0] > 0 && ref.calls[1] > 0 &&
	                  ref.calls[2] > 0 &&
	                  (ref.calls[3] > 0 || under_valgrind()),
	              "the workload must use every kind of call");
	for (k = 1; k < 20000; k++) {
		run_forked(sweep_child, &k, CHILD_TIMEOUT, &r);
		ck_assert_msg(WIFEXITED(r.status) && r.err_len == 0,
		              "k=%lu: %s; stderr: %s", k,
		              describe_status(r.status, st, sizeof st), r.err);
		int code = WEXITSTATUS(r.status);
		if (code == CHILD_NO_FAULT)
			break;
		ck_assert_msg(code == CHILD_OK || code == CHILD_OK_NULL,
		              "k=%lu: exit %d; stderr: %s", k, code, r.err);
		nulls += code == CHILD_OK_NULL;
	}
	ck_assert_msg(k > total, "sweep ended at k=%lu of %lu calls", k, total);
	ck_assert_msg(nulls > 0, "no injected failure ever returned NULL");
	printf("fault sweep: %lu runs, every OS call of the workload failed "
	       "once (sbrk %lu, mmap %lu, munmap %lu, mremap %lu); %lu runs "
	       "saw NULL with ENOMEM\n",
	       k - 1, ref.calls[0], ref.calls[1], ref.calls[2], ref.calls[3],
	       nulls);
}
END_TEST

/* ---- F06 / F07: failed realloc keeps the block, swept over k ---- */

/* must_fail: one failing call is enough to make this realloc fail (else
 * a fallback may serve it). */
struct realloc_case {
	size_t from, to, filler;
	bool must_fail;
};
static const struct realloc_case realloc_cases[] = {
    {100, 100000, 125000, false},   /* small -> medium: the heap grows */
    {100, 300000, 0, true},         /* small -> mmap */
    {5000, 130000, 120000, false},  /* medium grown in place at the end */
    {200000, 1536 * KiB, 0, true},  /* mmap -> bigger (mremap) */
    /* mmap -> 2 MiB or more: mremap; under valgrind a move into a new
     * mapping, whose rounded request falls back to the exact length */
    {200000, 3 * MiB, 0, false},
    {200000, 50000, 125000, false}, /* mmap -> heap, which must grow */
};

static int realloc_sweep_child(void *arg)
{
	const unsigned long *a = arg;
	const struct realloc_case *c = &realloc_cases[a[0]];
	unsigned long k = a[1];
	void *filler = c->filler ? os_malloc(c->filler) : NULL;
	unsigned char *p = os_malloc(c->from);
	CHILD_REQUIRE(p && (filler || !c->filler), "setup");
	tag_fill(p, c->from, 42);
	unsigned long before = osa_sys_calls(OSA_SYS_ALL);
	osa_sys_fail_nth(k, OSA_SYS_ALL);
	errno = 0;
	unsigned char *q = os_realloc(p, c->to);
	int err = errno;
	osa_sys_fail_nth(0, 0);
	bool fired = osa_sys_calls(OSA_SYS_ALL) - before >= k;
	int code = fired ? CHILD_OK : CHILD_NO_FAULT;
	if (!q) {
		CHILD_REQUIRE(fired, "NULL without an injected failure");
		CHILD_REQUIRE(err == ENOMEM, "errno %d", err);
		CHILD_REQUIRE(tag_check(p, c->from, 42),
		              "failed realloc changed the block");
		CHILD_REQUIRE(os_heap_check() == 0, "heap check");
		q = p;
		code = CHILD_OK_NULL;
	} else {
		CHILD_REQUIRE(c->to >= c->from ? tag_check(q, c->from, 42)
		                               : tag_check_prefix(q, c->to, 42),
		              "contents lost");
	}
	os_free(q);
	os_free(filler);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return code;
}

START_TEST(test_failed_realloc_keeps_the_block)
{
	struct child_result r;
	char st[64];
	unsigned long a[2] = {(unsigned long)_i, 0}, nulls = 0;
	for (a[1] = 1; a[1] < 100; a[1]++) {
		run_forked(realloc_sweep_child, a, CHILD_TIMEOUT, &r);
		ck_assert_msg(WIFEXITED(r.status) && r.err_len == 0,
		              "case %d k=%lu: %s; stderr: %s", _i, a[1],
		              describe_status(r.status, st, sizeof st), r.err);
		int code = WEXITSTATUS(r.status);
		if (code == CHILD_NO_FAULT)
			break;
		ck_assert_msg(code == CHILD_OK || code == CHILD_OK_NULL,
		              "case %d k=%lu: exit %d: %s", _i, a[1], code,
		              r.err);
		nulls += code == CHILD_OK_NULL;
	}
	if (realloc_cases[_i].must_fail)
		ck_assert_msg(nulls > 0,
		              "case %d: no failure made realloc fail", _i);
}
END_TEST

/* F07: mremap fails; the old mapping stays intact. */
START_TEST(test_mremap_failure_keeps_the_mapping)
{
	unsigned char *p = os_malloc(200000);
	ck_assert_ptr_nonnull(p);
	tag_fill(p, 200000, 7);
	osa_sys_fail_nth(1, OSA_SYS_MREMAP);
	errno = 0;
	unsigned char *q = os_realloc(p, 4 * MiB);
	int err = errno;
	osa_sys_fail_nth(0, 0);
	if (q) { /* a fallback to mmap and copy is allowed */
		ck_assert(tag_check(q, 200000, 7));
		p = q;
	} else {
		ck_assert_int_eq(err, ENOMEM);
		ck_assert(tag_check(p, 200000, 7));
	}
	ck_assert_int_eq(os_heap_check(), 0);
	q = os_realloc(p, 4 * MiB);
	ck_assert_ptr_nonnull(q);
	ck_assert(tag_check(q, 200000, 7));
	os_free(q);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* ---- F08: munmap fails ---- */

/* How many of the pages wholly inside [p, p + len) are resident. */
static size_t resident_pages(const void *p, size_t len)
{
	uintptr_t from = osa_align_up((uintptr_t)p, OSA_PAGE);
	uintptr_t to = ((uintptr_t)p + len) & ~(uintptr_t)(OSA_PAGE - 1);
	static unsigned char v[1024];
	size_t n = 0, pages = to > from ? (to - from) / OSA_PAGE : 0;
	ck_assert_uint_le(pages, sizeof v);
	ck_assert_int_eq(mincore((void *)from, to - from, v), 0);
	for (size_t i = 0; i < pages; i++)
		n += v[i] & 1;
	return n;
}

/* A failing munmap (ENOMEM) leaves the range mapped: the block is gone
 * from the accounting, errno is kept, and its pages go back (MADV_DONTNEED),
 * so that only address space is lost. */
START_TEST(test_munmap_failure_keeps_errno_and_accounting)
{
	struct os_mallinfo before, after;
	os_mallinfo(&before);
	unsigned char *p = os_malloc(300000);
	ck_assert_ptr_nonnull(p);
	memset(p, 0x5a, 300000);
	osa_sys_fail_nth(1, OSA_SYS_MUNMAP);
	errno = EDOM;
	os_free(p);
	ck_assert_int_eq(errno, EDOM);
	osa_sys_fail_nth(0, 0);
	/* The mapping stays, but not its memory. */
	ck_assert_uint_eq(resident_pages(p, 300000), 0);
	os_mallinfo(&after);
	ck_assert_uint_eq(after.mmap_count, before.mmap_count);
	ck_assert_uint_eq(after.mmap_bytes, before.mmap_bytes);
	ck_assert_int_eq(os_heap_check(), 0);
	/* realloc from mmap to the heap frees the mapping too. */
	p = os_malloc(300000);
	ck_assert_ptr_nonnull(p);
	tag_fill(p, 1000, 3);
	osa_sys_fail_nth(1, OSA_SYS_MUNMAP);
	unsigned char *q = os_realloc(p, 1000);
	osa_sys_fail_nth(0, 0);
	ck_assert_ptr_nonnull(q);
	ck_assert(tag_check(q, 1000, 3));
	os_free(q);
	os_mallinfo(&after);
	ck_assert_uint_eq(after.mmap_count, before.mmap_count);
	ck_assert_int_eq(os_heap_check(), 0);
	p = os_malloc(300000);
	ck_assert_ptr_nonnull(p);
	os_free(p);
}
END_TEST

/* Is the page holding addr mapped?  (mincore fails with ENOMEM if not.) */
static bool page_mapped(const void *addr)
{
	unsigned char v;
	uintptr_t page = (uintptr_t)addr & ~(uintptr_t)(OSA_PAGE - 1);
	return mincore((void *)page, OSA_PAGE, &v) == 0;
}

/* A block of 2 MiB or more is first asked for with its mapping rounded up
 * to whole 2 MiB pages (lib/large.c).  When that mmap fails, the exact
 * length is tried; when unmapping the rounding fails, the block keeps the
 * rounded mapping and os_free unmaps all of it.  errno stays as it was. */
START_TEST(test_huge_block_mapping_falls_back_when_a_call_fails)
{
	const size_t size = 3 * MiB;
	struct os_mallinfo before, after;
	os_mallinfo(&before);
	unsigned long maps = osa_sys_calls(OSA_SYS_MMAP);
	osa_sys_fail_nth(1, OSA_SYS_MMAP);
	errno = EDOM;
	unsigned char *p = os_malloc(size);
	osa_sys_fail_nth(0, 0);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(errno, EDOM);
	ck_assert_uint_eq(osa_sys_calls(OSA_SYS_MMAP) - maps, 2);
	ck_assert_uint_eq(os_malloc_usable_size(p), size + OSA_PAGE - OSA_HDR);
	memset(p, 5, size);
	os_free(p);
	ck_assert(!page_mapped(p));
	/* The munmap of the rounding fails. */
	osa_sys_fail_nth(1, OSA_SYS_MUNMAP);
	errno = EDOM;
	p = os_malloc(size);
	osa_sys_fail_nth(0, 0);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(errno, EDOM);
	const size_t whole = 4 * MiB - OSA_HDR;
	ck_assert_uint_eq(os_malloc_usable_size(p), whole);
	unsigned char *all = p;
	__asm__("" : "+r"(all)); /* all of the usable size, not `size` */
	memset(all, 6, whole);
	os_free(p);
	ck_assert(!page_mapped(p) && !page_mapped(p + whole - 1));
	os_mallinfo(&after);
	ck_assert_uint_eq(after.mmap_count, before.mmap_count);
	ck_assert_uint_eq(after.mmap_bytes, before.mmap_bytes);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* A cache refill takes a batch of blocks; when memory runs out after the
 * first, the allocation still succeeds and must not leave ENOMEM in errno.
 * The heap is filled under RLIMIT_DATA, one block of 2032 bytes is freed
 * (too big for a cache), and malloc(1000) refills its empty class from it:
 * the first block fits there, the second finds no memory. */
static int refill_errno_child(void *unused)
{
	(void)unused;
	enum { MAX = 40000 };
	static void *p[MAX];
	static const size_t sizes[] = {2000, 1500, 1100, 1000};
	int n = 0;
	os_free(os_malloc(8));
	limit_to_usage(RLIMIT_DATA, "VmData", 2 * MiB);
	for (int k = 0; k < 4; k++)
		while (n < MAX && (p[n] = os_malloc(sizes[k])) != NULL)
			n++;
	CHILD_REQUIRE(n > 0 && n < MAX, "%d blocks before the limit", n);
	int big = 0;
	while (big < n && os_malloc_usable_size(p[big]) < 2000)
		big++;
	CHILD_REQUIRE(big < n, "no block of 2000 bytes");
	os_free(p[big]);
	p[big] = NULL;
	errno = EDOM;
	void *q = os_malloc(1000);
	int e = errno;
	CHILD_REQUIRE(q != NULL, "os_malloc(1000) after a free of 2000 bytes");
	CHILD_REQUIRE(e == EDOM, "errno %d (%s) after a successful os_malloc", e,
		      strerror(e));
	os_free(q);
	for (int i = 0; i < n; i++)
		os_free(p[i]);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return CHILD_OK;
}

START_TEST(test_a_refill_cut_short_by_enomem_keeps_errno)
{
	if (!limits_testable())
		return;
	expect_child_ok(refill_errno_child, NULL, "refill under RLIMIT_DATA");
}
END_TEST

/* A mapped block that grows gets a quarter more than asked, so that a
 * block grown in small steps moves O(log n) times.  When the address space
 * has room for what was asked and not for the quarter, the realloc still
 * succeeds, in place, and keeps errno. */
static int large_growth_child(void *unused)
{
	(void)unused;
	enum { OLD = 64 * MiB, NEW = 65 * MiB };
	unsigned char *p = os_malloc(OLD);
	CHILD_REQUIRE(p != NULL, "os_malloc(64 MiB)");
	tag_fill(p, OLD, 7);
	limit_to_usage(RLIMIT_AS, "VmSize", 4 * MiB);
	errno = EDOM;
	unsigned char *q = os_realloc(p, NEW);
	int e = errno;
	CHILD_REQUIRE(q != NULL, "os_realloc(64 MiB -> 65 MiB): errno %d", e);
	CHILD_REQUIRE(e == EDOM, "errno %d after a successful os_realloc", e);
	CHILD_REQUIRE(tag_check(q, OLD, 7), "contents changed");
	os_free(q);
	return CHILD_OK;
}

/* A mapped block shrunk below the threshold moves to the heap; when the
 * heap cannot have the memory (here its very first growth), the block
 * stays where it is: a success, which keeps errno. */
static int large_shrink_child(void *unused)
{
	(void)unused;
	unsigned char *p = os_malloc(MiB);
	CHILD_REQUIRE(p != NULL, "os_malloc(1 MiB)");
	tag_fill(p, 50000, 8);
	limit_to_usage(RLIMIT_AS, "VmSize", 0);
	errno = EDOM;
	unsigned char *q = os_realloc(p, 50000);
	int e = errno;
	CHILD_REQUIRE(q == p, "os_realloc(1 MiB -> 50000) = %p, not %p",
		      (void *)q, (void *)p);
	CHILD_REQUIRE(e == EDOM, "errno %d after a successful os_realloc", e);
	CHILD_REQUIRE(tag_check(q, 50000, 8), "contents changed");
	os_free(q);
	return CHILD_OK;
}

START_TEST(test_a_mapped_block_grows_when_only_its_slack_does_not_fit)
{
	if (!limits_testable())
		return;
	expect_child_ok(large_growth_child, NULL, "RLIMIT_AS, large growth");
	expect_child_ok(large_shrink_child, NULL, "RLIMIT_AS, large shrink");
}
END_TEST

/* A realloc of a mapped block takes its entry out of the registry while
 * mremap runs, and puts it back after, moved or not.  Meanwhile another
 * thread may register a mapping that fills the table to its growth point,
 * and memory may run out: putting the entry back must still not need a
 * bigger table.  The test binary interposes mremap to play the other
 * thread at that moment: it registers a block, then lowers RLIMIT_AS to
 * what is in use, so that the realloc's mremap fails too. */
static volatile int mremap_hook;

void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	void *new_addr = (flags & MREMAP_FIXED) ? va_arg(ap, void *) : NULL;
	va_end(ap);
	if (mremap_hook) {
		mremap_hook = 0;
		void *other = os_malloc(200000);
		CHILD_REQUIRE(other != NULL, "the other block");
		limit_to_usage(RLIMIT_AS, "VmSize", 0);
	}
	return (void *)syscall(SYS_mremap, old, old_len, new_len, flags,
			       new_addr);
}

static int registry_child(void *unused)
{
	(void)unused;
	enum { N = 128 }; /* the first table's growth point */
	static unsigned char *v[N];
	for (int i = 0; i < N; i++) {
		v[i] = os_malloc(200000);
		CHILD_REQUIRE(v[i] != NULL, "os_malloc(200000) #%d", i);
	}
	struct os_mallinfo m;
	os_mallinfo(&m);
	CHILD_REQUIRE(m.mmap_count == N, "%zu mapped blocks", m.mmap_count);
	tag_fill(v[0], 200000, 3);
	mremap_hook = 1;
	errno = EDOM;
	void *q = os_realloc(v[0], 400000);
	CHILD_REQUIRE(!mremap_hook, "mremap was not called");
	CHILD_REQUIRE(q == NULL && errno == ENOMEM,
		      "os_realloc = %p, errno %d", q, errno);
	CHILD_REQUIRE(tag_check(v[0], 200000, 3), "the block changed");
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	os_free(v[0]); /* still registered */
	os_mallinfo(&m);
	CHILD_REQUIRE(m.mmap_count == N, "%zu mapped blocks after the free",
		      m.mmap_count);
	return CHILD_OK;
}

START_TEST(test_a_realloc_puts_its_mapping_back_whatever_was_registered_meanwhile)
{
	if (!limits_testable())
		return;
	expect_child_ok(registry_child, NULL, "registry at its growth point");
}
END_TEST

/* A heap of 8 MiB or more grows to a 2 MiB boundary.  When the break
 * refuses that (RLIMIT_DATA, here an injected failure), the heap asks for
 * what it needs instead and stays one segment, without an mmap. */
START_TEST(test_refused_huge_growth_asks_for_what_is_needed)
{
	if (under_valgrind()) /* its break stops at about 8 MiB */
		return;
	enum { SIZE = 4096, MAX = 6000 };
	static void *p[MAX];
	int n = 0;
	struct os_mallinfo before, after;
	do {
		ck_assert_ptr_nonnull(p[n++] = os_malloc(SIZE));
		os_mallinfo(&before);
	} while (n < MAX && before.heap_bytes < 9 * MiB);
	unsigned long sbrks = 0, maps = 0, grew = 0;
	while (n < MAX && grew == 0) {
		/* The refused sbrk to the boundary (sbrk(0) is not counted),
		 * then the one that grows the heap. */
		unsigned long s0 = osa_sys_calls(OSA_SYS_SBRK);
		unsigned long m0 = osa_sys_calls(OSA_SYS_MMAP);
		os_mallinfo(&after);
		size_t heap0 = after.heap_bytes;
		osa_sys_fail_nth(1, OSA_SYS_SBRK);
		errno = EDOM;
		p[n] = os_malloc(SIZE);
		osa_sys_fail_nth(0, 0);
		ck_assert_ptr_nonnull(p[n]);
		ck_assert_int_eq(errno, EDOM);
		memset(p[n++], 0x5a, SIZE);
		sbrks = osa_sys_calls(OSA_SYS_SBRK) - s0;
		maps = osa_sys_calls(OSA_SYS_MMAP) - m0;
		os_mallinfo(&after);
		if (sbrks > 0)
			grew = after.heap_bytes - heap0;
	}
	ck_assert_msg(grew > 0, "the heap did not grow past 9 MiB");
	ck_assert_uint_eq(sbrks, 2);
	ck_assert_uint_eq(maps, 0);
	ck_assert_uint_eq(after.heap_segments, before.heap_segments);
	ck_assert_uint_lt(grew, 2 * MiB);
	/* The same for a block that grows in place (a new block next to the
	 * top, grown to 120 KiB): the realloc succeeds and keeps errno. */
	for (sbrks = 0; sbrks == 0 && n < MAX;) {
		unsigned char *q = os_malloc(SIZE);
		ck_assert_ptr_nonnull(q);
		memset(q, 0x5a, SIZE);
		unsigned long s0 = osa_sys_calls(OSA_SYS_SBRK);
		osa_sys_fail_nth(1, OSA_SYS_SBRK);
		errno = EDOM;
		unsigned char *r = os_realloc(q, 120 * KiB);
		osa_sys_fail_nth(0, 0);
		ck_assert_ptr_eq(r, q); /* grown in place */
		ck_assert_int_eq(errno, EDOM);
		ck_assert_uint_eq(r[SIZE - 1], 0x5a);
		p[n++] = r;
		sbrks = osa_sys_calls(OSA_SYS_SBRK) - s0;
	}
	ck_assert_uint_eq(sbrks, 2);
	for (int i = 0; i < n; i++)
		os_free(p[i]);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* ---- F09: the mmap registry cannot grow ---- */

START_TEST(test_registry_growth_failure_is_clean)
{
	enum { N = 2000 };
	static void *p[N];
	struct os_mallinfo info;
	int failures = 0;
	size_t n = 0;
	for (; n < N && failures < 3; n++) {
		/* The block's own mapping is the 1st call; a table growth
		 * would be the 2nd. */
		osa_sys_fail_nth(2, OSA_SYS_MMAP);
		errno = 0;
		p[n] = os_malloc(THRESHOLD + 4096);
		int err = errno;
		osa_sys_fail_nth(0, 0);
		if (!p[n]) {
			ck_assert_int_eq(err, ENOMEM);
			os_mallinfo(&info);
			ck_assert_uint_eq(info.mmap_count, n);
			ck_assert_int_eq(os_heap_check(), 0);
			failures++;
			p[n] = os_malloc(THRESHOLD + 4096);
			ck_assert_ptr_nonnull(p[n]);
		}
		*(size_t *)p[n] = n;
	}
	ck_assert_msg(failures > 0, "the registry never grew in %zu blocks", n);
	ck_assert_int_eq(os_heap_check(), 0);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(*(size_t *)p[i], i);
		os_free(p[i]);
	}
	os_mallinfo(&info);
	ck_assert_uint_eq(info.mmap_count, 0);
}
END_TEST

/* F09: the block-start map cannot grow for a new (mmap'd) segment. */
static int pagemap_child(void *arg)
{
	(void)arg;
	void *first = os_malloc(100); /* a brk segment, mapped already */
	CHILD_REQUIRE(first != NULL, "first allocation");
	obstruct_break();
	size_t n = 0, nulls = 0;
	void *p[200];
	for (; n < 200 && !nulls; n++) {
		/* The segment's mapping is the 1st call, its part of the
		 * block-start map the 2nd. */
		osa_sys_fail_nth(2, OSA_SYS_MMAP);
		errno = 0;
		p[n] = os_malloc(5000);
		int err = errno;
		osa_sys_fail_nth(0, 0);
		if (!p[n]) {
			CHILD_REQUIRE(err == ENOMEM, "errno %d", err);
			CHILD_REQUIRE(os_heap_check() == 0, "heap check");
			nulls++;
			p[n] = os_malloc(5000);
			CHILD_REQUIRE(p[n] != NULL, "allocation after failure");
		}
		tag_fill(p[n], 5000, n);
	}
	CHILD_REQUIRE(nulls == 1, "the heap never needed a new segment");
	for (size_t i = 0; i < n; i++) {
		CHILD_REQUIRE(tag_check(p[i], 5000, i), "block %zu", i);
		os_free(p[i]);
	}
	os_free(first);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return CHILD_OK;
}

START_TEST(test_pagemap_growth_failure_is_clean)
{
	if (under_valgrind())
		return;
	expect_child_ok(pagemap_child, NULL, "pagemap growth failure");
}
END_TEST

/* F09: the segment index (one entry per heap segment: 32 in static
 * storage, then a mapping of 256, doubled as needed) cannot grow.  It is
 * grown before anything is committed or the break moves, so its failure
 * loses nothing; with the break obstructed the growth then falls back to
 * a mapping, which grows the index itself.  Every allocation here has its
 * first mmap fail: the 1 MiB fallback mapping (then a smaller one is
 * mapped), or, at 32 and 256 segments, the index's growth.  A lookup in a
 * heap of hundreds of segments must find each block's segment: the frees
 * and os_heap_check (which checks the index against the segments) show
 * it. */
static int index_child(void *arg)
{
	(void)arg;
	enum { SIZE = 100 * KiB, N = 3000 };
	void *first = os_malloc(100);
	CHILD_REQUIRE(first != NULL, "first allocation");
	obstruct_break();
	void **p = mmap(NULL, N * sizeof *p, PROT_READ | PROT_WRITE,
	                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHILD_REQUIRE(p != MAP_FAILED, "mmap");
	struct os_mallinfo info;
	unsigned long index_growths = 0;
	size_t n = 0;
	for (; n < N; n++) {
		os_mallinfo(&info);
		size_t segs = info.heap_segments;
		unsigned long calls = osa_sys_calls(OSA_SYS_MMAP);
		osa_sys_fail_nth(1, OSA_SYS_MMAP);
		p[n] = os_malloc(SIZE);
		osa_sys_fail_nth(0, 0);
		CHILD_REQUIRE(p[n] != NULL, "os_malloc #%zu at %zu segments: "
		              "errno %d", n, segs, errno);
		calls = osa_sys_calls(OSA_SYS_MMAP) - calls;
		/* A failed growth of the index, the mapping, the index. */
		if ((segs == 32 || segs == 256) && calls >= 3)
			index_growths++;
		((uint64_t *)p[n])[0] = n;
		((uint64_t *)p[n])[SIZE / 8 - 1] = ~(uint64_t)n;
	}
	os_mallinfo(&info);
	CHILD_REQUIRE(info.heap_segments > 256, "%zu segments",
	              info.heap_segments);
	CHILD_REQUIRE(index_growths == 2, "%lu index growths seen",
	              index_growths);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	/* Every other block, from the oldest segments to the newest: the
	 * frees look up segments all over the index, and merge. */
	for (size_t i = 0; i < n; i += 2) {
		CHILD_REQUIRE(((uint64_t *)p[i])[0] == i &&
		                  ((uint64_t *)p[i])[SIZE / 8 - 1] == ~(uint64_t)i,
		              "block %zu changed", i);
		os_free(p[i]);
	}
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	for (size_t i = 1; i < n; i += 2) {
		p[i] = os_realloc(p[i], SIZE / 2);
		CHILD_REQUIRE(p[i] && ((uint64_t *)p[i])[0] == i, "block %zu", i);
		os_free(p[i]);
	}
	os_free(first);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return CHILD_OK;
}

START_TEST(test_segment_index_growth_failure_is_clean)
{
	if (under_valgrind())
		return;
	expect_child_ok(index_child, NULL, "segment index growth failure");
}
END_TEST

/* F09, the break free again: a growth that needs a new brk segment (the
 * program moved the break) while the index cannot grow must not move the
 * break: the bytes it took would belong to no segment (they did, for one
 * commit: 128 KiB lost at each such failure). */
static int index_brk_child(void *arg)
{
	(void)arg;
	enum { SIZE = 100 * KiB };
	void *first = os_malloc(100);
	CHILD_REQUIRE(first != NULL, "first allocation");
	unsigned char *m = obstruct_break();
	struct os_mallinfo info;
	do {
		CHILD_REQUIRE(os_malloc(SIZE) != NULL, "fill");
		os_mallinfo(&info);
	} while (info.heap_segments < 32);
	CHILD_REQUIRE(munmap(m, 4096) == 0, "munmap");
	CHILD_REQUIRE(sbrk(4096) != (void *)-1, "sbrk"); /* not where we left it */
	uintptr_t brk_before = (uintptr_t)sbrk(0);
	size_t segs = info.heap_segments;
	do {
		osa_sys_fail_nth(1, OSA_SYS_MMAP); /* the index's growth */
		void *q = os_malloc(SIZE);
		osa_sys_fail_nth(0, 0);
		CHILD_REQUIRE(q != NULL, "os_malloc: errno %d", errno);
		os_mallinfo(&info);
	} while (info.heap_segments == segs);
	uintptr_t brk_after = (uintptr_t)sbrk(0);
	osa_heap_lock_acquire();
	bool held = osa_heap_contains(brk_before);
	osa_heap_lock_release();
	CHILD_REQUIRE(brk_after == brk_before || held,
		      "the break moved by %zu bytes that no segment holds",
		      (size_t)(brk_after - brk_before));
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return CHILD_OK;
}

/* F09, another thread's arena: a growth of its window that needs a new
 * segment while the index cannot grow (RLIMIT_AS: no address space for
 * it) must not commit the window's pages (it did, 128 KiB per failed
 * allocation, until the 1 GiB window was used up). */
static long vm_data_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmData: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static void *index_window_thread(void *arg)
{
	long *grew = arg;
	CHILD_REQUIRE(os_malloc(100) != NULL, "the thread's first block");
	/* One refused commit: the arena goes on in a mapping, so its next
	 * growth in the window is a new segment; then the index is full. */
	osa_sys_fail_nth(1, OSA_SYS_SBRK);
	struct os_mallinfo info;
	do {
		CHILD_REQUIRE(os_malloc(100 * KiB) != NULL, "fill");
		os_mallinfo(&info);
	} while (info.heap_segments < 32);
	osa_sys_fail_nth(0, 0);
	CHILD_REQUIRE(info.heap_segments == 32, "%zu segments",
		      info.heap_segments);
	struct rlimit rl = {address_space_now(), RLIM_INFINITY};
	CHILD_REQUIRE(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit");
	long before = vm_data_kb();
	int fails = 0;
	for (int k = 0; k < 200; k++)
		if (!os_malloc(100 * KiB))
			fails++;
	*grew = vm_data_kb() - before;
	rl.rlim_cur = RLIM_INFINITY;
	CHILD_REQUIRE(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit");
	CHILD_REQUIRE(fails > 0, "RLIMIT_AS never stopped the heap");
	return NULL;
}

static int index_window_child(void *arg)
{
	(void)arg;
	CHILD_REQUIRE(os_malloc(100) != NULL, "first allocation");
	obstruct_break();
	struct os_mallinfo info;
	do {
		CHILD_REQUIRE(os_malloc(100 * KiB) != NULL, "fill");
		os_mallinfo(&info);
	} while (info.heap_segments < 30);
	long grew = 0;
	pthread_t t;
	CHILD_REQUIRE(pthread_create(&t, NULL, index_window_thread, &grew) == 0,
		      "pthread_create");
	CHILD_REQUIRE(pthread_join(t, NULL) == 0, "pthread_join");
	CHILD_REQUIRE(grew < 1024, "VmData grew by %ld kB over failed "
		      "allocations", grew);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return CHILD_OK;
}

START_TEST(test_segment_index_growth_failure_never_strands_a_window)
{
	if (under_valgrind())
		return;
	expect_child_ok(index_window_child, NULL, "index growth failure, window");
}
END_TEST

START_TEST(test_segment_index_growth_failure_never_strands_the_break)
{
	if (under_valgrind())
		return;
	expect_child_ok(index_brk_child, NULL, "index growth failure, brk");
}
END_TEST

/* ---- F11: a thread exits with a full cache while the OS refuses ---- */

static unsigned long calls_at_exit;

static void *cache_filler(void *arg)
{
	(void)arg;
	void *p[200];
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 200; i++)
			p[i] = os_malloc(16 + (size_t)(i % 60) * 16);
		for (int i = 0; i < 200; i++)
			os_free(p[i]);
	}
	/* Every OS call fails from here: exiting must not need one. */
	calls_at_exit = osa_sys_calls(OSA_SYS_ALL);
	osa_sys_fail_nth(1, OSA_SYS_ALL);
	return NULL;
}

START_TEST(test_thread_exit_flushes_its_cache_without_os_calls)
{
	os_free(os_malloc(100));
	size_t baseline = in_use_now();
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, cache_filler, NULL), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	unsigned long calls = osa_sys_calls(OSA_SYS_ALL);
	osa_sys_fail_nth(0, 0);
	ck_assert_uint_eq(calls, calls_at_exit);
	ck_assert_int_eq(os_heap_check(), 0);
	ck_assert_uint_eq(in_use_now(), baseline);
}
END_TEST

/* ---- free keeps errno on every path (tst-free-errno) ---- */

START_TEST(test_free_keeps_errno_on_every_path)
{
	enum { N = 400 };
	void *p[N];
	for (int i = 0; i < N; i++)
		p[i] = os_malloc(48); /* one class: the cache fills up */
	void *medium = os_malloc(5000), *large = os_malloc(300000);
	void *big = os_malloc(120000), *big2 = os_malloc(120000);
	void *big3 = os_malloc(120000);
	ck_assert(medium && large && big && big2 && big3);
	for (int i = 0; i < N; i++) {
		ck_assert_ptr_nonnull(p[i]);
		errno = EDOM;
		os_free(p[i]); /* cached, then flushes */
		ck_assert_int_eq(errno, EDOM);
	}
	void *q[] = {medium, large, big, big2, big3};
	for (int i = 0; i < 5; i++) {
		errno = ERANGE;
		os_free(q[i]); /* binned, unmapped, merged, trimmed */
		ck_assert_int_eq(errno, ERANGE);
	}
	errno = EILSEQ;
	os_free(NULL);
	ck_assert_int_eq(errno, EILSEQ);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

static Suite *faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("rlimit");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_rlimit_data_each_api_runs_out_cleanly, 0,
	                    API_N * 5);
	tcase_add_test(tc, test_rlimit_data_failed_realloc_keeps_the_block);
	tcase_add_test(tc, test_rlimit_as_with_eight_threads_runs_out_cleanly);
	tcase_add_test(tc, test_a_refill_cut_short_by_enomem_keeps_errno);
	tcase_add_test(tc, test_a_mapped_block_grows_when_only_its_slack_does_not_fit);
	tcase_add_test(
	    tc, test_a_realloc_puts_its_mapping_back_whatever_was_registered_meanwhile);
	suite_add_tcase(s, tc);

	tc = tcase_create("break");
	tcase_set_timeout(tc, 60);
	tcase_add_test(
	    tc, test_obstructed_break_before_first_use_falls_back_to_mmap);
	tcase_add_test(tc,
	               test_obstructed_break_after_growth_starts_a_new_segment);
	tcase_add_test(tc, test_a_break_free_again_is_used_again);
	tcase_add_test(tc, test_freed_heap_memory_serves_a_large_request_without_address_space);
	tcase_add_test(tc, test_obstructed_break_and_little_address_space_map_what_is_needed);
	tcase_add_test(tc, test_foreign_sbrk_starts_a_new_segment);
	tcase_add_test(tc, test_glibc_malloc_interleaving_on_the_break);
	suite_add_tcase(s, tc);

	tc = tcase_create("injected");
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_fault_sweep_fails_every_os_call_of_a_workload);
	tcase_add_loop_test(tc, test_failed_realloc_keeps_the_block, 0,
	                    sizeof realloc_cases / sizeof *realloc_cases);
	tcase_add_test(tc, test_mremap_failure_keeps_the_mapping);
	tcase_add_test(tc, test_munmap_failure_keeps_errno_and_accounting);
	tcase_add_test(tc, test_huge_block_mapping_falls_back_when_a_call_fails);
	tcase_add_test(tc, test_refused_huge_growth_asks_for_what_is_needed);
	tcase_add_test(tc, test_registry_growth_failure_is_clean);
	tcase_add_test(tc, test_pagemap_growth_failure_is_clean);
	tcase_add_test(tc, test_segment_index_growth_failure_is_clean);
	tcase_add_test(tc, test_segment_index_growth_failure_never_strands_the_break);
	tcase_add_test(tc, test_segment_index_growth_failure_never_strands_a_window);
	tcase_add_test(tc, test_thread_exit_flushes_its_cache_without_os_calls);
	tcase_add_test(tc, test_free_keeps_errno_on_every_path);
	suite_add_tcase(s, tc);
	return s;
}

/* "check_faults --sweep K" runs the K-th sweep run in this process (a
 * reproducer for a failing k), after the reference run. */
static int sweep_one(unsigned long k)
{
	struct child_result r;
	unsigned long zero = 0;
	run_forked(sweep_child, &zero, CHILD_TIMEOUT, &r);
	if (r.aux_len != sizeof ref) {
		fprintf(stderr, "reference run failed: %s\n", r.err);
		return 1;
	}
	memcpy(&ref, r.aux, sizeof ref);
	printf("reference: sbrk %lu, mmap %lu, munmap %lu, mremap %lu\n",
	       ref.calls[0], ref.calls[1], ref.calls[2], ref.calls[3]);
	int code = sweep_child(&k);
	printf("sweep run k=%lu: exit %d\n", k, code);
	return code;
}

int main(int argc, char **argv)
{
	const char *ops = getenv("OSALLOC_TEST_SWEEP_OPS");
	if (ops && atoi(ops) > 0)
		wl_ops = atoi(ops);
	if (argc == 3 && strcmp(argv[1], "--sweep") == 0)
		return sweep_one(strtoul(argv[2], NULL, 10));
	SRunner *sr = srunner_create(faults_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
