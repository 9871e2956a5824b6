/* reliable.h - helpers shared by the reliability suites (issue 5):
 * check_misuse_catalog.c, check_faults.c and check_fork.c.
 *
 * Everything that can abort, hang or change process limits runs in a child
 * process.  A child reports a broken expectation with CHILD_REQUIRE (one line
 * on stderr, then _exit(CHILD_FAILED)); it never calls ck_assert, which would
 * longjmp into the Check runner when CK_FORK=no.  The parent collects the
 * child's stderr and its wait status and asserts on both with Check.
 */
#ifndef OSA_TESTS_RELIABLE_H
#define OSA_TESTS_RELIABLE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "osalloc.h"

/* Exit codes of children. */
enum {
	CHILD_OK = 0,
	CHILD_FAILED = 1,  /* an expectation of the child failed */
	CHILD_SETUP = 2,   /* the scenario could not be set up */
	CHILD_NO_FAULT = 3 /* fault sweep: no injected failure was reached */
};

/* Sanitizer and valgrind builds: tests that lower RLIMIT_AS or
 * RLIMIT_DATA cannot run there (the tools map huge shadow areas). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RELIABLE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define RELIABLE_SANITIZED 1
#endif
#endif
#ifndef RELIABLE_SANITIZED
#define RELIABLE_SANITIZED 0
#endif

/* One line on stderr with write(2): no stdio (which allocates) in a child
 * that may hold allocator locks or run under a low limit. */
__attribute__((format(printf, 1, 2))) static inline void
child_say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

#define CHILD_REQUIRE(cond, ...)                                           \
	do {                                                               \
		if (!(cond)) {                                             \
			child_say("%s:%d: %s", __FILE__, __LINE__, #cond); \
			child_say(__VA_ARGS__);                            \
			_exit(CHILD_FAILED);                               \
		}                                                          \
	} while (0)

/* Is the process running under valgrind?  (valgrind's preload sets
 * LD_PRELOAD to its vgpreload objects.) */
static inline int under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");
	return p && strstr(p, "vgpreload") != NULL;
}

struct child_result {
	int status;     /* from waitpid */
	char err[8192]; /* the child's stderr, NUL-terminated, truncated */
	size_t err_len;
	unsigned char aux[64]; /* what the child wrote to fd 3 */
	size_t aux_len;
};

/* Reads the child's stderr and fd-3 pipes to their ends. */
static inline void collect(int errfd, int auxfd, struct child_result *r)
{
	struct pollfd pf[2] = {{errfd, POLLIN, 0}, {auxfd, POLLIN, 0}};
	int open = 2;
	char sink[4096];
	r->err_len = r->aux_len = 0;
	while (open > 0) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			char *to = sink;
			size_t room = sizeof sink;
			if (i == 0 && r->err_len < sizeof r->err - 1) {
				to = r->err + r->err_len;
				room = sizeof r->err - 1 - r->err_len;
			} else if (i == 1 && r->aux_len < sizeof r->aux) {
				to = (char *)r->aux + r->aux_len;
				room = sizeof r->aux - r->aux_len;
			}
			ssize_t n = read(pf[i].fd, to, room);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open--;
				continue;
			}
			if (to == r->err + r->err_len)
				r->err_len += (size_t)n;
			else if (to == (char *)r->aux + r->aux_len)
				r->aux_len += (size_t)n;
		}
	}
	r->err[r->err_len] = '\0';
}

/* Starts a child with stderr and fd 3 on pipes, an alarm of `timeout`
 * seconds and no core dumps.  Returns 0 in the child, the pid in the
 * parent, -1 on error.  The parent must call child_finish. */
static inline pid_t child_start(unsigned timeout, int fds[2])
{
	int e[2], a[2];
	if (pipe(e) != 0)
		return -1;
	if (pipe(a) != 0) {
		close(e[0]);
		close(e[1]);
		return -1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct rlimit no_core = {0, 0};
		setrlimit(RLIMIT_CORE, &no_core);
		close(e[0]);
		close(a[0]);
		if (dup2(e[1], STDERR_FILENO) < 0 || dup2(a[1], 3) < 0)
			_exit(CHILD_SETUP);
		if (e[1] != STDERR_FILENO && e[1] != 3)
			close(e[1]);
		if (a[1] != STDERR_FILENO && a[1] != 3)
			close(a[1]);
		signal(SIGALRM, SIG_DFL);
		alarm(timeout);
		return 0;
	}
	close(e[1]);
	close(a[1]);
	fds[0] = e[0];
	fds[1] = a[0];
	return pid;
}

static inline void child_finish(pid_t pid, const int fds[2],
                                struct child_result *r)
{
	collect(fds[0], fds[1], r);
	while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
		;
}

/* Runs fn(arg) in a forked child; the child exits with fn's result. */
static inline void run_forked(int (*fn)(void *), void *arg, unsigned timeout,
                              struct child_result *r)
{
	int fds[2];
	memset(r, 0, sizeof *r);
	pid_t pid = child_start(timeout, fds);
	if (pid == 0)
		_exit(fn(arg));
	if (pid < 0) {
		r->status = -1;
		snprintf(r->err, sizeof r->err, "fork: %s", strerror(errno));
		return;
	}
	child_finish(pid, fds, r);
}

/* A human description of a wait status. */
static inline const char *describe_status(int status, char *buf, size_t len)
{
	if (status == -1)
		snprintf(buf, len, "not started");
	else if (WIFEXITED(status))
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "signal %d (%s)", WTERMSIG(status),
		         strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "status 0x%x", (unsigned)status);
	return buf;
}

/* 64-bit FNV-1a over a byte range (content checks). */
static inline uint64_t hash_bytes(const void *p, size_t n)
{
	const unsigned char *c = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ULL;
	return h;
}

/* Fills a block with a pattern that depends on a tag and the offset. */
static inline void fill_pattern(void *p, size_t n, uint64_t tag)
{
	unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		c[i] = (unsigned char)(tag + i * 7 + (i >> 8));
}

/* Offset of the first byte that differs from fill_pattern, or n. */
static inline size_t check_pattern(const void *p, size_t n, uint64_t tag)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i] != (unsigned char)(tag + i * 7 + (i >> 8)))
			return i;
	return n;
}

#endif /* OSA_TESTS_RELIABLE_H */
