/* check_fork.c - fork safety (TESTING.md, fork plan (b) and (f)).
 *
 * Threads allocate and free without pause while another thread forks again
 * and again.  Each child, which has only the forking thread, must be able to
 * allocate, free and pass os_heap_check(), and must not deadlock on a lock
 * that a vanished thread held at the fork: every child runs under an alarm,
 * and a child killed by SIGALRM fails the test.  Blocks the forking thread
 * owned before the fork stay intact and freeable in the child.
 *
 * A fork storm stops after FORKS children or, once MIN_FORKS are done,
 * after STORM_SECONDS: on a loaded machine every child is slow (the busy
 * threads take copy-on-write faults after each fork), and a fixed count
 * ran into the case timeout.  The number of children is printed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osalloc.h"
#include "reliable.h"

enum {
	BUSY_THREADS = 4,
	FORKS = 150,
	MIN_FORKS = 20,     /* at least this many, whatever the load */
	STORM_SECONDS = 10, /* then stop after this long */
	CHILD_ALARM = 10,   /* seconds: a deadlocked child dies of SIGALRM */
	OWNED = 64,         /* blocks the forking thread holds across fork */
};

/* A deadline of `seconds` scaled by CK_TIMEOUT_MULTIPLIER, as Check scales
 * the case timeout (tests/ci/valgrind.sh sets 20: under valgrind the
 * re-fork case takes over a minute on a loaded machine). */
static unsigned scaled(unsigned seconds)
{
	const char *m = getenv("CK_TIMEOUT_MULTIPLIER");
	long k = m ? strtol(m, NULL, 10) : 1;
	return seconds * (unsigned)(k >= 1 && k <= 100 ? k : 1);
}

static atomic_bool stop;
static atomic_ulong busy_ops;

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t pick_size(uint64_t *rng)
{
	uint64_t r = next_rand(rng);
	switch (r % 16) {
	case 0:
		return 128 * 1024 + r % (256 * 1024); /* own mapping */
	case 1:
	case 2:
		return 1024 + r % (64 * 1024); /* medium */
	default:
		return 1 + r % 1024; /* thread-cached */
	}
}

/* Allocates and frees as fast as it can until `stop`. */
static void *busy(void *arg)
{
	uint64_t rng = 0x9e3779b97f4a7c15ULL * ((uintptr_t)arg + 1);
	void *slot[64] = {0};
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		unsigned i = (unsigned)(next_rand(&rng) % 64);
		if (slot[i]) {
			os_free(slot[i]);
			slot[i] = NULL;
		} else if (next_rand(&rng) % 4 == 0) {
			slot[i] = os_calloc(1, pick_size(&rng));
		} else {
			size_t n = pick_size(&rng);
			slot[i] = os_malloc(n);
			if (slot[i])
				memset(slot[i], (int)i, n < 256 ? n : 256);
		}
		if (slot[i] && next_rand(&rng) % 8 == 0) {
			void *q = os_realloc(slot[i], pick_size(&rng));
			if (q)
				slot[i] = q;
		}
		atomic_fetch_add_explicit(&busy_ops, 1, memory_order_relaxed);
	}
	for (unsigned i = 0; i < 64; i++)
		os_free(slot[i]);
	return NULL;
}

struct owned {
	unsigned char *p[OWNED];
	size_t n[OWNED];
};

static void own_blocks(struct owned *o, uint64_t seed)
{
	uint64_t rng = seed | 1;
	for (int i = 0; i < OWNED; i++) {
		o->n[i] = pick_size(&rng);
		o->p[i] = os_malloc(o->n[i]);
		ck_assert_ptr_nonnull(o->p[i]);
		fill_pattern(o->p[i], o->n[i], (uint64_t)i);
	}
}

static void free_owned(struct owned *o)
{
	for (int i = 0; i < OWNED; i++) {
		ck_assert(check_pattern(o->p[i], o->n[i], (uint64_t)i) ==
		          o->n[i]);
		os_free(o->p[i]);
	}
}

/* The child: work with the allocator, check it, _exit.  No stdio. */
static int child_work(const struct owned *o, uint64_t seed)
{
	uint64_t rng = seed | 1;
	void *p[200];
	for (int i = 0; i < OWNED; i++) {
		CHILD_REQUIRE(check_pattern(o->p[i], o->n[i], (uint64_t)i) ==
		                  o->n[i],
		              "block %d of the forking thread changed", i);
	}
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 200; i++) {
			size_t n = pick_size(&rng);
			p[i] = i % 3 ? os_malloc(n) : os_calloc(1, n);
			CHILD_REQUIRE(p[i] != NULL, "allocation in the child");
			memset(p[i], 0x5c, n < 512 ? n : 512);
		}
		CHILD_REQUIRE(os_heap_check() == 0, "heap check in the child");
		for (int i = 0; i < 200; i++)
			os_free(p[i]);
	}
	for (int i = 0; i < OWNED; i++)
		os_free(o->p[i]);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check in the child");
	return CHILD_OK;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Forks `forks` times (fewer, but at least MIN_FORKS, when that takes more
 * than STORM_SECONDS) while the busy threads run; every child must exit 0
 * with nothing on stderr.  Returns the number of children. */
