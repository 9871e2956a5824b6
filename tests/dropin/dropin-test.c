/* dropin-test.c - the drop-in malloc (libosalloc-malloc) in the hard places.
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 *
 * One case per run: dropin-test CASE [ARG], run by tests/dropin/run.sh under
 * LD_PRELOAD=lib/.libs/libosalloc-malloc.so.0.  Built a second time as
 * dropin-linked, linked with -losalloc-malloc instead, and a third time as
 * dropin-static, linked with libosalloc-malloc.a (DROPIN_STATIC).  Every
 * case first checks that malloc & co. resolve to libosalloc-malloc, so a
 * run that silently used the C library's malloc fails.  Exit 0 = pass; a
 * failed check prints "FAIL: file:line: what" and exits 1.  The misuse-*
 * cases print the pointer they misuse on stdout, then must die of SIGABRT
 * with osalloc's one-line report (checked by run.sh).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* C23's free_sized and free_aligned_sized: glibc before 2.43 has neither,
 * so a program linked against it cannot call them directly; they are
 * looked up (in libosalloc-malloc) at run time. */
static void (*free_sized)(void *ptr, size_t size);
static void (*free_aligned_sized)(void *ptr, size_t alignment, size_t size);

/* Sizes no allocator can serve, hidden from the compiler's size checks. */
static volatile size_t huge_size = SIZE_MAX;
#define HUGE (huge_size)

/* Alignments that are not powers of two, hidden from the compiler too
 * (clang warns about them at compile time). */
static size_t opaque(size_t v)
{
	volatile size_t x = v;
	return x;
}

#define CHECK(cond)                                         \
	do {                                                \
		if (!(cond))                                \
			fail_at(__FILE__, __LINE__, #cond); \
	} while (0)

static void fail_at(const char *file, int line, const char *what)
{
	fprintf(stderr, "FAIL: %s:%d: %s (errno %d)\n", file, line, what,
	        errno);
	fflush(NULL);
	_exit(1);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static unsigned rnd(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return (unsigned)((x * 0x2545f4914f6cdd1dULL) >> 33);
}

static unsigned rnd_r(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return (unsigned)((x * 0x2545f4914f6cdd1dULL) >> 33);
}

static int aligned_to(const void *p, size_t a)
{
	return ((uintptr_t)p & (a - 1)) == 0;
}

static void fill(void *p, size_t n, unsigned seed)
{
	unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		c[i] = (unsigned char)(seed + i * 7);
}

static int filled(const void *p, size_t n, unsigned seed)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i] != (unsigned char)(seed + i * 7))
			return 0;
	return 1;
}

/* ---- are we on libosalloc-malloc? ---- */

static const char *const std_names[] = {
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
    "free_sized",
    "free_aligned_sized",
    "cfree",
};

/* Every standard function is found first in libosalloc-malloc, and the
 * program's own malloc (through its PLT) is that one. */
