/* bench.h - what the benchmark workloads share: the allocator under test,
 * a deterministic PRNG, content tags, timing and the RESULT line.
 *
 * Every workload is one C file built in two variants:
 *   -DBENCH_OSALLOC   the os_* functions of libosalloc;
 *   (default)         the standard malloc family: glibc as it is, or a peer
 *                     (jemalloc, tcmalloc, mimalloc) through LD_PRELOAD.
 * Bookkeeping (slot tables, queues) lives in mmap'd memory so that only the
 * workload's own blocks go through the allocator under test.
 */
#ifndef BENCH_H
#define BENCH_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifdef BENCH_OSALLOC
#include "osalloc.h"
#define BENCH_MALLOC(n) os_malloc(n)
#define BENCH_FREE(p) os_free(p)
#define BENCH_REALLOC(p, n) os_realloc((p), (n))
#define BENCH_CALLOC(k, n) os_calloc((k), (n))
#define BENCH_VARIANT "os"
#else
#define BENCH_MALLOC(n) malloc(n)
#define BENCH_FREE(p) free(p)
#define BENCH_REALLOC(p, n) realloc((p), (n))
#define BENCH_CALLOC(k, n) calloc((k), (n))
#define BENCH_VARIANT "std"
#endif

#define BENCH_UNUSED __attribute__((unused))
#define BENCH_NORETURN __attribute__((noreturn))
#define BENCH_PRINTF(f, a) __attribute__((format(printf, f, a)))

enum {
	BENCH_PAGE = 4096, /* stride of the tag words written into a block */
};

/* Workload name, set by bench_init(), used in messages. */
static const char *bench_name = "?";

/* Report a failure of the allocator under test and stop.  A benchmark
 * whose allocator returns NULL or corrupts data must not produce a figure. */
static BENCH_NORETURN BENCH_PRINTF(1, 2) void bench_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL workload=%s variant=%s: ", bench_name,
	        BENCH_VARIANT);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* --- deterministic PRNG (splitmix64), one state per thread --- */

typedef struct bench_rng {
	uint64_t s;
} bench_rng;

static inline uint64_t bench_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t bench_next(bench_rng *r)
{
	r->s += 0x9e3779b97f4a7c15ULL;
	return bench_mix(r->s);
}

static inline void bench_seed(bench_rng *r, uint64_t seed)
{
	r->s = seed * 0x2545f4914f6cdd1dULL + 12345;
}

/* Uniform in [lo, hi] (the slight modulo bias does not matter here). */
static inline size_t bench_range(bench_rng *r, size_t lo, size_t hi)
{
	return lo + (size_t)(bench_next(r) % (uint64_t)(hi - lo + 1));
}

/* Log-uniform size in [lo, hi]: pick a power of two, then a size within
 * its octave (the usual "mostly small, bytes mostly in big blocks"). */
static inline size_t bench_logsize(bench_rng *r, size_t lo, size_t hi)
{
	unsigned lo_bit = 63 - (unsigned)__builtin_clzll(lo);
	unsigned hi_bit = 63 - (unsigned)__builtin_clzll(hi);
	unsigned bit = (unsigned)bench_range(r, lo_bit, hi_bit);
	size_t msb = (size_t)1 << bit;
	size_t n = msb + (size_t)(bench_next(r) % msb);

	return n < lo ? lo : n > hi ? hi : n;
}

/* --- content tags: one word at the start, one per page, one at the end --- */

static inline uint64_t bench_tag(const void *p, size_t size)
{
	return bench_mix((uint64_t)(uintptr_t)p ^ ((uint64_t)size << 40));
}

/* Offset of the last whole word of a block of size bytes (0: none besides
 * the first).  Page words lie strictly between the first and the last. */
static inline size_t bench_last_word(size_t size)
{
	return size >= 16 ? (size - 8) & ~(size_t)7 : 0;
}

/* Write tag into the block: a real program touches what it allocates, and a
 * broken allocator (overlapping blocks, lost contents) is caught on check. */
static inline void bench_fill(void *p, size_t size, uint64_t tag)
{
	unsigned char *b = p;
	size_t last = bench_last_word(size), off;

	*(uint64_t *)b = tag;
	for (off = BENCH_PAGE; off < last; off += BENCH_PAGE)
		*(uint64_t *)(b + off) = tag ^ off;
	if (last != 0)
		*(uint64_t *)(b + last) = ~tag;
}

