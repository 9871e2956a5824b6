/* dlmod.c - a module that tests/dropin/dropin-test dlopen()s: it allocates
 * in its constructor and frees in its destructor, hands blocks across the
 * module boundary, and has thread-local storage large enough that the C
 * library gives each thread its block with malloc (dynamic TLS) instead of
 * static TLS.
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

EXPORT void *dlmod_alloc(size_t n);
EXPORT void dlmod_free(void *p);
EXPORT int dlmod_ctor_ok(void);
EXPORT uintptr_t dlmod_tls(unsigned seed);

/* 64 KiB: far beyond the surplus of static TLS that glibc keeps for
 * dlopen (rtld.optional_static_tls, 512 bytes by default). */
static __thread unsigned char tls_big[64 * 1024];
static __thread int tls_init = 42;

static char *ctor_block;

__attribute__((constructor)) static void dlmod_init(void)
{
	ctor_block = malloc(100);
	if (ctor_block)
		strcpy(ctor_block, "dlmod constructor");
}

__attribute__((destructor)) static void dlmod_fini(void)
{
	free(ctor_block);
	ctor_block = NULL;
}

int dlmod_ctor_ok(void)
{
	return ctor_block && strcmp(ctor_block, "dlmod constructor") == 0;
}

void *dlmod_alloc(size_t n)
{
	unsigned char *p = malloc(n);
	if (p)
		memset(p, 0xa5, n);
	return p;
}

void dlmod_free(void *p)
{
	free(p);
}

/* Fills this thread's TLS block from seed and checks it; returns the block's
 * address (distinct per live thread), or 0 if the contents were wrong. */
uintptr_t dlmod_tls(unsigned seed)
{
	if (tls_init != 42)
		return 0;
	for (size_t i = 0; i < sizeof tls_big; i += 61)
		tls_big[i] = (unsigned char)(seed + i);
	for (size_t i = 0; i < sizeof tls_big; i += 61)
		if (tls_big[i] != (unsigned char)(seed + i))
			return 0;
	return (uintptr_t)tls_big;
}
