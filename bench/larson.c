/* larson.c - workload 6, server-like (after Larson and Krishnan): each of
 * the -t N threads owns a table of 1,000 blocks (8-1000 bytes) and replaces
 * random ones (check, free, allocate, tag).  After a round of steps it
 * hands its table to a new thread it creates, and exits; the new thread
 * frees the blocks the old one allocated.  Like a server that serves each
 * connection on a new thread while the data outlives the thread.
 */
#include <pthread.h>
#include <semaphore.h>

#include "bench.h"

enum {
	SLOTS = 1000,      /* blocks a thread holds */
	STEPS = 20000,     /* replacements per thread generation */
	GENERATIONS = 600, /* threads in each lineage at scale 1 */
	MIN_SIZE = 8,
	MAX_SIZE = 1000,
};

typedef struct lineage {
	int id;
	long generations; /* still to run, including the current one */
	pthread_t prev;   /* thread to join (the predecessor) */
	int has_prev;
	void *ptr[SLOTS];
	uint32_t size[SLOTS];
	bench_rng r;
	unsigned long long ops, live, peak;
	sem_t done;
} lineage;

static void *generation_run(void *arg)
{
	lineage *l = arg;
	long i;

	if (l->has_prev)
		pthread_join(l->prev, NULL);
	for (i = 0; i < STEPS; i++) {
		size_t k = (size_t)(bench_next(&l->r) % SLOTS);
		size_t n = bench_range(&l->r, MIN_SIZE, MAX_SIZE);

		bench_delete(l->ptr[k], l->size[k]);
		l->live -= l->size[k];
		l->ptr[k] = bench_new(n);
		l->size[k] = (uint32_t)n;
		l->live += n;
		if (l->live > l->peak)
			l->peak = l->live;
	}
	l->ops += 2 * STEPS;
	if (--l->generations > 0) {
		pthread_t next;

		/* set before the successor starts: it joins this thread */
		l->prev = pthread_self();
		l->has_prev = 1;
		if (pthread_create(&next, NULL, generation_run, l) != 0)
			bench_fail("pthread_create failed");
	} else {
		pthread_detach(pthread_self());
		sem_post(&l->done);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	bench_opts o = bench_init("larson", argc, argv);
	int n = o.threads, t;
	long gens = bench_scaled(&o, GENERATIONS);
	lineage *l = bench_table((size_t)n * sizeof(lineage));
	unsigned long long ops = 0, peak = 0;
	pthread_t first;
	double t0, t1;
	int i;

	t0 = bench_now();
	for (t = 0; t < n; t++) {
		l[t].id = t;
		l[t].generations = gens;
		bench_seed(&l[t].r, 6000 + (uint64_t)t);
		sem_init(&l[t].done, 0, 0);
		for (i = 0; i < SLOTS; i++) {
			l[t].size[i] =
			    (uint32_t)bench_range(&l[t].r, MIN_SIZE, MAX_SIZE);
			l[t].ptr[i] = bench_new(l[t].size[i]);
			l[t].live += l[t].size[i];
		}
		l[t].peak = l[t].live;
		l[t].ops = SLOTS;
	}
	for (t = 0; t < n; t++) {
		/* joined by its successor (or detached, if it is the last) */
		if (pthread_create(&first, NULL, generation_run, &l[t]) != 0)
			bench_fail("pthread_create failed");
	}
	for (t = 0; t < n; t++)
		sem_wait(&l[t].done);
	for (t = 0; t < n; t++) {
		for (i = 0; i < SLOTS; i++)
			bench_delete(l[t].ptr[i], l[t].size[i]);
		ops += l[t].ops + SLOTS;
		peak += l[t].peak;
	}
	t1 = bench_now();
	bench_result("larson", n, t1 - t0, ops, peak, "");
	return 0;
}