static void check_interposed(void)
{
#ifdef DROPIN_STATIC
	/* dropin-static: libosalloc-malloc.a is part of the program itself
	 * (linked with -export-dynamic, so dlsym finds its functions). */
	Dl_info self;
	CHECK(dladdr((void *)(uintptr_t)check_interposed, &self));
#endif
	for (size_t i = 0; i < sizeof std_names / sizeof *std_names; i++) {
		void *sym = dlsym(RTLD_DEFAULT, std_names[i]);
		Dl_info info;
#ifdef DROPIN_STATIC
		if (!sym || !dladdr(sym, &info) ||
		    info.dli_fbase != self.dli_fbase) {
#else
		if (!sym || !dladdr(sym, &info) || !info.dli_fname ||
		    !strstr(info.dli_fname, "libosalloc-malloc")) {
#endif
			fprintf(
			    stderr,
			    "FAIL: %s comes from %s, not libosalloc-malloc\n",
			    std_names[i],
			    sym && dladdr(sym, &info) && info.dli_fname
			        ? info.dli_fname
			        : "nowhere");
			exit(1);
		}
	}
	/* A volatile pointer keeps the compiler from folding the comparison. */
	void *(*volatile mine)(size_t) = malloc;
	CHECK((void *)mine == dlsym(RTLD_DEFAULT, "malloc"));
	*(void **)&free_sized = dlsym(RTLD_DEFAULT, "free_sized");
	*(void **)&free_aligned_sized =
	    dlsym(RTLD_DEFAULT, "free_aligned_sized");
}

/* ---- allocation in a constructor, before main and before most of the
 * C library's users ---- */

enum { NCTOR = 7 };
static void *ctor_p[NCTOR];
static int ctor_ran;

__attribute__((constructor(101))) static void early_constructor(void)
{
	ctor_p[0] = malloc(10);
	if (ctor_p[0])
		strcpy(ctor_p[0], "early");
	ctor_p[1] = calloc(100, 10);
	ctor_p[2] = realloc(NULL, 50);
	if (ctor_p[2]) {
		fill(ctor_p[2], 50, 3);
		ctor_p[2] = realloc(ctor_p[2], 5000);
	}
	ctor_p[3] = malloc(300000); /* mmap'd */
	if (ctor_p[3])
		fill(ctor_p[3], 300000, 4);
	if (posix_memalign(&ctor_p[4], 4096, 100) != 0)
		ctor_p[4] = NULL;
	ctor_p[5] = strdup("a string from strdup in a constructor");
	ctor_p[6] = malloc(0);
	ctor_ran = 1;
}

static void case_ctor(void)
{
	CHECK(ctor_ran);
	for (int i = 0; i < NCTOR; i++)
		CHECK(ctor_p[i] != NULL);
	CHECK(strcmp(ctor_p[0], "early") == 0);
	for (int i = 0; i < 1000; i++)
		CHECK(((char *)ctor_p[1])[i] == 0);
	CHECK(filled(ctor_p[2], 50, 3));
	CHECK(malloc_usable_size(ctor_p[2]) >= 5000);
	CHECK(filled(ctor_p[3], 300000, 4));
	CHECK(aligned_to(ctor_p[4], 4096));
	CHECK(strcmp(ctor_p[5], "a string from strdup in a constructor") == 0);
	for (int i = 0; i < NCTOR; i++)
		free(ctor_p[i]);
	/* And the allocator works on after them. */
	void *p = malloc(123);
	CHECK(p != NULL);
	free(p);
}

/* ---- semantics where the standard functions differ from os_* ---- */

static void case_semantics(void)
{
	/* Size 0: unique, freeable, non-NULL pointers. */
	void *z[6];
	z[0] = malloc(0);
	z[1] = malloc(0);
	z[2] = calloc(0, 10);
	z[3] = calloc(10, 0);
	z[4] = realloc(NULL, 0);
	z[5] = reallocarray(NULL, 0, 8);
	for (int i = 0; i < 6; i++) {
		CHECK(z[i] != NULL);
		for (int j = 0; j < i; j++)
			CHECK(z[i] != z[j]);
	}
	for (int i = 0; i < 6; i++)
		free(z[i]);

	/* realloc(p, 0) frees and returns NULL (as glibc), errno kept. */
	void *p = malloc(100);
	CHECK(p != NULL);
	errno = 1234;
	CHECK(realloc(p, 0) == NULL);
	CHECK(errno == 1234);
	p = malloc(100);
	CHECK(reallocarray(p, 0, 10) == NULL);

	/* free(NULL) and friends: no-ops that keep errno. */
	errno = 4321;
	free(NULL);
	free_sized(NULL, 0);
	free_aligned_sized(NULL, 64, 0);
	CHECK(errno == 4321);
	/* free keeps errno on the slow paths as well (a large block is
	 * munmap'd). */
	p = malloc(1 << 20);
	CHECK(p != NULL);
	errno = 4321;
	free(p);
	CHECK(errno == 4321);

	CHECK(malloc_usable_size(NULL) == 0);

	/* Impossible sizes: NULL and ENOMEM. */
	errno = 0;
	CHECK(malloc(HUGE) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(malloc(HUGE / 2 + 1) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(calloc(HUGE / 2, 3) == NULL && errno == ENOMEM);
	errno = 0;
	CHECK(calloc(1, HUGE) == NULL && errno == ENOMEM);
	p = malloc(64);
	fill(p, 64, 9);
	errno = 0;
	CHECK(realloc(p, HUGE) == NULL && errno == ENOMEM);
	CHECK(filled(p, 64, 9));
	errno = 0;
	CHECK(reallocarray(p, HUGE / 2, 3) == NULL && errno == ENOMEM);
	CHECK(filled(p, 64, 9));
	void *q = reallocarray(p, 100, 10);
	CHECK(q != NULL && filled(q, 64, 9));
	free(q);

	/* calloc zeroes, also memory that was dirty before. */
	for (int round = 0; round < 3; round++) {
		void *d[64];
		for (int i = 0; i < 64; i++) {
			d[i] = malloc(16 * (size_t)(i + 1));
			memset(d[i], 0xff, 16 * (size_t)(i + 1));
		}
		for (int i = 0; i < 64; i++)
			free(d[i]);
		for (int i = 0; i < 64; i++) {
			unsigned char *c = calloc((size_t)i + 1, 16);
			CHECK(c != NULL);
			for (int k = 0; k < 16 * (i + 1); k++)
				CHECK(c[k] == 0);
			free(c);
		}
	}

	/* realloc keeps the contents, growing and shrinking, across the heap
	 * and mmap sizes. */
	size_t steps[] = {1,      17,     100,     1000, 5000,
	                  100000, 140000, 1 << 20, 3000, 8};
	size_t prev = 1;
	p = malloc(1);
	fill(p, 1, 5);
	for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
		q = realloc(p, steps[i]);
		CHECK(q != NULL);
		CHECK(filled(q, prev < steps[i] ? prev : steps[i], 5));
		fill(q, steps[i], 5);
		prev = steps[i];
		p = q;
	}
	free(p);

	/* free_sized and free_aligned_sized take what malloc and aligned_alloc
	 * give. */
	p = malloc(40);
	free_sized(p, 40);
	p = aligned_alloc(256, 1000);
	CHECK(p != NULL && aligned_to(p, 256));
	free_aligned_sized(p, 256, 1000);
	p = malloc(300000);
	free_sized(p, 300000);
}

/* ---- alignment up to a page and beyond ---- */

static void case_align(void)
{
	static const size_t sizes[] = {1,     24,     1000,   4096,
	                               70000, 200000, 1 << 20};
	enum { NS = sizeof sizes / sizeof *sizes, NA = 21 };
	void *blocks[NA][NS];
	unsigned seed = 1;
	for (int a = 3; a < NA; a++) { /* 8 B .. 1 MiB */
		size_t align = (size_t)1 << a;
		for (int s = 0; s < NS; s++) {
			void *p = (void *)1;
			CHECK(posix_memalign(&p, align, sizes[s]) == 0);
			CHECK(p != NULL && aligned_to(p, align));
			size_t u = malloc_usable_size(p);
			CHECK(u >= sizes[s]);
			fill(p, u, seed++);
			blocks[a][s] = p;
		}
	}
	seed = 1;
	for (int a = 3; a < NA; a++)
		for (int s = 0; s < NS; s++) {
			void *p = blocks[a][s];
			CHECK(filled(p, malloc_usable_size(p), seed++));
		}
	/* Free in an order unlike the allocation order. */
	for (int s = NS - 1; s >= 0; s--)
		for (int a = 3; a < NA; a++)
			free(blocks[a][s]);

	/* 2 MiB alignment, and realloc of an aligned block keeps contents. */
	void *p = NULL;
	CHECK(posix_memalign(&p, 2 << 20, 3 << 20) == 0 &&
	      aligned_to(p, 2 << 20));
	fill(p, 3 << 20, 11);
	p = realloc(p, 5 << 20);
	CHECK(p != NULL && filled(p, 3 << 20, 11));
	free(p);
	CHECK(posix_memalign(&p, 65536, 100) == 0 && aligned_to(p, 65536));
	fill(p, 100, 12);
	p = realloc(p, 10000);
	CHECK(p != NULL && filled(p, 100, 12));
	free(p);

	/* posix_memalign: EINVAL or ENOMEM leave *memptr and errno alone;
	 * size 0 gives a unique pointer. */
	void *keep = &keep;
	p = keep;
	errno = 77;
	CHECK(posix_memalign(&p, opaque(24), 10) == EINVAL && p == keep);
	CHECK(posix_memalign(&p, opaque(4), 10) == EINVAL && p == keep);
	CHECK(posix_memalign(&p, opaque(0), 10) == EINVAL && p == keep);
	CHECK(posix_memalign(&p, 64, HUGE) == ENOMEM && p == keep);
	CHECK(posix_memalign(&p, (size_t)1 << 62, (size_t)1 << 62) == ENOMEM &&
	      p == keep);
	CHECK(errno == 77);
	void *p0 = NULL, *p1 = NULL;
	CHECK(posix_memalign(&p0, 64, 0) == 0 && p0 && aligned_to(p0, 64));
	CHECK(posix_memalign(&p1, 64, 0) == 0 && p1 && p1 != p0);
	free(p0);
	free(p1);

	/* aligned_alloc: a power of two, else NULL and EINVAL. */
	errno = 0;
	CHECK(aligned_alloc(opaque(3), 10) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(aligned_alloc(opaque(0), 10) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(aligned_alloc(opaque(48), 96) == NULL && errno == EINVAL);
	p = aligned_alloc(1, 10); /* 1 is a power of two */
	CHECK(p != NULL);
	free(p);
	p = aligned_alloc(4096, 0);
	CHECK(p != NULL && aligned_to(p, 4096));
	free(p);
	p = aligned_alloc(64, 100); /* size not a multiple: fine since C17 */
	CHECK(p != NULL && aligned_to(p, 64));
	free(p);

	/* memalign: like glibc, rounds a bad alignment up to a power of two,
	 * takes 0, and refuses alignments beyond SIZE_MAX / 2 + 1. */
	p = memalign(opaque(24), 100);
	CHECK(p != NULL && aligned_to(p, 32));
	free(p);
	p = memalign(opaque(100), 100);
	CHECK(p != NULL && aligned_to(p, 128));
	free(p);
	p = memalign(opaque(3000), 10);
	CHECK(p != NULL && aligned_to(p, 4096));
	free(p);
	p = memalign(opaque(0), 10);
	CHECK(p != NULL);
	free(p);
	p = memalign(8192, 0);
	CHECK(p != NULL && aligned_to(p, 8192));
	free(p);
	errno = 0;
	CHECK(memalign(HUGE / 2 + 2, 10) == NULL && errno == EINVAL);
	errno = 0;
	CHECK(memalign(64, HUGE - 10) == NULL && errno == ENOMEM);

	/* valloc and pvalloc: page aligned; pvalloc rounds up to pages. */
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	p = valloc(10);
	CHECK(p != NULL && aligned_to(p, page));
	fill(p, 10, 1);
	free(p);
	p = valloc(0);
	CHECK(p != NULL && aligned_to(p, page));
	free(p);
	p = pvalloc(1);
	CHECK(p != NULL && aligned_to(p, page));
	CHECK(malloc_usable_size(p) >= page);
	fill(p, page, 2);
	free(p);
	p = pvalloc(page + 1);
	CHECK(p != NULL && aligned_to(p, page));
	CHECK(malloc_usable_size(p) >= 2 * page);
	fill(p, 2 * page, 3);
	free(p);
	p = pvalloc(0);
	CHECK(p != NULL && aligned_to(p, page));
	free(p);
	errno = 0;
	CHECK(pvalloc(HUGE - 10) == NULL && errno == ENOMEM);
}

/* ---- malloc_usable_size: every byte it promises is writable ---- */

static void case_usable(void)
{
	enum { LIVE = 96 };
	void *live[LIVE] = {0};
	unsigned seeds[LIVE] = {0};
	size_t extra[] = {65535,  65536,   131071, 131072, 131073, 262144,
	                  300001, 1 << 20, 4095,   4096,   4097};
	size_t n_extra = sizeof extra / sizeof *extra;
	for (size_t i = 0; i < 2200 + n_extra; i++) {
		size_t size = i < 2200 ? i : extra[i - 2200];
		size_t slot = rnd() % LIVE;
		if (live[slot]) {
			CHECK(filled(live[slot], malloc_usable_size(live[slot]),
			             seeds[slot]));
			free(live[slot]);
		}
		void *p;
		switch (i % 4) {
		case 0:
			p = malloc(size);
			break;
		case 1:
			p = calloc(1, size);
			break;
		case 2:
			p = aligned_alloc(64, size);
			break;
		default:
			p = realloc(malloc(size / 2 + 1), size);
			break;
		}
		CHECK(p != NULL);
		size_t u = malloc_usable_size(p);
		CHECK(u >= size);
		fill(p, u, (unsigned)i);
		live[slot] = p;
		seeds[slot] = (unsigned)i;
	}
	/* Grow some in place or not: the new usable size is writable too. */
	for (size_t slot = 0; slot < LIVE; slot += 2) {
		size_t u = malloc_usable_size(live[slot]);
		void *q = realloc(live[slot], u + 1 + rnd() % 3000);
		CHECK(q != NULL);
		CHECK(filled(q, u, seeds[slot]));
		fill(q, malloc_usable_size(q), seeds[slot]);
		live[slot] = q;
	}
	for (size_t slot = 0; slot < LIVE; slot++) {
		CHECK(filled(live[slot], malloc_usable_size(live[slot]),
		             seeds[slot]));
		free(live[slot]);
	}
}

/* ---- dlopen, dlsym, dlerror, dlclose ---- */

typedef void *(*alloc_fn)(size_t);
typedef void (*free_fn)(void *);
typedef int (*ok_fn)(void);
typedef uintptr_t (*tls_fn)(unsigned);

static void *open_module(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "FAIL: dlopen %s: %s\n", path, dlerror());
		exit(1);
	}
	return h;
}

static void case_dlopen(const char *module)
{
	CHECK(module != NULL);
	for (int round = 0; round < 50; round++) {
		void *h = open_module(module);
		alloc_fn mod_alloc = (alloc_fn)dlsym(h, "dlmod_alloc");
		free_fn mod_free = (free_fn)dlsym(h, "dlmod_free");
		ok_fn ctor_ok = (ok_fn)dlsym(h, "dlmod_ctor_ok");
		CHECK(mod_alloc && mod_free && ctor_ok);
		CHECK(ctor_ok());
		/* Blocks cross the module boundary both ways. */
		unsigned char *p = mod_alloc(100 + (size_t)round * 1000);
		CHECK(p != NULL && p[0] == 0xa5 && p[99] == 0xa5);
		free(p);
		p = malloc(200);
		CHECK(p != NULL);
		mod_free(p);
		/* dlerror's message is allocated by the C library. */
		CHECK(dlsym(h, "no_such_symbol") == NULL);
		const char *e = dlerror();
		CHECK(e != NULL && strstr(e, "no_such_symbol") != NULL);
		CHECK(dlclose(h) == 0);
	}
	CHECK(dlopen("/nonexistent/libnothing.so", RTLD_NOW) == NULL);
	CHECK(dlerror() != NULL);
#ifndef DROPIN_STATIC
	/* dlsym(RTLD_NEXT, "malloc") from the program gives the malloc after
	 * the program in the search order: libosalloc-malloc's (when it is
	 * linked into the program, the C library's: not tested). */
	alloc_fn next_malloc = (alloc_fn)dlsym(RTLD_NEXT, "malloc");
	CHECK(next_malloc != NULL);
	void *p = next_malloc(64);
	CHECK(p != NULL);
	free(p);
#endif
	/* Not checked: dlvsym(RTLD_DEFAULT, "malloc", "GLIBC_2.2.5") asks
	 * for that very version and so finds the C library's malloc, whose
	 * blocks free() rightly rejects (see osalloc-malloc(7)). */
}

/* ---- thread-local storage set-up in new threads ---- */

static __thread char static_tls[256] = "initialised static TLS";
static tls_fn module_tls;
/* All threads of a generation are alive together, so their TLS blocks must
 * be distinct. */
static pthread_barrier_t tls_barrier;

struct tls_arg {
	unsigned seed;
	uintptr_t tls_addr;
	int ok;
};

static void *tls_thread(void *argp)
{
	struct tls_arg *a = argp;
	/* The very first thing a new thread does is allocate. */
	char *p = malloc(24);
	if (!p)
		return NULL;
	strcpy(p, "first");
	/* The module's TLS block is allocated (malloc) on first use here. */
	a->tls_addr = module_tls(a->seed);
	int ok = a->tls_addr != 0 &&
	         strcmp(static_tls, "initialised static TLS") == 0;
	uint64_t s = a->seed;
	for (int i = 0; i < 2000 && ok; i++) {
		size_t n = 1 + rnd_r(&s) % 3000;
		unsigned char *q = malloc(n);
		ok = q != NULL;
		if (ok) {
			fill(q, n, (unsigned)i);
			ok = filled(q, n, (unsigned)i);
			free(q);
		}
	}
	ok = ok && module_tls(a->seed + 1) == a->tls_addr &&
	     strcmp(p, "first") == 0;
	free(p);
	a->ok = ok;
	pthread_barrier_wait(&tls_barrier);
	return NULL;
}

static void case_tls(const char *module)
{
	CHECK(module != NULL);
	for (int round = 0; round < 3; round++) {
		void *h = open_module(module);
		module_tls = (tls_fn)dlsym(h, "dlmod_tls");
		CHECK(module_tls != NULL);
		CHECK(module_tls(7) != 0); /* the main thread's block */
		enum { N = 8 };
		CHECK(pthread_barrier_init(&tls_barrier, NULL, N) == 0);
		for (int gen = 0; gen < 10; gen++) {
			pthread_t t[N];
			struct tls_arg args[N];
			for (int i = 0; i < N; i++) {
				args[i] = (struct tls_arg){
				    (unsigned)(gen * N + i), 0, 0};
				CHECK(pthread_create(&t[i], NULL, tls_thread,
				                     &args[i]) == 0);
			}
			for (int i = 0; i < N; i++)
				CHECK(pthread_join(t[i], NULL) == 0);
			for (int i = 0; i < N; i++) {
				CHECK(args[i].ok);
				for (int j = 0; j < i; j++)
					CHECK(args[i].tls_addr !=
					      args[j].tls_addr);
			}
		}
		CHECK(pthread_barrier_destroy(&tls_barrier) == 0);
		module_tls = NULL;
		CHECK(dlclose(h) == 0);
	}
}

/* ---- fork() from a threaded program; the child allocates ---- */

static atomic_int stop_workers;

static void *alloc_worker(void *arg)
{
	uint64_t s = (uintptr_t)arg * 77 + 1;
	enum { SLOTS = 64 };
	void *slot[SLOTS] = {0};
	for (unsigned n = 1;
	     !atomic_load_explicit(&stop_workers, memory_order_relaxed); n++) {
		/* On 2 cores, leave the forking thread and its children some
		 * CPU. */
		if (n % 512 == 0)
			usleep(100);
		unsigned r = rnd_r(&s);
		size_t i = r % SLOTS;
		size_t n = (r >> 8) % 100 == 0 ? 200000 : 1 + (r >> 8) % 2000;
		if (slot[i] && (r & 1)) {
			void *q = realloc(slot[i], n);
			if (q)
				slot[i] = q;
		} else {
			free(slot[i]);
			slot[i] = malloc(n);
			if (slot[i])
				memset(slot[i], (int)i, n < 64 ? n : 64);
		}
	}
	for (size_t i = 0; i < SLOTS; i++)
		free(slot[i]);
	return NULL;
}

static void *child_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < 1000; i++) {
		void *p = malloc(1 + (size_t)i * 3);
		if (!p)
			return (void *)1;
		free(p);
	}
	return NULL;
}

