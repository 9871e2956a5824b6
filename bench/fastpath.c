/* fastpath.c - instructions per small malloc+free pair on the fast path,
 * for run.sh to count with valgrind --tool=callgrind: after a warm-up it
 * does K pairs of malloc(32)/free (K from the command line, default
 * 100000).  run.sh runs it with K and 2K and divides the difference of the
 * instruction totals by K, which cancels start-up and exit.  The loop
 * itself adds about 4 instructions per pair.
 */
#include "bench.h"

enum {
	WARMUP = 10000,
	SIZE = 32,
};

static void pairs(long k)
{
	long i;

	for (i = 0; i < k; i++) {
		void *p = BENCH_MALLOC(SIZE);

		/* keep the compiler from eliding the pair */
		__asm__ volatile("" : : "r"(p) : "memory");
		BENCH_FREE(p);
	}
}

int main(int argc, char **argv)
{
	long k = argc > 1 ? atol(argv[1]) : 100000;
	void *p = BENCH_MALLOC(SIZE);

	if (p == NULL || k < 0)
		return 1;
	BENCH_FREE(p);
	pairs(WARMUP);
	pairs(k);
	return 0;
}
