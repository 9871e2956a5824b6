/* common.c - helpers shared by the Check suites; see common.h for the
 * interface.  Runs children and scenarios, makes and checks byte patterns,
 * reads the address space from the kernel, and drives strace.
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

extern char **environ;

/* ---- suites and scenarios -------------------------------------------- */

int tst_main(int argc, char **argv, Suite *(*make_suite)(void),
	     const struct tst_scenario *scenarios)
{
	if (argc >= 3 && strcmp(argv[1], "--scenario") == 0) {
		for (const struct tst_scenario *s = scenarios; s && s->name;
		     s++)
			if (strcmp(s->name, argv[2]) == 0)
				return s->fn();
		fprintf(stderr, "%s: no scenario '%s'\n", argv[0], argv[2]);
		return TST_CHILD_SETUP;
	}
	SRunner *sr = srunner_create(make_suite());
	/* Every case in a fresh process: the cases rely on an allocator that
	 * has not been used yet (exact layouts, first-use system calls). */
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---- child processes ------------------------------------------------- */

struct sink {
	char *buf;
	size_t len, cap;
};

static void sink_add(struct sink *s, const char *data, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->len + n + 1)
			cap *= 2;
		char *b = realloc(s->buf, cap);
		if (!b)
			return; /* keep what we have */
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	s->buf[s->len] = '\0';
}

/* Reads both pipes to their ends. */
static void drain(int outfd, int errfd, struct sink *out, struct sink *err)
{
	struct pollfd pf[2] = {{outfd, POLLIN, 0}, {errfd, POLLIN, 0}};
	struct sink *sinks[2] = {out, err};
	int open = 2;
	char chunk[4096];
	while (open > 0) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			ssize_t n = read(pf[i].fd, chunk, sizeof chunk);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open--;
				continue;
			}
			sink_add(sinks[i], chunk, (size_t)n);
		}
	}
	for (int i = 0; i < 2; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
}

static void child_reset(struct tst_child *c)
{
	memset(c, 0, sizeof *c);
	c->status = -1;
	c->exit_code = -1;
}

/* Forks with stdout and stderr on pipes.  Returns 0 in the child, the pid
 * in the parent, -1 (c describes it) on error. */
static pid_t start(unsigned timeout, int *outfd, int *errfd,
		   struct tst_child *c)
{
	int o[2], e[2];
	if (pipe(o) != 0)
		goto fail;
	if (pipe(e) != 0) {
		close(o[0]);
		close(o[1]);
		goto fail;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(o[0]);
		close(o[1]);
		close(e[0]);
		close(e[1]);
		goto fail;
	}
	if (pid == 0) {
		struct rlimit no_core = {0, 0};
		setrlimit(RLIMIT_CORE, &no_core);
		close(o[0]);
		close(e[0]);
		if (dup2(o[1], STDOUT_FILENO) < 0 ||
		    dup2(e[1], STDERR_FILENO) < 0)
			_exit(TST_CHILD_SETUP);
		close(o[1]);
		close(e[1]);
		signal(SIGALRM, SIG_DFL);
		signal(SIGABRT, SIG_DFL);
		alarm(timeout);
		return 0;
	}
	close(o[1]);
	close(e[1]);
	*outfd = o[0];
	*errfd = e[0];
	return pid;
fail:;
	char msg[200];
	snprintf(msg, sizeof msg, "could not start a child: %s",
		 strerror(errno));
	c->err = strdup(msg);
	c->err_len = c->err ? strlen(c->err) : 0;
	return -1;
}

static void finish(pid_t pid, int outfd, int errfd, struct tst_child *c)
{
	struct sink out = {0}, err = {0};
	drain(outfd, errfd, &out, &err);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			status = -1;
			break;
		}
	c->status = status;
	if (status != -1 && WIFSIGNALED(status))
		c->signal = WTERMSIG(status);
	if (status != -1 && WIFEXITED(status))
		c->exit_code = WEXITSTATUS(status);
	c->out = out.buf ? out.buf : strdup("");
	c->out_len = out.len;
	c->err = err.buf ? err.buf : strdup("");
	c->err_len = err.len;
}

void tst_run_child(int (*fn)(void *), void *arg, unsigned timeout,
		   struct tst_child *c)
{
	int outfd, errfd;
	child_reset(c);
	pid_t pid = start(timeout, &outfd, &errfd, c);
	if (pid == 0)
		_exit(fn(arg));
	if (pid > 0)
		finish(pid, outfd, errfd, c);
}

/* environ with the changes of `env` applied (malloc'd array; the strings
 * are shared). */
