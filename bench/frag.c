/* frag.c - workload 7, fragmentation: phases that change the size of what
 * is allocated.  Each phase allocates blocks of its size range until 32 MiB
 * are live, then frees a random 80% of everything live (old phases' blocks
 * included), leaving survivors scattered through the heap.  The next phase
 * can only stay small if the allocator reuses, coalesces and splits the
 * holes.  The figure is peak RSS against peak live bytes (rss_over_live).
 */
#include "bench.h"

enum {
	TARGET = 32 * 1024 * 1024, /* live bytes each phase fills up to */
	MAX_BLOCKS = 1 << 20,      /* slot table size */
	CYCLES = 3,                /* passes over the phase list at scale 1 */
	KEEP_PERCENT = 20,         /* survivors of each free sweep */
};

static const struct phase {
	uint32_t min, max;
} phases[] = {
    {16, 256},      /* small objects */
    {1024, 16384},  /* buffers */
    {64, 512},      /* small again, other sizes */
    {16384, 65536}, /* big, still below the mmap threshold */
    {8, 128},       /* tiny */
    {256, 4096},    /* medium */
};

int main(int argc, char **argv)
{
	bench_opts o = bench_init("frag", argc, argv);
	long cycles = bench_scaled(&o, CYCLES), c;
	void **ptr = bench_table(MAX_BLOCKS * sizeof(void *));
	uint32_t *size = bench_table(MAX_BLOCKS * sizeof(uint32_t));
	unsigned long long live = 0, peak = 0, ops = 0;
	size_t count = 0, i, j;
	bench_rng r;
	double t0, t1;
	char extra[64];

	bench_seed(&r, 7);
	t0 = bench_now();
	for (c = 0; c < cycles; c++) {
		for (j = 0; j < sizeof(phases) / sizeof(phases[0]); j++) {
			const struct phase *ph = &phases[j];
			size_t kept = 0;

			while (live < TARGET && count < MAX_BLOCKS) {
				size_t n = bench_range(&r, ph->min, ph->max);

				ptr[count] = bench_new(n);
				size[count++] = (uint32_t)n;
				live += n;
				ops++;
			}
			if (live > peak)
				peak = live;
			for (i = 0; i < count; i++) {
				if (bench_next(&r) % 100 < KEEP_PERCENT) {
					ptr[kept] = ptr[i];
					size[kept++] = size[i];
				} else {
					bench_delete(ptr[i], size[i]);
					live -= size[i];
					ops++;
				}
			}
			count = kept;
		}
	}
	for (i = 0; i < count; i++) {
		bench_delete(ptr[i], size[i]);
		ops++;
	}
	t1 = bench_now();
	snprintf(extra, sizeof(extra), " rss_over_live=%.3f",
	         (double)bench_maxrss_kb() * 1024.0 / (double)peak);
	bench_result("frag", 1, t1 - t0, ops, peak, extra);
	return 0;
}
