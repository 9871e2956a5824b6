/* common.h - helpers shared by libosalloc's Check suites (tests/check_*.c).
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 *
 * This interface is stable: suites owned by others include it too.  Add to
 * it; do not change what is here.  Everything is prefixed tst_ / TST_.
 * Implemented in tests/common.c, built once as tests/libtstcommon.la; link a
 * suite with
 *     tests_foo_LDADD = tests/libtstcommon.la lib/libosalloc-core.la $(CHECK_LIBS)
 *
 * Contents:
 *  - tst_main():       main() of a suite.  Forces CK_FORK, so every case
 *                      starts in a fresh process in which osalloc is not yet
 *                      initialised (set OSALLOC_OPTIONS with setenv at the
 *                      top of a case, and it applies to that case); also
 *                      runs "scenarios" in freshly exec'd copies of the
 *                      program.
 *  - tst_run_child():  runs a function in a forked child, captures its
 *                      stdout and stderr to the end, returns how it ended.
 *                      TST_EXPECT_MISUSE() asserts SIGABRT and the exact
 *                      one-line report.  Inside a child, never use
 *                      ck_assert (it talks to the Check runner): use
 *                      TST_CHILD_REQUIRE.
 *  - tst_fill() / tst_verify(): position- and seed-dependent byte patterns.
 *  - tst_maps_count(), tst_is_mapped(), tst_resident_pages(): what the
 *                      kernel says about the address space.
 *  - tst_sys_snapshot(): osalloc's system call counters and the break.
 *  - tst_strace_*():   runs a scenario under strace and counts syscalls
 *                      between two tst_mark() markers.
 *  - TST_SKIP_UNDER_VALGRIND(): ends a case that tests what valgrind does
 *                      not emulate, with a note on stderr.
 */
#ifndef OSA_TESTS_COMMON_H
#define OSA_TESTS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "osalloc.h"

/* 1 in a build with AddressSanitizer (configure --enable-sanitizers):
 * malloc is then the sanitizer's, not the C library's brk allocator. */
#if defined(__SANITIZE_ADDRESS__)
#define TST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TST_SANITIZED 1
#endif
#endif
#ifndef TST_SANITIZED
#define TST_SANITIZED 0
#endif

/* ---- suites and scenarios -------------------------------------------- */

/* A scenario is a function run in a fresh process (exec of this program
 * with "--scenario NAME"): osalloc is untouched when it starts, and its
 * OSALLOC_OPTIONS are the ones given to tst_run_scenario.  It returns the
 * process's exit code (TST_CHILD_OK on success). */
struct tst_scenario {
	const char *name;
	int (*fn)(void);
};

/* main() of a suite: `tst_main(argc, argv, make_suite, scenarios)`.
 * Runs the scenario named on the command line, or else the suite (fork mode
 * forced, summary printed with CK_NORMAL) and returns EXIT_SUCCESS when no
 * case failed.  `scenarios` may be NULL; else it ends with {NULL, NULL}. */
int tst_main(int argc, char **argv, Suite *(*make_suite)(void),
	     const struct tst_scenario *scenarios);

/* ---- child processes ------------------------------------------------- */

/* Exit codes of children (other values: the child's own choice). */
enum {
	TST_CHILD_OK = 0,
	TST_CHILD_FAILED = 1,   /* a TST_CHILD_REQUIRE failed (see its stderr) */
	TST_CHILD_SETUP = 2,    /* the scenario could not be set up */
	TST_CHILD_RETURNED = 3, /* a function expected to abort returned */
	TST_CHILD_EXEC = 127,   /* exec failed */
};

struct tst_child {
	int status;      /* raw waitpid status; -1: the child never ran */
	int signal;      /* signal that ended the child, 0 if it exited */
	int exit_code;   /* exit code, -1 if it was killed by a signal */
	char *out;       /* all of its stdout, NUL-terminated (malloc'd) */
	size_t out_len;
	char *err;       /* all of its stderr, NUL-terminated (malloc'd) */
	size_t err_len;
};