static char **make_environ(char *const env[])
{
	size_t n = 0, m = 0;
	while (environ[n])
		n++;
	while (env && env[m])
		m++;
	char **v = calloc(n + m + 1, sizeof *v);
	if (!v)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		bool replaced = false;
		for (size_t j = 0; j < m; j++) {
			size_t len = strcspn(env[j], "=");
			if (strncmp(environ[i], env[j], len) == 0 &&
			    environ[i][len] == '=')
				replaced = true;
		}
		if (!replaced)
			v[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		if (strchr(env[j], '='))
			v[k++] = env[j];
	v[k] = NULL;
	return v;
}

void tst_run_program(char *const argv[], char *const env[], unsigned timeout,
		     struct tst_child *c)
{
	int outfd, errfd;
	child_reset(c);
	char **newenv = make_environ(env);
	if (!newenv) {
		c->err = strdup("out of memory");
		return;
	}
	pid_t pid = start(timeout, &outfd, &errfd, c);
	if (pid == 0) {
		environ = newenv;
		execvp(argv[0], argv);
		char msg[300];
		int n = snprintf(msg, sizeof msg, "exec %s: %s\n", argv[0],
				 strerror(errno));
		if (n > 0 && write(STDERR_FILENO, msg, (size_t)n) < 0)
			_exit(TST_CHILD_EXEC);
		_exit(TST_CHILD_EXEC);
	}
	if (pid > 0)
		finish(pid, outfd, errfd, c);
	free(newenv);
}

/* This program's path. */
static const char *self_path(void)
{
	static char path[PATH_MAX];
	if (!path[0]) {
		ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
		if (n <= 0)
			strcpy(path, "/proc/self/exe");
		else
			path[n] = '\0';
	}
	return path;
}

static void options_env(const char *options, char *buf, size_t len)
{
	if (options)
		snprintf(buf, len, "OSALLOC_OPTIONS=%s", options);
	else
		snprintf(buf, len, "OSALLOC_OPTIONS");
}

void tst_run_scenario(const char *name, const char *options, unsigned timeout,
		      struct tst_child *c)
{
	char opt[512];
	options_env(options, opt, sizeof opt);
	char *argv[] = {(char *)self_path(), (char *)"--scenario", (char *)name,
			NULL};
	char *env[] = {opt, NULL};
	tst_run_program(argv, env, timeout, c);
}

void tst_child_release(struct tst_child *c)
{
	free(c->out);
	free(c->err);
	c->out = c->err = NULL;
}

const char *tst_child_describe(const struct tst_child *c)
{
	static char buf[128];
	if (c->status == -1)
		snprintf(buf, sizeof buf, "not started");
	else if (c->signal)
		snprintf(buf, sizeof buf, "signal %d (%s)", c->signal,
			 strsignal(c->signal));
	else
		snprintf(buf, sizeof buf, "exit %d", c->exit_code);
	return buf;
}

bool tst_child_ok(const struct tst_child *c, char *msg, size_t len)
{
	if (c->status != -1 && c->signal == 0 && c->exit_code == TST_CHILD_OK)
		return true;
	snprintf(msg, len, "child: %s; stderr: %.700s", tst_child_describe(c),
		 c->err ? c->err : "");
	return false;
}

char *tst_misuse_line(char *buf, size_t len, const char *func,
		      const char *cause, const void *ptr)
{
	snprintf(buf, len, "osalloc: %s(): %s: 0x%" PRIxPTR, func, cause,
		 (uintptr_t)ptr);
	return buf;
}

bool tst_expect_misuse(int (*fn)(void *), void *arg, const char *func,
		       const char *cause, const void *ptr, char *msg,
		       size_t len)
{
	char want[256];
	tst_misuse_line(want, sizeof want - 1, func, cause, ptr);
	strcat(want, "\n");
	struct tst_child c;
	tst_run_child(fn, arg, 10, &c);
	bool ok = c.signal == SIGABRT && strcmp(c.err, want) == 0 &&
		  c.out_len == 0;
	if (!ok)
		snprintf(msg, len,
			 "expected SIGABRT and exactly \"%.*s\\n\" on stderr; "
			 "got %s, stderr \"%.400s\", stdout \"%.100s\"",
			 (int)strlen(want) - 1, want, tst_child_describe(&c),
			 c.err ? c.err : "", c.out ? c.out : "");
	tst_child_release(&c);
	return ok;
}

void tst_child_fail(const char *file, int line, const char *expr,
		    const char *fmt, ...)
{
	char buf[1024];
	int n = snprintf(buf, sizeof buf, "%s:%d: %s: ", file, line, expr);
	if (n < 0)
		n = 0;
	if ((size_t)n < sizeof buf) {
		va_list ap;
		va_start(ap, fmt);
		int m = vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
		va_end(ap);
		if (m > 0)
			n += m;
	}
	if ((size_t)n > sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		_exit(TST_CHILD_FAILED);
	_exit(TST_CHILD_FAILED);
}

/* ---- byte patterns --------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* The 8 pattern bytes of word w (offsets 8w .. 8w+7). */
static uint64_t pattern_word(uint64_t seed, size_t w)
{
	return mix64(seed * 0x9e3779b97f4a7c15ULL + w + 1);
}

void tst_fill(void *p, size_t n, uint64_t seed)
{
	unsigned char *c = p;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = pattern_word(seed, i / 8);
		size_t k = n - i < 8 ? n - i : 8;
		memcpy(c + i, &v, k);
	}
}

bool tst_verify(const void *p, size_t n, uint64_t seed, size_t *bad)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = pattern_word(seed, i / 8);
		size_t k = n - i < 8 ? n - i : 8;
		if (memcmp(c + i, &v, k) == 0)
			continue;
		for (size_t j = 0; j < k; j++)
			if (c[i + j] != ((const unsigned char *)&v)[j]) {
				if (bad)
					*bad = i + j;
				return false;
			}
	}
	return true;
}

