/* check.c - the per-process secret keys, and the misuse report.
 *
 * A report is one line, "osalloc: <api>(): <cause>: <pointer>", built in a
 * stack buffer without malloc or stdio and sent with one write(2); then the
 * process aborts.  errno is preserved around the write.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct osa_keys osa_keys;
void (*osa_fatal_hook)(enum osa_api, enum osa_cause, const void *);
__thread enum osa_api osa_current_api
    __attribute__((tls_model("initial-exec")));

void osa_keys_init(void)
{
	uint64_t k[4];
	if (osa_sys_getrandom(k, sizeof k) != 0) {
		/* No entropy source: fall back to address-space randomness so
		 * that the keys still differ between runs. */
		uintptr_t seed = (uintptr_t)&k ^ ((uintptr_t)&osa_keys << 17) ^
				 (uintptr_t)&osa_keys_init;
		for (int i = 0; i < 4; i++)
			k[i] = osa_mix(seed + 0x9e3779b97f4a7c15ULL * (i + 1));
	}
	osa_keys.header = k[0] | 1;
	osa_keys.link = k[1] | 1;
	osa_keys.canary = k[2] & ~(uint64_t)0xff; /* first byte 0 */
	/* Never 0: a cached block's check must differ from a used one's. */
	osa_keys.cached = k[3] | 1;
}

static const char *const cause_text[] = {
	[OSA_E_DOUBLE_FREE] = "double free",
	[OSA_E_NOT_OURS] = "pointer not allocated by osalloc",
	[OSA_E_NOT_START] = "pointer is not the start of a block",
	[OSA_E_MISALIGNED] = "misaligned pointer",
	[OSA_E_HEADER] = "corrupted block header",
	[OSA_E_NEXT_HEADER] = "corrupted header of next block (heap overflow?)",
	[OSA_E_CANARY] = "canary after block corrupted (heap overflow)",
	[OSA_E_FREE_LIST] = "corrupted free list (write after free?)",
	[OSA_E_WRITE_AFTER_FREE] = "write after free detected",
	[OSA_E_STATE] = "corrupted allocator state",
	[OSA_E_RECURSIVE] = "recursive call (signal handler?)",
};

static const char *const api_text[] = {
	[OSA_API_MALLOC] = "os_malloc",
	[OSA_API_CALLOC] = "os_calloc",
	[OSA_API_REALLOC] = "os_realloc",
	[OSA_API_FREE] = "os_free",
	[OSA_API_ALIGNED_ALLOC] = "os_aligned_alloc",
	[OSA_API_POSIX_MEMALIGN] = "os_posix_memalign",
	[OSA_API_USABLE_SIZE] = "os_malloc_usable_size",
	[OSA_API_HEAP_CHECK] = "os_heap_check",
	[OSA_API_REALLOCARRAY] = "os_reallocarray",
	[OSA_API_STD_MALLOC] = "malloc",
	[OSA_API_STD_CALLOC] = "calloc",
	[OSA_API_STD_REALLOC] = "realloc",
	[OSA_API_STD_REALLOCARRAY] = "reallocarray",
	[OSA_API_STD_FREE] = "free",
	[OSA_API_STD_FREE_SIZED] = "free_sized",
	[OSA_API_STD_FREE_ALIGNED_SIZED] = "free_aligned_sized",
	[OSA_API_STD_POSIX_MEMALIGN] = "posix_memalign",
	[OSA_API_STD_ALIGNED_ALLOC] = "aligned_alloc",
	[OSA_API_STD_MEMALIGN] = "memalign",
	[OSA_API_STD_VALLOC] = "valloc",
	[OSA_API_STD_PVALLOC] = "pvalloc",
	[OSA_API_STD_USABLE_SIZE] = "malloc_usable_size",
};

const char *osa_cause_text(enum osa_cause cause)
{
	return cause_text[cause];
}

static size_t append(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at + 1 < cap)
		buf[at++] = *s++;
	return at;
}

static size_t append_hex(char *buf, size_t at, size_t cap, uintptr_t v)
{
	char digits[2 + 2 * sizeof v];
	size_t n = 0;
	do {
		digits[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	at = append(buf, at, cap, "0x");
	while (n > 0 && at + 1 < cap)
		buf[at++] = digits[--n];
	return at;
}

void osa_report(enum osa_api api, enum osa_cause cause, const void *ptr)
{
	int saved = errno;
	char line[160];
	size_t n = 0;
	n = append(line, n, sizeof line, "osalloc: ");
	n = append(line, n, sizeof line, api_text[api]);
	n = append(line, n, sizeof line, "(): ");
	n = append(line, n, sizeof line, cause_text[cause]);
	n = append(line, n, sizeof line, ": ");
	n = append_hex(line, n, sizeof line, (uintptr_t)ptr);
	line[n++] = '\n';
	osa_sys_write_stderr(line, n);
	errno = saved;
}

void osa_fatal(enum osa_api api, enum osa_cause cause, const void *ptr)
{
	if (osa_fatal_hook)
		osa_fatal_hook(api, cause, ptr);
	osa_report(api, cause, ptr);
	abort();
}
