/* os.c - every system call libosalloc makes, and nothing else.
 *
 * The rest of the library never calls sbrk, mmap, munmap, mremap,
 * mprotect, madvise, getrandom or write itself.  That keeps it portable and
 * lets the tests make any of these calls fail on purpose
 * (osa_sys_fail_nth).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "internal.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

/* Fault injection state.  Counters are atomics so that the tests may arm a
 * failure while other threads allocate. */
static unsigned long fail_at;    /* 0: disarmed; else the call number */
static unsigned fail_mask;
static unsigned long calls[4];   /* by kind, since start */
static unsigned long armed_calls;

static int kind_index(unsigned kind)
{
	return __builtin_ctz(kind);
}

/* Counts a call of the given kind; true when it must fail. */
static bool inject(unsigned kind)
{
	__atomic_add_fetch(&calls[kind_index(kind)], 1, __ATOMIC_RELAXED);
	unsigned long at = __atomic_load_n(&fail_at, __ATOMIC_ACQUIRE);
	if (OSA_LIKELY(at == 0) || !(fail_mask & kind))
		return false;
	if (__atomic_add_fetch(&armed_calls, 1, __ATOMIC_ACQ_REL) != at)
		return false;
	errno = ENOMEM;
	return true;
}

void osa_sys_fail_nth(unsigned long n, unsigned mask)
{
	__atomic_store_n(&fail_at, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&armed_calls, 0, __ATOMIC_RELAXED);
	fail_mask = mask;
	__atomic_store_n(&fail_at, n, __ATOMIC_RELEASE);
}

unsigned long osa_sys_calls(unsigned mask)
{
	unsigned long sum = 0;
	for (unsigned k = 0; k < 4; k++)
		if (mask & (1u << k))
			sum += __atomic_load_n(&calls[k], __ATOMIC_RELAXED);
	return sum;
}

void *osa_sys_sbrk(intptr_t increment)
{
	if (increment > 0 && inject(OSA_SYS_SBRK))
		return (void *)-1;
	return sbrk(increment);
}

void *osa_sys_mmap(size_t len)
{
	if (inject(OSA_SYS_MMAP))
		return NULL;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* Address space only: no access, no memory committed (an arena's window,
 * lib/heap.c).  Counted and failed as an mmap. */
void *osa_sys_reserve(void *hint, size_t len)
{
	if (inject(OSA_SYS_MMAP))
		return NULL;
	void *p = mmap(hint, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* Makes [addr, addr + len) of a reservation readable and writable: the
 * window's break moves, so it is counted and failed as an sbrk. */
int osa_sys_commit(void *addr, size_t len)
{
	if (inject(OSA_SYS_SBRK))
		return -1;
	return mprotect(addr, len, PROT_READ | PROT_WRITE);
}

int osa_sys_munmap(void *addr, size_t len)
{
	if (inject(OSA_SYS_MUNMAP))
		return -1;
	return munmap(addr, len);
}

void *osa_sys_mremap(void *old, size_t old_len, size_t new_len)
{
	if (inject(OSA_SYS_MREMAP))
		return NULL;
	void *p = mremap(old, old_len, new_len, MREMAP_MAYMOVE);
	return p == MAP_FAILED ? NULL : p;
}

int osa_sys_madvise_free(void *addr, size_t len)
{
	return madvise(addr, len, MADV_DONTNEED);
}

/* A hint, never a failure: where the kernel offers transparent huge pages
 * on request, a large mapping takes faults 2 MiB at a time. */
void osa_sys_madvise_hugepage(void *addr, size_t len)
{
#ifdef MADV_HUGEPAGE
	int saved = errno;
	(void)madvise(addr, len, MADV_HUGEPAGE);
	errno = saved;
#else
	(void)addr;
	(void)len;
#endif
}

/* A hint, never a failure: fault the pages of [addr, addr + len) in with
 * one call, for memory about to be written anyway.  One call costs about
 * half of the page faults it replaces.  Kernels before 5.14 say EINVAL and
 * the pages are faulted one by one, as without the hint. */
void osa_sys_madvise_populate(void *addr, size_t len)
{
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
	int saved = errno;
	(void)madvise(addr, len, MADV_POPULATE_WRITE);
	errno = saved;
}

int osa_sys_getrandom(void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, GRND_NONBLOCK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void osa_sys_write_stderr(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}