bool tst_all_bytes(const void *p, size_t n, unsigned char byte, size_t *bad)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i] != byte) {
			if (bad)
				*bad = i;
			return false;
		}
	return true;
}

uint64_t tst_rand(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

size_t tst_rand_range(uint64_t *state, size_t lo, size_t hi)
{
	return lo + (size_t)(tst_rand(state) % (uint64_t)(hi - lo + 1));
}

/* ---- the address space ----------------------------------------------- */

/* Calls fn for each line of /proc/self/maps (the line's first 255 bytes,
 * NUL-terminated) until it returns true.  -1 on error, else the number of
 * lines seen. */
static long maps_walk(bool (*fn)(const char *line, void *ctx), void *ctx)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char chunk[4096], line[256];
	size_t at = 0;
	long lines = 0;
	bool stop = false;
	while (!stop) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n && !stop; i++) {
			if (chunk[i] != '\n') {
				if (at < sizeof line - 1)
					line[at++] = chunk[i];
				continue;
			}
			line[at] = '\0';
			at = 0;
			lines++;
			if (fn && fn(line, ctx))
				stop = true;
		}
	}
	close(fd);
	return lines;
}

long tst_maps_count(void)
{
	return maps_walk(NULL, NULL);
}

static bool line_contains(const char *line, void *ctx)
{
	uintptr_t a = *(uintptr_t *)ctx, lo, hi;
	if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) == 2 && a >= lo &&
	    a < hi) {
		*(uintptr_t *)ctx = 0;
		return true;
	}
	return false;
}

bool tst_is_mapped(const void *addr)
{
	uintptr_t a = (uintptr_t)addr;
	if (a == 0)
		return false;
	return maps_walk(line_contains, &a) >= 0 && a == 0;
}

size_t tst_resident_pages(const void *p, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t from = (uintptr_t)p & ~(uintptr_t)(page - 1);
	uintptr_t to = ((uintptr_t)p + len + page - 1) & ~(uintptr_t)(page - 1);
	unsigned char vec[4096];
	size_t resident = 0;
	while (from < to) {
		size_t pages = (to - from) / page;
		if (pages > sizeof vec)
			pages = sizeof vec;
		if (mincore((void *)from, pages * page, vec) != 0)
			return (size_t)-1;
		for (size_t i = 0; i < pages; i++)
			resident += vec[i] & 1;
		from += pages * page;
	}
	return resident;
}

/* ---- osalloc's system calls ------------------------------------------ */

void tst_sys_snapshot(struct tst_sys *s)
{
	s->sbrk = osa_sys_calls(OSA_SYS_SBRK);
	s->mmap = osa_sys_calls(OSA_SYS_MMAP);
	s->munmap = osa_sys_calls(OSA_SYS_MUNMAP);
	s->mremap = osa_sys_calls(OSA_SYS_MREMAP);
	s->brk = (uintptr_t)sbrk(0);
}

void tst_mallinfo_exact(struct os_mallinfo *info)
{
	osa_tcache_flush_self();
	os_mallinfo(info);
}

unsigned char *tst_next_block(const void *p)
{
	return (unsigned char *)p + os_malloc_usable_size((void *)p) + OSA_HDR;
}