/* In the child: allocate every kind of block, also from a new thread. */
static int child_work(int round)
{
	void *p[200];
	for (int i = 0; i < 200; i++) {
		size_t n = i % 50 == 0 ? 300000 : 1 + (size_t)i * 37;
		p[i] = malloc(n);
		if (!p[i])
			return 2;
		memset(p[i], i, n);
	}
	for (int i = 0; i < 200; i += 2)
		free(p[i]);
	pthread_t t;
	void *res = (void *)1;
	if (pthread_create(&t, NULL, child_thread, NULL) != 0 ||
	    pthread_join(t, &res) != 0 || res != NULL)
		return 3;
	for (int i = 1; i < 200; i += 2)
		free(p[i]);
	char *s = NULL;
	if (asprintf(&s, "child %d", round) < 0)
		return 4;
	free(s);
	return 0;
}

static void case_fork(void)
{
	enum { WORKERS = 2, FORKS = 20 };
	pthread_t t[WORKERS];
	for (uintptr_t i = 0; i < WORKERS; i++)
		CHECK(pthread_create(&t[i], NULL, alloc_worker, (void *)i) ==
		      0);
	for (int round = 0; round < FORKS; round++) {
		/* Let the workers get into the allocator. */
		for (int i = 0; i < 200; i++)
			free(malloc(1 + (size_t)i * 13));
		pid_t pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			alarm(20); /* a deadlocked child dies of SIGALRM */
			int rc = child_work(round);
			if (round % 2)
				exit(rc); /* runs atexit handlers (stats) */
			_exit(rc);
		}
		int status;
		CHECK(waitpid(pid, &status, 0) == pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr,
			        "FAIL: fork round %d: child status %#x\n",
			        round, (unsigned)status);
			exit(1);
		}
	}
	atomic_store(&stop_workers, 1);
	for (int i = 0; i < WORKERS; i++)
		CHECK(pthread_join(t[i], NULL) == 0);
}