/* Runs fn(arg) in a forked child; the child _exits with fn's result.  The
 * child gets an alarm of `timeout` seconds (SIGALRM ends it) and no core
 * dumps.  Fills *c; release it with tst_child_release. */
void tst_run_child(int (*fn)(void *), void *arg, unsigned timeout,
		   struct tst_child *c);

/* Runs a program (execvp of argv[0]) the same way.  `env` is a NULL-ended
 * list of "NAME=value" strings set on top of the current environment
 * (a "NAME" without '=' removes it), or NULL. */
void tst_run_program(char *const argv[], char *const env[], unsigned timeout,
		     struct tst_child *c);

/* Runs scenario `name` of this program in a fresh process, with
 * OSALLOC_OPTIONS set to `options` (removed when NULL). */
void tst_run_scenario(const char *name, const char *options, unsigned timeout,
		      struct tst_child *c);

void tst_child_release(struct tst_child *c);

/* "exit 0", "signal 6 (Aborted)", ... in a static buffer. */
const char *tst_child_describe(const struct tst_child *c);

/* True when the child ended with exit code TST_CHILD_OK.  Otherwise writes
 * a description (how it ended and its stderr) into msg. */
bool tst_child_ok(const struct tst_child *c, char *msg, size_t len);

/* Asserts (Check) that the child exited with TST_CHILD_OK; on failure the
 * message shows how it ended and what it printed. */
#define TST_ASSERT_CHILD_OK(c)                                                 \
	do {                                                                   \
		char tst_msg_[1024];                                           \
		ck_assert_msg(tst_child_ok((c), tst_msg_, sizeof tst_msg_),   \
			      "%s", tst_msg_);                                 \
	} while (0)

/* The report line osalloc writes for misuse, without the newline:
 * "osalloc: <func>(): <cause>: 0x<hex ptr>".  Returns buf. */
char *tst_misuse_line(char *buf, size_t len, const char *func,
		      const char *cause, const void *ptr);

/* Runs fn(arg) in a child and checks that it was killed by SIGABRT after
 * writing exactly one line to stderr, the report for (func, cause, ptr),
 * and nothing to stdout.  False with an explanation in msg otherwise. */
bool tst_expect_misuse(int (*fn)(void *), void *arg, const char *func,
		       const char *cause, const void *ptr, char *msg,
		       size_t len);

#define TST_EXPECT_MISUSE(fn, arg, func, cause, ptr)                           \
	do {                                                                   \
		char tst_msg_[1024];                                           \
		ck_assert_msg(tst_expect_misuse((fn), (arg), (func), (cause),  \
						(ptr), tst_msg_,               \
						sizeof tst_msg_),              \
			      "%s", tst_msg_);                                 \
	} while (0)

/* In a child: one line "file:line: expr: message" on stderr with write(2)
 * (no stdio, no malloc), then _exit(TST_CHILD_FAILED). */