/* ---- strace ---------------------------------------------------------- */

bool tst_strace_available(void)
{
	static int known = -1;
	if (known < 0) {
		char *argv[] = {(char *)"strace", (char *)"-qq", (char *)"-o",
				(char *)"/dev/null", (char *)"-e",
				(char *)"trace=getpid", (char *)"true", NULL};
		struct tst_child c;
		tst_run_program(argv, NULL, 20, &c);
		known = c.signal == 0 && c.exit_code == 0;
		tst_child_release(&c);
	}
	return known == 1;
}

void tst_mark(const char *label)
{
	char buf[128];
	int n = snprintf(buf, sizeof buf, "tst-mark:%s", label);
	if (n > 0 && write(-1, buf, (size_t)n) >= 0)
		abort(); /* fd -1 cannot be written */
}

int tst_strace_scenario(const char *name, const char *options,
			const char *syscalls, unsigned timeout, char **trace,
			struct tst_child *c)
{
	*trace = NULL;
	child_reset(c);
	char path[] = "/tmp/osalloc-strace.XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	char set[256], opt[512], asan[512];
	snprintf(set, sizeof set, "trace=%s,write", syscalls);
	options_env(options, opt, sizeof opt);
	const char *asan_now = getenv("ASAN_OPTIONS");
	snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%sdetect_leaks=0",
		 asan_now ? asan_now : "", asan_now && *asan_now ? ":" : "");
	char *argv[] = {(char *)"strace", (char *)"-f", (char *)"-qq",
			(char *)"-o", path, (char *)"-e", set,
			(char *)self_path(), (char *)"--scenario", (char *)name,
			NULL};
	char *env[] = {opt, asan, NULL};
	tst_run_program(argv, env, timeout, c);
	struct sink s = {0};
	char chunk[4096];
	ssize_t n;
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		sink_add(&s, chunk, (size_t)n);
	close(fd);
	unlink(path);
	*trace = s.buf ? s.buf : strdup("");
	return c->status == -1 || c->exit_code == TST_CHILD_EXEC ? -1 : 0;
}

/* The syscall part of an strace line: without "PID " or "[pid N] ". */
static const char *trace_body(const char *line)
{
	const char *s = line;
	if (strncmp(s, "[pid", 4) == 0) {
		const char *e = strchr(s, ']');
		return e ? e + 2 : s;
	}
	while (*s >= '0' && *s <= '9')
		s++;
	if (s != line)
		while (*s == ' ')
			s++;
	return s;
}

static bool is_mark(const char *body, const char *label)
{
	char want[160];
	snprintf(want, sizeof want, "write(-1, \"tst-mark:%s\"", label);
	return strncmp(body, want, strlen(want)) == 0;
}

long tst_trace_count(const char *trace, const char *from, const char *to,
		     const char *syscall, uintptr_t *results, size_t max)
{
	size_t nlen = strlen(syscall);
	int phase = 0; /* 0: before from, 1: between, 2: after to */
	long count = 0;
	for (const char *line = trace; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		char buf[1024];
		if (len >= sizeof buf)
			len = sizeof buf - 1;
		memcpy(buf, line, len);
		buf[len] = '\0';
		const char *body = trace_body(buf);
		if (phase == 0 && is_mark(body, from)) {
			phase = 1;
		} else if (phase == 1 && is_mark(body, to)) {
			phase = 2;
			break;
		} else if (phase == 1 && strncmp(body, syscall, nlen) == 0 &&
			   body[nlen] == '(') {
			if (results && (size_t)count < max) {
				/* The result follows the last " = " (strace
				 * pads before it). */
				const char *eq = NULL;
				for (const char *q = strstr(body, " = "); q;
				     q = strstr(q + 1, " = "))
					eq = q;
				uintptr_t v = 0;
				if (eq && strncmp(eq + 3, "0x", 2) == 0)
					v = (uintptr_t)strtoull(eq + 3, NULL,
								16);
				else if (eq)
					v = (uintptr_t)strtoll(eq + 3, NULL, 10);
				results[count] = v;
			}
			count++;
		}
		line = end ? end + 1 : NULL;
	}
	return phase == 2 ? count : -1;
}

/* ---- valgrind -------------------------------------------------------- */

bool tst_under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");
	return p && strstr(p, "vgpreload") != NULL;
}

void tst_skip_note(const char *file, int line, const char *why)
{
	fprintf(stderr, "%s:%d: skipped under valgrind: %s\n", file, line, why);
	fflush(stderr);
}