/* ---- threads exit while others hold their blocks ---- */

enum { TE_THREADS = 4, TE_BLOCKS = 300 };

struct te_gen {
	void *block[TE_THREADS][TE_BLOCKS];
	size_t size[TE_THREADS][TE_BLOCKS];
};

struct te_arg {
	struct te_gen *gen;
	int index;
	int ok;
};

static size_t te_size(uint64_t *s)
{
	unsigned r = rnd_r(s);
	if (r % 64 == 0)
		return 140000 + r % 100000; /* mmap'd */
	return 1 + (r >> 6) % 1500;         /* mostly cached sizes */
}

static void *te_producer(void *argp)
{
	struct te_arg *a = argp;
	uint64_t s = (uint64_t)a->index * 1000003 + 17;
	for (int i = 0; i < TE_BLOCKS; i++) {
		size_t n = te_size(&s);
		void *p = malloc(n);
		if (!p)
			return NULL;
		fill(p, n, (unsigned)(a->index + i));
		a->gen->block[a->index][i] = p;
		a->gen->size[a->index][i] = n;
		/* Some churn, so the thread's cache holds blocks at exit. */
		free(malloc(n));
	}
	a->ok = 1;
	return NULL;
}

/* Frees the odd blocks of a dead generation, from another thread. */
static void *te_consumer(void *argp)
{
	struct te_arg *a = argp;
	for (int i = 1; i < TE_BLOCKS; i += 2) {
		void *p = a->gen->block[a->index][i];
		if (!filled(p, a->gen->size[a->index][i],
		            (unsigned)(a->index + i)))
			return NULL;
		free(p);
	}
	a->ok = 1;
	return NULL;
}

