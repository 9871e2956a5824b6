/* prodcons.c - workload 5, producer/consumer: blocks allocated in one
 * thread are freed in another.  The -t N threads form a ring: thread i
 * allocates batches of 64 blocks (8-512 bytes, tagged) and passes them
 * through a single-producer single-consumer queue to thread i+1, which
 * checks and frees them.  Every thread is both producer and consumer, so
 * the work is balanced; with -t 1 a thread passes batches to itself (the
 * same work without crossing threads), which is the baseline for scaling.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "bench.h"

enum {
	BATCH = 64, /* blocks per message */
	QUEUE = 8,  /* messages a queue holds */
	/* Batches each thread produces at scale 1.  Crossing threads costs
	 * far more per block, so the -t 2 run does less work to keep its time
	 * near the -t 1 run's; the 2-vs-1 figure compares work per second. */
	BATCHES_ALONE = 300000,
	BATCHES_RING = 60000,
	MIN_SIZE = 8,
	MAX_SIZE = 512,
};

typedef struct batch {
	void *p[BATCH];
	uint32_t size[BATCH];
} batch;

/* Single-producer single-consumer ring of batches, on its own lines. */
typedef struct queue {
	_Alignas(64) atomic_ulong head; /* written by the producer */
	_Alignas(64) atomic_ulong tail; /* written by the consumer */
	_Alignas(64) batch slot[QUEUE];
} queue;

typedef struct worker {
	pthread_t tid;
	int id;
	long batches;
	queue *out; /* to the next thread */
	queue *in;  /* from the previous thread */
	unsigned long long ops;
	long long live; /* bytes produced minus bytes consumed by this thread */
	long long peak; /* its maximum; the sum over threads estimates the
	                   peak of live bytes in the ring */
} worker;

static void produce(worker *w, bench_rng *r, batch *b)
{
	int i;

	for (i = 0; i < BATCH; i++) {
		size_t n = bench_range(r, MIN_SIZE, MAX_SIZE);

		b->p[i] = bench_new(n);
		b->size[i] = (uint32_t)n;
		w->live += (long long)n;
	}
	if (w->live > w->peak)
		w->peak = w->live;
	w->ops += BATCH;
}

static void consume(worker *w, batch *b)
{
	int i;

	for (i = 0; i < BATCH; i++) {
		bench_delete(b->p[i], b->size[i]);
		w->live -= (long long)b->size[i];
	}
	w->ops += BATCH;
}

static void *worker_run(void *arg)
{
	worker *w = arg;
	long produced = 0, consumed = 0;
	bench_rng r;

	bench_seed(&r, 5000 + (uint64_t)w->id);
	while (produced < w->batches || consumed < w->batches) {
		int progress = 0;
		unsigned long head, tail;

		head =
		    atomic_load_explicit(&w->out->head, memory_order_relaxed);
		tail =
		    atomic_load_explicit(&w->out->tail, memory_order_acquire);
		if (produced < w->batches && head - tail < QUEUE) {
			produce(w, &r, &w->out->slot[head % QUEUE]);
			atomic_store_explicit(&w->out->head, head + 1,
			                      memory_order_release);
			produced++;
			progress = 1;
		}
		tail = atomic_load_explicit(&w->in->tail, memory_order_relaxed);
		head = atomic_load_explicit(&w->in->head, memory_order_acquire);
		if (head != tail) {
			consume(w, &w->in->slot[tail % QUEUE]);
			atomic_store_explicit(&w->in->tail, tail + 1,
			                      memory_order_release);
			consumed++;
			progress = 1;
		}
		if (!progress)
			sched_yield();
	}
	return NULL;
}

int main(int argc, char **argv)
{
	bench_opts o = bench_init("prodcons", argc, argv);
	int n = o.threads, i;
	long batches = bench_scaled(&o, n == 1 ? BATCHES_ALONE : BATCHES_RING);
	queue *q = bench_table((size_t)n * sizeof(queue));
	worker *w = bench_table((size_t)n * sizeof(worker));
	unsigned long long ops = 0, peak = 0;
	double t0, t1;

	for (i = 0; i < n; i++) {
		w[i].id = i;
		w[i].batches = batches;
		w[i].out = &q[i];
		w[i].in = &q[(i + n - 1) % n];
	}
	t0 = bench_now();
	for (i = 0; i < n; i++)
		if (pthread_create(&w[i].tid, NULL, worker_run, &w[i]) != 0)
			bench_fail("pthread_create failed");
	for (i = 0; i < n; i++)
		pthread_join(w[i].tid, NULL);
	t1 = bench_now();
	for (i = 0; i < n; i++) {
		ops += w[i].ops;
		peak += (unsigned long long)w[i].peak;
	}
	bench_result("prodcons", n, t1 - t0, ops, peak, "");
	return 0;
}
