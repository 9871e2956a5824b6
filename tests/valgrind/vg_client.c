/* vg_client.c - a user program with two classic bugs, for valgrind's
 * memcheck to find in os_malloc blocks (tests/valgrind/client-requests.sh).
 *
 *   vg_client leak   loses the only pointer to a 100-byte os_malloc block
 *   vg_client uaf    writes into a 100-byte block after os_free
 *   vg_client ok     allocates and frees correctly (no report expected)
 *
 * libosalloc describes its blocks to memcheck with client requests
 * (VALGRIND_MALLOCLIKE_BLOCK, VALGRIND_FREELIKE_BLOCK) when it was built
 * with <valgrind/valgrind.h>; without them memcheck sees neither bug.
 */
#include <stdio.h>
#include <string.h>

#include "osalloc.h"

/* Keeps the compiler from removing the deliberate bugs. */
static void *volatile sink;

static int leak(void)
{
	char *p = os_malloc(100);
	if (!p)
		return 2;
	memset(p, 1, 100);
	sink = p;
	sink = NULL; /* the only pointer is gone */
	return 0;
}

static int use_after_free(void)
{
	char *p = os_malloc(100);
	if (!p)
		return 2;
	memset(p, 1, 100);
	os_free(p);
	sink = p;
	((char *)sink)[10] = 'x'; /* write after free */
	return 0;
}

static int correct(void)
{
	for (int i = 1; i < 300; i++) {
		char *p = os_malloc((size_t)i * 97);
		char *q = os_calloc((size_t)i, 13);
		if (!p || !q)
			return 2;
		memset(p, i, (size_t)i * 97);
		p = os_realloc(p, (size_t)i * 200);
		if (!p)
			return 2;
		os_free(q);
		os_free(p);
	}
	return os_heap_check() == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	if (strcmp(mode, "leak") == 0)
		return leak();
	if (strcmp(mode, "uaf") == 0)
		return use_after_free();
	if (strcmp(mode, "ok") == 0)
		return correct();
	fprintf(stderr, "usage: vg_client leak|uaf|ok\n");
	return 2;
}
