/* realloc.c - workload 3, realloc growth: 32 objects grown side by side,
 * step by step, to 1 MiB, then freed and started again.  Even-numbered
 * objects are vectors (capacity grows by half when full, appends of
 * 64-1024 bytes); odd-numbered ones are strings grown to the exact length
 * on every append of 8-200 bytes, the way naive string building does.
 * After each realloc the first word and the last word written must still
 * be there.
 */
#include "bench.h"

enum {
	OBJECTS = 32,         /* objects growing at the same time */
	TARGET = 1024 * 1024, /* an object is freed when it reaches this */
	LIFETIMES = 240,      /* objects grown to TARGET at scale 1 */
};

typedef struct object {
	unsigned char *p;
	size_t len;  /* bytes written */
	size_t cap;  /* bytes allocated */
	size_t mark; /* offset of the last check word written */
	uint64_t tag;
} object;

static unsigned long long ops;

static void object_check(const object *v, const char *when)
{
	if (*(const uint64_t *)v->p != v->tag ||
	    *(const uint64_t *)(v->p + v->mark) != (v->tag ^ v->mark))
		bench_fail("object %p (%zu bytes) lost its contents %s",
		           (void *)v->p, v->len, when);
}

static void object_grow(object *v, size_t want)
{
	void *q = BENCH_REALLOC(v->p, want);

	if (q == NULL)
		bench_fail("realloc(%p, %zu) returned NULL", (void *)v->p,
		           want);
	v->p = q;
	v->cap = want;
	ops++;
	object_check(v, "after realloc");
}

/* Append n bytes; is_string: exact-size growth, else by half when full. */
static void object_append(object *v, size_t n, int is_string)
{
	size_t end = v->len + n;
	size_t w;

	if (end > v->cap) {
		if (is_string) {
			object_grow(v, end + 1);
		} else {
			size_t cap = v->cap + v->cap / 2;

			object_grow(v, cap < end ? end : cap);
		}
	}
	memset(v->p + v->len, (int)(n & 0x7f) | 1, n);
	/* leave a check word at the last aligned word of the new bytes */
	w = (end - 8) & ~(size_t)7;
	if (w >= v->len && w > 0) {
		*(uint64_t *)(v->p + w) = v->tag ^ w;
		v->mark = w;
	}
	v->len = end;
}

static void object_start(object *v, uint64_t tag)
{
	v->cap = 64;
	v->p = BENCH_MALLOC(v->cap);
	if (v->p == NULL)
		bench_fail("malloc(64) returned NULL");
	ops++;
	v->tag = tag;
	*(uint64_t *)v->p = tag;
	v->len = 16;
	v->mark = 8;
	*(uint64_t *)(v->p + 8) = tag ^ 8;
}

int main(int argc, char **argv)
{
	bench_opts o = bench_init("realloc", argc, argv);
	long lifetimes = bench_scaled(&o, LIFETIMES), done = 0;
	object *obj = bench_table(OBJECTS * sizeof(object));
	unsigned long long live = 0, peak = 0, gen = 0;
	bench_rng r;
	double t0, t1;
	int i;

	bench_seed(&r, 3);
	t0 = bench_now();
	for (i = 0; i < OBJECTS; i++) {
		object_start(&obj[i], bench_mix(++gen));
		live += obj[i].cap;
	}
	while (done < lifetimes) {
		for (i = 0; i < OBJECTS; i++) {
			object *v = &obj[i];
			int is_string = i & 1;
			size_t n = is_string ? bench_range(&r, 8, 200)
			                     : bench_range(&r, 64, 1024);

			live -= v->cap;
			object_append(v, n, is_string);
			if (v->len >= TARGET) {
				object_check(v, "before free");
				BENCH_FREE(v->p);
				ops++;
				done++;
				object_start(v, bench_mix(++gen));
			}
			live += v->cap;
			if (live > peak)
				peak = live;
		}
	}
	for (i = 0; i < OBJECTS; i++) {
		object_check(&obj[i], "before free");
		BENCH_FREE(obj[i].p);
		ops++;
	}
	t1 = bench_now();
	bench_result("realloc", 1, t1 - t0, ops, peak, "");
	return 0;
}