static long rss_pages(void)
{
	long size = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld", &size, &rss) != 2)
		rss = 0;
	fclose(f);
	return rss;
}

static void case_threadexit(void)
{
	static struct te_gen gens[2];
	long rss_early = 0;
	for (int g = 0; g < 60; g++) {
		struct te_gen *cur = &gens[g % 2], *old = &gens[(g + 1) % 2];
		pthread_t prod[TE_THREADS], cons[TE_THREADS];
		struct te_arg pa[TE_THREADS], ca[TE_THREADS];
		/* Producers of this generation run while the consumers free the
		 * previous generation's blocks, whose threads are gone. */
		for (int i = 0; i < TE_THREADS; i++) {
			pa[i] = (struct te_arg){cur, i, 0};
			CHECK(pthread_create(&prod[i], NULL, te_producer,
			                     &pa[i]) == 0);
			if (g > 0) {
				ca[i] = (struct te_arg){old, i, 0};
				CHECK(pthread_create(&cons[i], NULL,
				                     te_consumer, &ca[i]) == 0);
			}
		}
		for (int i = 0; i < TE_THREADS; i++) {
			CHECK(pthread_join(prod[i], NULL) == 0);
			CHECK(pa[i].ok);
			if (g > 0) {
				CHECK(pthread_join(cons[i], NULL) == 0);
				CHECK(ca[i].ok);
			}
		}
		/* The main thread frees the even blocks of the old generation.
		 */
		if (g > 0)
			for (int i = 0; i < TE_THREADS; i++)
				for (int k = 0; k < TE_BLOCKS; k += 2) {
					CHECK(filled(old->block[i][k],
					             old->size[i][k],
					             (unsigned)(i + k)));
					free(old->block[i][k]);
				}
		if (g == 10)
			rss_early = rss_pages();
	}
	struct te_gen *last = &gens[59 % 2];
	for (int i = 0; i < TE_THREADS; i++)
		for (int k = 0; k < TE_BLOCKS; k++) {
			CHECK(filled(last->block[i][k], last->size[i][k],
			             (unsigned)(i + k)));
			free(last->block[i][k]);
		}
	/* Memory of dead threads is reused: no growth with the generations
	 * (a leak of one generation's blocks is ~6 MiB, 1500 pages). */
	long rss_late = rss_pages();
	if (rss_early && rss_late > rss_early + 3000) {
		fprintf(stderr, "FAIL: RSS grew from %ld to %ld pages\n",
		        rss_early, rss_late);
		exit(1);
	}
}

