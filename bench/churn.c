/* churn.c - workload 1, small churn: about 10,000 live blocks of random
 * sizes 8-512 bytes; each step frees a random live block (checking its
 * contents) and allocates a new one of a new random size in its place.
 */
#include "bench.h"

enum {
	LIVE = 10000,     /* live blocks */
	STEPS = 15000000, /* free+malloc replacements at scale 1 */
	MIN_SIZE = 8,
	MAX_SIZE = 512,
};

int main(int argc, char **argv)
{
	bench_opts o = bench_init("churn", argc, argv);
	long steps = bench_scaled(&o, STEPS);
	void **ptr = bench_table(LIVE * sizeof(void *));
	uint32_t *size = bench_table(LIVE * sizeof(uint32_t));
	unsigned long long live = 0, peak = 0, ops = 0;
	bench_rng r;
	double t0, t1;
	long i;

	bench_seed(&r, 1);
	t0 = bench_now();
	for (i = 0; i < LIVE; i++) {
		size[i] = (uint32_t)bench_range(&r, MIN_SIZE, MAX_SIZE);
		ptr[i] = bench_new(size[i]);
		live += size[i];
		ops++;
	}
	peak = live;
	for (i = 0; i < steps; i++) {
		size_t k = (size_t)(bench_next(&r) % LIVE);
		size_t n = bench_range(&r, MIN_SIZE, MAX_SIZE);

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
	bench_result("churn", 1, t1 - t0, ops, peak, "");
	return 0;
}
