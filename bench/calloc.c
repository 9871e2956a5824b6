/* calloc.c - workload 4, large zeroed buffers: calloc of 32 KiB to 4 MiB
 * (log-uniform), checked to be zero, used (a word written every 256
 * bytes, so every page is touched) and freed; 8 buffers are live at a time,
 * so memory can be recycled and must then really be cleared.
 */
#include "bench.h"

enum {
	LIVE = 8,    /* buffers live at a time */
	STEPS = 300, /* calloc+free pairs at scale 1 */
	MIN_SIZE = 32 * 1024,
	MAX_SIZE = 4 * 1024 * 1024,
	STRIDE = 256, /* bytes between checked/written words */
};

static void buffer_use(unsigned char *b, size_t size, uint64_t tag)
{
	size_t off;

	if (b[size - 1] != 0)
		bench_fail("calloc(1, %zu) = %p: last byte not zero", size,
		           (void *)b);
	for (off = 0; off + 8 <= size; off += STRIDE) {
		if (*(uint64_t *)(b + off) != 0)
			bench_fail("calloc(1, %zu) = %p: byte %zu not zero",
			           size, (void *)b, off);
		*(uint64_t *)(b + off) = tag ^ off;
	}
}

static void buffer_check(const unsigned char *b, size_t size, uint64_t tag)
{
	size_t off;

	for (off = 0; off + 8 <= size; off += 16 * STRIDE)
		if (*(const uint64_t *)(b + off) != (tag ^ off))
			bench_fail("buffer %p (%zu bytes): word at %zu changed",
			           (const void *)b, size, off);
}

int main(int argc, char **argv)
{
	bench_opts o = bench_init("calloc", argc, argv);
	long steps = bench_scaled(&o, STEPS);
	unsigned char *ptr[LIVE] = {0};
	size_t size[LIVE] = {0};
	unsigned long long live = 0, peak = 0, ops = 0;
	bench_rng r;
	double t0, t1;
	long i;

	bench_seed(&r, 4);
	t0 = bench_now();
	for (i = 0; i < steps + LIVE; i++) {
		size_t k = (size_t)i % LIVE;

		if (ptr[k] != NULL) {
			buffer_check(ptr[k], size[k],
			             bench_tag(ptr[k], size[k]));
			BENCH_FREE(ptr[k]);
			live -= size[k];
			ptr[k] = NULL;
			ops++;
		}
		if (i >= steps)
			continue;
		size[k] = bench_logsize(&r, MIN_SIZE, MAX_SIZE);
		ptr[k] = BENCH_CALLOC(1, size[k]);
		if (ptr[k] == NULL)
			bench_fail("calloc(1, %zu) returned NULL", size[k]);
		ops++;
		buffer_use(ptr[k], size[k], bench_tag(ptr[k], size[k]));
		live += size[k];
		if (live > peak)
			peak = live;
	}
	t1 = bench_now();
	bench_result("calloc", 1, t1 - t0, ops, peak, "");
	return 0;
}
