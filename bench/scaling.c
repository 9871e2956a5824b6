/* scaling.c - workload 8, scaling with the live set: -n LIVE blocks
 * (default 1,000,000) of 16-128 bytes are allocated, then each timed step
 * frees a random live block (checking it) and allocates a new one in its
 * place.  The figure is the time per malloc+free pair (ns_per_pair); only
 * the steady state is timed.
 */
#include "bench.h"

enum {
	DEFAULT_LIVE = 1000000,
	MIN_SIZE = 16,
	MAX_SIZE = 128,
};

/* Timed pairs at scale 1: about the same time for every live-set size. */
static long pairs_for(long live)
{
	if (live <= 10000)
		return 20000000;
	if (live <= 300000)
		return 7000000;
	return 3000000;
}

int main(int argc, char **argv)
{
	bench_opts o = bench_init("scaling", argc, argv);
	long nlive = o.count > 0 ? o.count : DEFAULT_LIVE;
	long pairs = bench_scaled(&o, pairs_for(nlive)), i;
	void **ptr = bench_table((size_t)nlive * sizeof(void *));
	uint32_t *size = bench_table((size_t)nlive * sizeof(uint32_t));
	unsigned long long live = 0, peak = 0;
	bench_rng r;
	double t0, t1;
	char name[32], extra[64];

	bench_seed(&r, 8);
	for (i = 0; i < nlive; i++) {
		size[i] = (uint32_t)bench_range(&r, MIN_SIZE, MAX_SIZE);
		ptr[i] = bench_new(size[i]);
		live += size[i];
	}
	peak = live;
	t0 = bench_now();
	for (i = 0; i < pairs; i++) {
		size_t k = (size_t)(bench_next(&r) % (uint64_t)nlive);
		size_t n = bench_range(&r, MIN_SIZE, MAX_SIZE);

		bench_delete(ptr[k], size[k]);
		live -= size[k];
		ptr[k] = bench_new(n);
		size[k] = (uint32_t)n;
		live += n;
		if (live > peak)
			peak = live;
	}
	t1 = bench_now();
	for (i = 0; i < nlive; i++)
		bench_delete(ptr[i], size[i]);
	snprintf(name, sizeof(name), "scaling-%ld", nlive);
	snprintf(extra, sizeof(extra), " live_blocks=%ld ns_per_pair=%.2f",
	         nlive, (t1 - t0) * 1e9 / (double)pairs);
	bench_result(name, 1, t1 - t0, 2 * (unsigned long long)pairs, peak,
	             extra);
	return 0;
}
