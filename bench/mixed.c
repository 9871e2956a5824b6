/* mixed.c - workload 2, mixed sizes: log-uniform sizes from 8 bytes to
 * 64 KiB (most blocks small, most bytes in big ones) with a bounded live
 * set of 4,000 blocks (about 30 MB); each step replaces a random block.
 * Every page of a block is written, so peak RSS is meaningful.
 */
#include "bench.h"

enum {
	LIVE = 4000,     /* live blocks */
	STEPS = 2000000, /* free+malloc replacements at scale 1 */
	MIN_SIZE = 8,
	MAX_SIZE = 64 * 1024,
};

int main(int argc, char **argv)
{
	bench_opts o = bench_init("mixed", argc, argv);
	long steps = bench_scaled(&o, STEPS);
	void **ptr = bench_table(LIVE * sizeof(void *));
	uint32_t *size = bench_table(LIVE * sizeof(uint32_t));
	unsigned long long live = 0, peak = 0, ops = 0;
	bench_rng r;
	double t0, t1;
	long i;

	bench_seed(&r, 2);
	t0 = bench_now();
	for (i = 0; i < LIVE; i++) {
		size[i] = (uint32_t)bench_logsize(&r, MIN_SIZE, MAX_SIZE);
		ptr[i] = bench_new(size[i]);
		live += size[i];
		ops++;
	}
	peak = live;
	for (i = 0; i < steps; i++) {
		size_t k = (size_t)(bench_next(&r) % LIVE);
		size_t n = bench_logsize(&r, MIN_SIZE, MAX_SIZE);

		bench_delete(ptr[k], size[k]);
		live -= size[k];
		ptr[k] = bench_new(n);
		size[k] = (uint32_t)n;
		live += n;
		if (live > peak)
			peak = live;
		ops += 2;
	}
	for (i = 0; i < LIVE; i++) {
		bench_delete(ptr[i], size[i]);
		ops++;
	}
	t1 = bench_now();
	bench_result("mixed", 1, t1 - t0, ops, peak, "");
	return 0;
}