static inline void bench_check(const void *p, size_t size, uint64_t tag)
{
	const unsigned char *b = p;
	size_t last = bench_last_word(size), off;

	if (*(const uint64_t *)b != tag)
		bench_fail("block %p (%zu bytes): first word changed", p, size);
	for (off = BENCH_PAGE; off < last; off += BENCH_PAGE)
		if (*(const uint64_t *)(b + off) != (tag ^ off))
			bench_fail("block %p (%zu bytes): word at %zu changed",
			           p, size, off);
	if (last != 0 && *(const uint64_t *)(b + last) != ~tag)
		bench_fail("block %p (%zu bytes): last word changed", p, size);
}

/* malloc + fill, failing loudly on NULL. */
static inline void *bench_new(size_t size)
{
	void *p = BENCH_MALLOC(size);

	if (p == NULL)
		bench_fail("malloc(%zu) returned NULL", size);
	/* 16-byte alignment is owed only to blocks that can hold a 16-byte
	 * object (jemalloc rightly gives 8-byte blocks 8-byte alignment). */
	if ((uintptr_t)p % (size < 16 ? 8 : 16) != 0)
		bench_fail("malloc(%zu) returned misaligned %p", size, p);
	bench_fill(p, size, bench_tag(p, size));
	return p;
}

/* check + free. */
static inline void bench_delete(void *p, size_t size)
{
	bench_check(p, size, bench_tag(p, size));
	BENCH_FREE(p);
}

/* --- bookkeeping memory, outside the allocator under test --- */

static inline void *bench_table(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "bench: mmap(%zu): %s\n", bytes,
		        strerror(errno));
		exit(3);
	}
	return p;
}

static inline void bench_table_free(void *p, size_t bytes)
{
	munmap(p, bytes);
}

/* --- time, options, result --- */

static inline double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Options common to every workload: -t THREADS, -n COUNT (workload
 * specific, 0 = default), -s SCALE (work multiplier; also BENCH_SCALE). */
typedef struct bench_opts {
	int threads;
	long count;
	double scale;
} bench_opts;

static inline bench_opts bench_init(const char *name, int argc, char **argv)
{
	bench_opts o = {1, 0, 1.0};
	const char *env = getenv("BENCH_SCALE");
	int c;

	bench_name = name;
	if (env != NULL && *env != '\0')
		o.scale = strtod(env, NULL);
	while ((c = getopt(argc, argv, "t:n:s:")) != -1) {
		switch (c) {
		case 't':
			o.threads = atoi(optarg);
			break;
		case 'n':
			o.count = atol(optarg);
			break;
		case 's':
			o.scale = strtod(optarg, NULL);
			break;
		default:
			fprintf(
			    stderr,
			    "usage: %s [-t threads] [-n count] [-s scale]\n",
			    argv[0]);
			exit(64);
		}
	}
	if (o.threads < 1 || o.threads > 64 || o.count < 0 || !(o.scale > 0)) {
		fprintf(stderr, "%s: bad option value\n", argv[0]);
		exit(64);
	}
	return o;
}

/* Scaled operation count, at least 1. */
static inline long bench_scaled(const bench_opts *o, long n)
{
	double v = (double)n * o->scale;

	return v < 1 ? 1 : (long)v;
}

/* Peak resident set size of the process so far, in KiB. */
static inline long bench_maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* The machine-readable line run.sh reads; extra is "" or " key=value...". */
static inline void bench_result(const char *workload, int threads,
                                double seconds, unsigned long long ops,
                                unsigned long long peak_live, const char *extra)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	printf("RESULT workload=%s variant=%s threads=%d seconds=%.6f ops=%llu "
	       "maxrss_kb=%ld peak_live_bytes=%llu minflt=%ld cpu=%.3f%s\n",
	       workload, BENCH_VARIANT, threads, seconds, ops, ru.ru_maxrss,
	       peak_live, ru.ru_minflt,
	       (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) *
	               1e-6,
	       extra);
	fflush(stdout);
}

#endif /* BENCH_H */