static int fork_storm(int forks, struct owned *o)
{
	char st[64];
	double end = now() + STORM_SECONDS;
	int f;
	for (f = 0; f < forks; f++) {
		if (f >= MIN_FORKS && now() > end)
			break;
		int fds[2];
		struct child_result r;
		memset(&r, 0, sizeof r);
		pid_t pid = child_start(scaled(CHILD_ALARM), fds);
		if (pid == 0)
			_exit(child_work(o, (uint64_t)f));
		ck_assert_msg(pid > 0, "fork: %s", strerror(errno));
		child_finish(pid, fds, &r);
		if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0 ||
		    r.err_len)
			ck_abort_msg("fork %d: child %s%s; stderr: %s", f,
			             describe_status(r.status, st, sizeof st),
			             WIFSIGNALED(r.status) &&
			                     WTERMSIG(r.status) == SIGALRM
			                 ? " (deadlocked)"
			                 : "",
			             r.err);
		/* The parent keeps allocating across forks as well. */
		void *q = os_malloc(100 + (size_t)f);
		ck_assert_ptr_nonnull(q);
		os_free(q);
	}
	return f;
}

static void start_busy(pthread_t *t, int n)
{
	atomic_store(&stop, false);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(
		    pthread_create(&t[i], NULL, busy, (void *)(uintptr_t)i), 0);
	/* Let them get going. */
	while (atomic_load(&busy_ops) < 1000)
		sched_yield();
}

static void stop_busy(pthread_t *t, int n)
{
	atomic_store(&stop, true);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
}

START_TEST(test_fork_while_threads_allocate_child_allocates_and_checks)
{
	pthread_t t[BUSY_THREADS];
	struct owned o;
	own_blocks(&o, 1);
	start_busy(t, BUSY_THREADS);
	int forks = fork_storm(FORKS, &o);
	stop_busy(t, BUSY_THREADS);
	free_owned(&o);
	ck_assert_int_eq(os_heap_check(), 0);
	printf("fork: %d children forked while %d threads made %lu "
	       "allocator calls\n",
	       forks, BUSY_THREADS, (unsigned long)atomic_load(&busy_ops));
}
END_TEST

/* The forking thread is not the main thread, and the main thread is one
 * of the busy ones. */
struct forker_arg {
	int forks;
	struct owned o;
};

static void *forker(void *arg)
{
	struct forker_arg *a = arg;
	own_blocks(&a->o, 2);
	fork_storm(a->forks, &a->o);
	free_owned(&a->o);
	atomic_store(&stop, true);
	return NULL;
}