/* ---- a quick mix of everything from several threads ---- */

static void *mix_thread(void *arg)
{
	uint64_t s = (uintptr_t)arg + 99;
	enum { SLOTS = 128 };
	void *slot[SLOTS] = {0};
	size_t size[SLOTS] = {0};
	for (int i = 0; i < 50000; i++) {
		unsigned r = rnd_r(&s);
		size_t k = r % SLOTS;
		if (slot[k]) {
			if (!filled(slot[k], size[k] < 32 ? size[k] : 32,
			            (unsigned)k))
				return (void *)1;
			free(slot[k]);
		}
		size_t n = (r >> 8) % 256 == 0 ? 150000 : (r >> 8) % 1200;
		void *p;
		switch ((r >> 20) % 4) {
		case 0:
			p = malloc(n);
			break;
		case 1:
			p = calloc(1, n);
			break;
		case 2:
			p = aligned_alloc(32, n);
			break;
		default:
			p = realloc(NULL, n);
			break;
		}
		if (!p)
			return (void *)2;
		fill(p, n < 32 ? n : 32, (unsigned)k);
		slot[k] = p;
		size[k] = n;
	}
	for (size_t k = 0; k < SLOTS; k++)
		free(slot[k]);
	return NULL;
}

static void case_threads(void)
{
	enum { N = 4 };
	pthread_t t[N];
	for (uintptr_t i = 0; i < N; i++)
		CHECK(pthread_create(&t[i], NULL, mix_thread, (void *)i) == 0);
	for (int i = 0; i < N; i++) {
		void *res;
		CHECK(pthread_join(t[i], &res) == 0 && res == NULL);
	}
}