void tst_child_fail(const char *file, int line, const char *expr,
		    const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#define TST_CHILD_REQUIRE(cond, ...)                                           \
	do {                                                                   \
		if (!(cond))                                                   \
			tst_child_fail(__FILE__, __LINE__, #cond,              \
				       __VA_ARGS__);                           \
	} while (0)

/* ---- byte patterns --------------------------------------------------- */

/* Fills [p, p+n) with bytes that depend on seed and on the offset: two
 * blocks with different seeds, or a block shifted by any amount, differ. */
void tst_fill(void *p, size_t n, uint64_t seed);

/* True when [p, p+n) still holds tst_fill(p, n, seed)'s bytes; else the
 * offset of the first wrong byte goes to *bad (if bad is not NULL). */
bool tst_verify(const void *p, size_t n, uint64_t seed, size_t *bad);

/* True when every byte of [p, p+n) is `byte`; else *bad as above. */
bool tst_all_bytes(const void *p, size_t n, unsigned char byte, size_t *bad);

/* x, hidden from the optimiser: keeps the compiler from warning about (or
 * folding) deliberately impossible sizes passed to alloc_size functions. */
static inline size_t tst_opaque(size_t x)
{
	__asm__ volatile("" : "+r"(x));
	return x;
}

/* A small deterministic PRNG (xorshift64*).  *state must not be 0. */
uint64_t tst_rand(uint64_t *state);
/* Uniform in [lo, hi] (hi - lo < 2^32 for a small bias). */
size_t tst_rand_range(uint64_t *state, size_t lo, size_t hi);

/* ---- the address space ----------------------------------------------- */

/* Number of mappings (lines of /proc/self/maps), -1 on error.  Reads with
 * read(2) into a stack buffer: it allocates nothing. */
long tst_maps_count(void);

/* True when some mapping of /proc/self/maps contains addr. */
bool tst_is_mapped(const void *addr);

/* Number of resident pages in the pages that [p, p+len) touches (mincore),
 * or (size_t)-1 on error. */
size_t tst_resident_pages(const void *p, size_t len);

/* ---- osalloc's system calls ------------------------------------------ */

struct tst_sys {
	unsigned long sbrk;   /* growing sbrk calls made through lib/os.c */
	unsigned long mmap;
	unsigned long munmap;
	unsigned long mremap;
	uintptr_t brk;        /* sbrk(0) */
};

/* Current counters (osa_sys_calls) and break. */
void tst_sys_snapshot(struct tst_sys *s);

/* Heap state after emptying the caller's thread cache, so that the
 * statistics and the heap layout are exact (os_mallinfo). */
void tst_mallinfo_exact(struct os_mallinfo *info);

/* The payload that follows p's block in the brk heap: p plus its usable
 * size plus one block header (default options; with check=2 the usable
 * size is the requested one).  Lets a test assert which blocks are
 * neighbours. */
unsigned char *tst_next_block(const void *p);

/* ---- strace ---------------------------------------------------------- */

/* True when an strace that works here (ptrace allowed) is on PATH. */
bool tst_strace_available(void);

/* Writes a marker that strace shows as write(-1, "tst-mark:<label>", ...):
 * it fails with EBADF and has no other effect. */
void tst_mark(const char *label);

/* Runs scenario `name` under "strace -f -qq -e trace=<syscalls>,write"
 * (OSALLOC_OPTIONS as for tst_run_scenario; LeakSanitizer, which cannot
 * run under ptrace, is turned off).  The trace goes to *trace
 * (malloc'd, NUL-terminated; NULL on error), the scenario's own outcome and
 * output to *c.  Returns 0, or -1 when strace could not be run. */
int tst_strace_scenario(const char *name, const char *options,
			const char *syscalls, unsigned timeout, char **trace,
			struct tst_child *c);

/* Counts calls of `syscall` in an strace trace between the marker lines of
 * tst_mark(from) and tst_mark(to); -1 when a marker is missing.  If
 * `results` is not NULL, up to `max` return values of these calls are
 * stored there (in order; unparsable ones as 0). */
long tst_trace_count(const char *trace, const char *from, const char *to,
		     const char *syscall, uintptr_t *results, size_t max);

/* ---- valgrind -------------------------------------------------------- */

/* True when the process runs under valgrind (its preload objects are in
 * LD_PRELOAD).  libosalloc then turns its thread caches off, clears calloc
 * memory, moves large blocks on realloc (no mremap), and valgrind emulates
 * the break in a reserved area of about 8 MiB and replaces the C library's
 * malloc. */
bool tst_under_valgrind(void);

/* Writes "FILE:LINE: skipped under valgrind: WHY" on stderr. */
void tst_skip_note(const char *file, int line, const char *why);

/* At the top of a case that tests one of those things: under valgrind the
 * case ends here (Check counts it as passed) after the note on stderr, which
 * tests/ci/valgrind.sh counts.  It still runs everywhere else. */
#define TST_SKIP_UNDER_VALGRIND(why)                                           \
	do {                                                                   \
		if (tst_under_valgrind()) {                                    \
			tst_skip_note(__FILE__, __LINE__, (why));              \
			return;                                                \
		}                                                              \
	} while (0)

#endif /* OSA_TESTS_COMMON_H */