START_TEST(test_fork_from_a_second_thread_while_main_allocates)
{
	pthread_t t[BUSY_THREADS - 1], f;
	static struct forker_arg a = {FORKS / 3, {{0}, {0}}};
	start_busy(t, BUSY_THREADS - 1);
	ck_assert_int_eq(pthread_create(&f, NULL, forker, &a), 0);
	busy((void *)(uintptr_t)99); /* until the forker sets stop */
	ck_assert_int_eq(pthread_join(f, NULL), 0);
	stop_busy(t, BUSY_THREADS - 1);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* A child that forks again (the handlers re-initialise in the child). */
static int grandchild_parent(void *arg)
{
	unsigned alarm_s = *(const unsigned *)arg;
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		CHILD_REQUIRE(pthread_create(&t[i], NULL, busy,
		                             (void *)(uintptr_t)i) == 0,
		              "pthread_create");
	for (int round = 0; round < 20; round++) {
		pid_t pid = fork();
		CHILD_REQUIRE(pid >= 0, "fork");
		if (pid == 0) {
			alarm(alarm_s);
			void *p = os_malloc(300000), *q = os_malloc(50);
			CHILD_REQUIRE(p && q, "allocation in the grandchild");
			os_free(p);
			os_free(q);
			_exit(os_heap_check() == 0 ? CHILD_OK : CHILD_FAILED);
		}
		int status;
		CHILD_REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid");
		CHILD_REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		              "grandchild %d: status 0x%x", round,
		              (unsigned)status);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
	return CHILD_OK;
}

START_TEST(test_forked_child_with_threads_forks_again)
{
	struct child_result r;
	char st[64];
	unsigned alarm_s = scaled(CHILD_ALARM);
	run_forked(grandchild_parent, &alarm_s, scaled(60), &r);
	ck_assert_msg(
	    WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 && r.err_len == 0,
	    "%s; stderr: %s", describe_status(r.status, st, sizeof st), r.err);
}
END_TEST

/* The counts of calls survive fork: a child sees those of every thread of
 * the parent, although only the forking thread's cache lives on.  Here a
 * second thread allocates 1000 blocks that main frees, and is still alive
 * at the fork. */
enum { COUNTED = 1000 };
static void *counted[COUNTED];
static pthread_mutex_t counted_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t counted_cond = PTHREAD_COND_INITIALIZER;
static int counted_stage;

static void counted_set(int stage)
{
	pthread_mutex_lock(&counted_lock);
	counted_stage = stage;
	pthread_cond_broadcast(&counted_cond);
	pthread_mutex_unlock(&counted_lock);
}

static void counted_wait(int stage)
{
	pthread_mutex_lock(&counted_lock);
	while (counted_stage != stage)
		pthread_cond_wait(&counted_cond, &counted_lock);
	pthread_mutex_unlock(&counted_lock);
}

static void *allocate_and_wait(void *arg)
{
	(void)arg;
	for (int i = 0; i < COUNTED; i++)
		counted[i] = os_malloc(64);
	counted_set(1);
	counted_wait(2); /* alive across the fork */
	return NULL;
}

static int counts_in_child(void *arg)
{
	const struct os_mallinfo *before = arg;
	struct os_mallinfo mi;
	os_mallinfo(&mi);
	if (mi.alloc_calls != before->alloc_calls ||
	    mi.free_calls != before->free_calls) {
		fprintf(stderr, "child: %llu allocations, %llu frees; parent: "
				"%llu, %llu\n",
			mi.alloc_calls, mi.free_calls, before->alloc_calls,
			before->free_calls);
		return 1;
	}
	return 0;
}

START_TEST(test_fork_child_keeps_the_call_counts_of_every_thread)
{
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, allocate_and_wait, NULL), 0);
	counted_wait(1);
	for (int i = 0; i < COUNTED; i++) {
		ck_assert_ptr_nonnull(counted[i]);
		os_free(counted[i]);
	}
	struct os_mallinfo before;
	os_mallinfo(&before);
	ck_assert_uint_ge(before.alloc_calls, COUNTED);
	struct child_result r;
	char st[64];
	run_forked(counts_in_child, &before, scaled(60), &r);
	counted_set(2);
	pthread_join(t, NULL);
	ck_assert_msg(
	    WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 && r.err_len == 0,
	    "%s; stderr: %s", describe_status(r.status, st, sizeof st), r.err);
}
END_TEST

/* Fork handlers of another library, registered before libosalloc's (this
 * constructor runs before the library's): their prepare handler runs after
 * libosalloc's has taken its locks, their parent and child handlers before
 * libosalloc's gives them back.  When they allocate, small and large, they
 * must not wait for those locks (glibc's malloc allows this).  They
 * allocate only while handlers_allocate is set. */
static volatile int handlers_allocate;

static void allocate_in_handler(void)
{
	if (!handlers_allocate)
		return;
	void *small = os_malloc(100), *large = os_malloc(300000);
	if (!small || !large)
		abort();
	os_free(small);
	os_free(large);
}

__attribute__((constructor(101))) static void register_handlers_first(void)
{
	pthread_atfork(allocate_in_handler, allocate_in_handler,
		       allocate_in_handler);
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static int fork_with_allocating_handlers(void *unused)
{
	(void)unused;
	pthread_t t; /* two threads: the heap takes its mutex */
	if (pthread_create(&t, NULL, sleeper, NULL) != 0)
		return 2;
	os_free(os_malloc(100));
	handlers_allocate = 1;
	pid_t pid = fork();
	if (pid < 0)
		return 3;
	if (pid == 0) {
		void *p = os_malloc(5000);
		_exit(p && os_heap_check() == 0 ? 0 : 1);
	}
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return 4;
	return os_heap_check() == 0 ? 0 : 5;
}

START_TEST(test_fork_handlers_of_another_library_may_allocate)
{
	struct child_result r;
	char st[64];
	run_forked(fork_with_allocating_handlers, NULL, scaled(30), &r);
	ck_assert_msg(
	    WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 && r.err_len == 0,
	    "%s; stderr: %s", describe_status(r.status, st, sizeof st), r.err);
}
END_TEST

static Suite *fork_suite(void)
{
	Suite *s = suite_create("fork");
	TCase *tc = tcase_create("fork");
	tcase_set_timeout(tc, 120);
	tcase_add_test(
	    tc, test_fork_while_threads_allocate_child_allocates_and_checks);
	tcase_add_test(tc, test_fork_from_a_second_thread_while_main_allocates);
	tcase_add_test(tc, test_forked_child_with_threads_forks_again);
	tcase_add_test(tc, test_fork_child_keeps_the_call_counts_of_every_thread);
	tcase_add_test(tc, test_fork_handlers_of_another_library_may_allocate);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fork_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