/* ---- misuse: must end in SIGABRT with osalloc's report ---- */

static void announce(const void *p)
{
	printf("%p\n", p);
	fflush(stdout);
}

static void case_misuse(const char *what)
{
	void *volatile p;
	if (strcmp(what, "double-free") == 0) {
		p = malloc(32);
		announce(p);
		free(p);
		free(p);
	} else if (strcmp(what, "double-free-large") == 0) {
		p = malloc(1 << 20);
		announce(p);
		free(p);
		free(p);
	} else if (strcmp(what, "realloc-freed") == 0) {
		p = malloc(48);
		announce(p);
		free(p);
		p = realloc(p, 100);
	} else if (strcmp(what, "free-stack") == 0) {
		static _Alignas(64) char not_heap[256];
		p = not_heap + 64;
		announce(p);
		free(p);
	} else if (strcmp(what, "free-interior") == 0) {
		char *b = malloc(200);
		p = b + 64;
		announce(p);
		free(p);
	} else if (strcmp(what, "usable-freed") == 0) {
		p = malloc(4000);
		announce(p);
		free(p);
		printf("%zu\n", malloc_usable_size(p));
	} else if (strcmp(what, "free-sized-twice") == 0) {
		p = malloc(64);
		announce(p);
		free_sized(p, 64);
		free_sized(p, 64);
	} else {
		fprintf(stderr, "unknown misuse case %s\n", what);
		exit(2);
	}
	fprintf(stderr, "FAIL: misuse %s was not detected\n", what);
	exit(1);
}

/* ---- stderr closed before exit (stats=1 must still print) ---- */

static void case_closed_stderr(void)
{
	free(malloc(10));
	fclose(stderr);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(
		    stderr,
		    "usage: %s CASE [MODULE]\n"
		    "cases: interposed ctor semantics align usable dlopen "
		    "MODULE\n"
		    "       tls MODULE fork threadexit threads closed-stderr\n"
		    "       "
		    "misuse-{double-free,double-free-large,realloc-freed,\n"
		    "       "
		    "free-stack,free-interior,usable-freed,free-sized-twice}\n",
		    argv[0]);
		return 2;
	}
	const char *c = argv[1], *arg = argc > 2 ? argv[2] : NULL;
	/* DROPIN_TEST_ANY_MALLOC=1 runs a case on whatever malloc the program
	 * got (for comparisons with the C library's). */
	const char *any = getenv("DROPIN_TEST_ANY_MALLOC");
	if (!any || strcmp(any, "1") != 0)
		check_interposed();
	if (strcmp(c, "interposed") == 0)
		;
	else if (strcmp(c, "ctor") == 0)
		case_ctor();
	else if (strcmp(c, "semantics") == 0)
		case_semantics();
	else if (strcmp(c, "align") == 0)
		case_align();
	else if (strcmp(c, "usable") == 0)
		case_usable();
	else if (strcmp(c, "dlopen") == 0)
		case_dlopen(arg);
	else if (strcmp(c, "tls") == 0)
		case_tls(arg);
	else if (strcmp(c, "fork") == 0)
		case_fork();
	else if (strcmp(c, "threadexit") == 0)
		case_threadexit();
	else if (strcmp(c, "threads") == 0)
		case_threads();
	else if (strcmp(c, "closed-stderr") == 0)
		case_closed_stderr();
	else if (strncmp(c, "misuse-", 7) == 0)
		case_misuse(c + 7);
	else {
		fprintf(stderr, "unknown case %s\n", c);
		return 2;
	}
	return 0;
}
