/* check_misuse_catalog.c - the misuse catalog of /work/shared/MISUSE.md, one
 * case per row (M01-M22, M24-M31, M34, M36-M38), for small (thread-cached
 * and binned), medium (1-128 KiB, brk heap) and large (mmap) blocks.
 *
 * Every case that must abort runs in a fresh process: the test binary
 * re-executes itself with "--child NAME" (so that OSALLOC_OPTIONS is read by
 * a process that never allocated), the child writes the pointer it expects in
 * the report to fd 3 and then commits the misuse.  The parent reads the
 * child's stderr to its end and asserts SIGABRT and the exact line
 *     osalloc: <function>(): <cause>: 0x<hex pointer>
 * Cases that must NOT abort (no false positives, aligned blocks) run the same
 * way and must exit 0 with nothing on stderr.  Size edge cases (NULL and
 * ENOMEM, nothing changed) run in the Check process itself.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "osalloc.h"
#include "reliable.h"

enum {
	SMALL = 24,         /* block of 48 bytes: thread-cached */
	SMALL_B = 100,      /* block of 128 bytes */
	MEDIUM = 5000,      /* ranged bin, never cached */
	NEAR_MMAP = 131071, /* largest brk request (threshold - 1) */
	LARGE = 200000,     /* own mapping */
	DEATH_TIMEOUT = 20,
};

static char self_exe[4096];

/* ---- helpers for the scenarios (they run in the child) ---- */

/* Keeps the compiler from reasoning about a pointer (no warnings about
 * deliberate out-of-bounds writes, no elided frees). */
static void *volatile launder_slot;
static void *launder(void *p)
{
	launder_slot = p;
	return launder_slot;
}

/* Hides a constant size from the compiler's allocation-size warnings. */
static volatile size_t opaque_slot;
static size_t opaque(size_t v)
{
	opaque_slot = v;
	return opaque_slot;
}

static unsigned char *xmalloc(size_t n)
{
	unsigned char *p = os_malloc(n);
	if (!p) {
		child_say("setup: os_malloc(%zu) failed", n);
		_exit(CHILD_SETUP);
	}
	memset(p, 0x5a, n);
	return launder(p);
}

static void setup_require(bool ok, const char *what)
{
	if (!ok) {
		child_say("setup: %s", what);
		_exit(CHILD_SETUP);
	}
}

/* Tells the parent which pointer the report must name. */
static void expect_ptr(const void *p)
{
	uintptr_t v = (uintptr_t)p;
	ssize_t n = write(3, &v, sizeof v);
	setup_require(n == (ssize_t)sizeof v, "write to fd 3");
}

/* Where the header of the block after p's block is (p's payload end). */
static unsigned char *block_end(unsigned char *p)
{
	return p + os_malloc_usable_size(p);
}

/* The payload of the block right after p's block. */
static unsigned char *next_payload(unsigned char *p)
{
	return block_end(p) + 16;
}

/* Two live blocks of `size`, b directly after a in memory.  With thread
 * caches, consecutive mallocs need not be neighbours: allocate until a pair
 * shows up. */
static void adjacent_pair(size_t size, unsigned char **a, unsigned char **b)
{
	unsigned char *got[128];
	int n = 0;
	*a = *b = NULL;
	for (; n < 128 && !*a; n++) {
		got[n] = xmalloc(size);
		for (int i = 0; i < n; i++) {
			if (next_payload(got[i]) == got[n]) {
				*a = got[i], *b = got[n];
				break;
			}
			if (next_payload(got[n]) == got[i]) {
				*a = got[n], *b = got[i];
				break;
			}
		}
	}
	setup_require(*a != NULL, "no adjacent pair of blocks");
}

/* Writes the 1-byte "poison null byte" overflow past a's block; the byte it
 * overwrites (the low byte of the next header's size word) is never 0 for a
 * block in use. */
static void overflow_nul_byte(unsigned char *a)
{
	unsigned char *end = block_end(a);
	setup_require(*end != 0, "next header's first byte is already 0");
	end[0] = 0;
}

/* An 8-byte overflow that rewrites the next header's size word ("house of"
 * style: a plausible size, USED state). */
static void overflow_8_bytes(unsigned char *a)
{
	uint64_t fake = 0x1001;
	memcpy(block_end(a), &fake, sizeof fake);
}

/* A 1-byte overflow that keeps the next header's size and state bits and
 * only sets its "block before is free" flag, the one bit a forged backward
 * coalescing needs. */
static void overflow_prev_free_bit(unsigned char *a)
{
	unsigned char *end = block_end(a);
	setup_require((*end & 4) == 0, "next header already has the flag");
	end[0] |= 4;
}

/* ---- death scenarios ---- */

/* M01 */
static void scen_double_free_small_immediately(void)
{
	unsigned char *p = xmalloc(SMALL);
	os_free(p);
	expect_ptr(p);
	os_free(p);
}

/* M01 after a write after free over the cached block's links: the cached
 * state is in the header, so the second free is still a double free. */
static void scen_double_free_small_links_overwritten(void)
{
	unsigned char *p = xmalloc(SMALL);
	os_free(p);
	memset(p, 0x41, 16);
	expect_ptr(p);
	os_free(p);
}

/* M01 with the thread caches off: the block sits in a bin. */
static void scen_double_free_small_binned(void)
{
	unsigned char *p = xmalloc(SMALL);
	unsigned char *guard = xmalloc(SMALL);
	os_free(p);
	expect_ptr(p);
	os_free(p);
	os_free(guard);
}

/* M02 */
static void scen_double_free_small_delayed(void)
{
	unsigned char *p = xmalloc(SMALL);
	unsigned char *q = xmalloc(SMALL);
	os_free(p);
	os_free(q);
	expect_ptr(p);
	os_free(p);
}

/* M03: b merged into the free block before it. */
static void scen_double_free_after_merge_medium(void)
{
	unsigned char *a = xmalloc(MEDIUM), *b = xmalloc(MEDIUM);
	unsigned char *guard = xmalloc(MEDIUM);
	setup_require(next_payload(a) == b, "a and b not adjacent");
	os_free(a);
	os_free(b);
	expect_ptr(b);
	os_free(b);
	os_free(guard);
}

/* M03, small blocks, caches off (cached blocks never merge). */
static void scen_double_free_after_merge_small_binned(void)
{
	unsigned char *a = xmalloc(SMALL_B), *b = xmalloc(SMALL_B);
	unsigned char *guard = xmalloc(SMALL_B);
	setup_require(next_payload(a) == b, "a and b not adjacent");
	os_free(a);
	os_free(b);
	expect_ptr(b);
	os_free(b);
	os_free(guard);
}

/* M03: the last block merged back into the free space at the heap end. */
static void scen_double_free_after_merge_into_top(void)
{
	unsigned char *a = xmalloc(MEDIUM);
	os_free(a);
	expect_ptr(a);
	os_free(a);
}

/* M04 */
static void scen_double_free_medium(void)
{
	unsigned char *a = xmalloc(MEDIUM), *guard = xmalloc(MEDIUM);
	os_free(a);
	expect_ptr(a);
	os_free(a);
	os_free(guard);
}

/* M05 */
static void scen_double_free_just_under_mmap_threshold(void)
{
	unsigned char *a = xmalloc(NEAR_MMAP), *guard = xmalloc(MEDIUM);
	os_free(a);
	expect_ptr(a);
	os_free(a);
	os_free(guard);
}

/* M06: the header is unmapped; the registry alone must answer. */
static void scen_double_free_mmap(void)
{
	unsigned char *p = xmalloc(LARGE);
	os_free(p);
	expect_ptr(p);
	os_free(p);
}

/* M08 */
static void scen_realloc_of_freed_small(void)
{
	unsigned char *p = xmalloc(SMALL);
	os_free(p);
	expect_ptr(p);
	void *q = os_realloc(p, 2 * SMALL);
	(void)q;
}

static void scen_realloc_of_freed_small_binned(void)
{
	unsigned char *p = xmalloc(SMALL), *guard = xmalloc(SMALL);
	os_free(p);
	expect_ptr(p);
	void *q = os_realloc(p, 2 * SMALL);
	(void)q;
	os_free(guard);
}

static void scen_realloc_of_freed_medium(void)
{
	unsigned char *p = xmalloc(MEDIUM), *guard = xmalloc(MEDIUM);
	os_free(p);
	expect_ptr(p);
	void *q = os_realloc(p, 2 * MEDIUM);
	(void)q;
	os_free(guard);
}

static void scen_realloc_of_freed_mmap(void)
{
	unsigned char *p = xmalloc(LARGE);
	os_free(p);
	expect_ptr(p);
	void *q = os_realloc(p, 2 * LARGE);
	(void)q;
}

/* M08 through os_realloc(p, 0), which frees. */
static void scen_realloc_to_zero_of_freed_small(void)
{
	unsigned char *p = xmalloc(SMALL);
	os_free(p);
	expect_ptr(p);
	void *q = os_realloc(p, 0);
	(void)q;
}

/* M22: os_realloc(p, 0) frees p: a later os_free(p) is a double free. */
static void scen_free_after_realloc_to_zero_small(void)
{
	unsigned char *p = xmalloc(SMALL);
	setup_require(os_realloc(p, 0) == NULL, "os_realloc(p, 0) != NULL");
	expect_ptr(p);
	os_free(p);
}

static void scen_free_after_realloc_to_zero_mmap(void)
{
	unsigned char *p = xmalloc(LARGE);
	setup_require(os_realloc(p, 0) == NULL, "os_realloc(p, 0) != NULL");
	expect_ptr(p);
	os_free(p);
}

/* M09, M10: pointers into the middle of a block. */
static void scen_free_interior_small(void)
{
	unsigned char *p = xmalloc(SMALL);
	expect_ptr(p + 16);
	os_free(p + 16);
}

static void scen_free_interior_medium(void)
{
	unsigned char *p = xmalloc(MEDIUM);
	expect_ptr(p + 4096);
	os_free(p + 4096);
}

static void scen_free_interior_mmap(void)
{
	unsigned char *p = xmalloc(LARGE);
	expect_ptr(p + 4096);
	os_free(p + 4096);
}

/* A pointer at the place where a header of a block inside p would be. */
static void scen_free_interior_mmap_second_page(void)
{
	unsigned char *p = xmalloc(LARGE);
	expect_ptr(p + 16);
	os_free(p + 16);
}

/* M11 */
static void scen_free_misaligned_small(void)
{
	unsigned char *p = xmalloc(SMALL);
	expect_ptr(p + 1);
	os_free(p + 1);
}

static void scen_free_misaligned_by_8_medium(void)
{
	unsigned char *p = xmalloc(MEDIUM);
	expect_ptr(p + 8);
	os_free(p + 8);
}

static void scen_free_misaligned_mmap(void)
{
	unsigned char *p = xmalloc(LARGE);
	expect_ptr(p + 1);
	os_free(p + 1);
}

/* M12 */
static void scen_free_stack_address(void)
{
	_Alignas(16) unsigned char buf[64];
	memset(buf, 0, sizeof buf);
	os_free(xmalloc(SMALL)); /* osalloc is initialised */
	void *p = launder(buf + 16);
	expect_ptr(p);
	os_free(p);
}

static void scen_free_misaligned_stack_address(void)
{
	_Alignas(16) unsigned char buf[64];
	memset(buf, 0, sizeof buf);
	os_free(xmalloc(SMALL));
	void *p = launder(buf + 4);
	expect_ptr(p);
	os_free(p);
}

/* M13 */
static _Alignas(64) unsigned char global_pool[4096];

static void scen_free_global_address(void)
{
	os_free(xmalloc(MEDIUM));
	void *p = launder(global_pool + 64);
	expect_ptr(p);
	os_free(p);
}

/* M14: a user mapping, readable and not. */
static void *user_mapping(int prot)
{
	void *m = mmap(NULL, 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	setup_require(m != MAP_FAILED, "mmap");
	return m;
}

static void scen_free_user_mmap_rw(void)
{
	os_free(xmalloc(SMALL));
	unsigned char *m = user_mapping(PROT_READ | PROT_WRITE);
	expect_ptr(m + 16);
	os_free(m + 16);
}

static void scen_free_user_mmap_prot_none(void)
{
	os_free(xmalloc(SMALL));
	unsigned char *m = user_mapping(PROT_NONE);
	expect_ptr(m + 16);
	os_free(m + 16);
}

static void scen_free_user_mmap_prot_none_page_start(void)
{
	os_free(xmalloc(LARGE));
	unsigned char *m = user_mapping(PROT_NONE);
	expect_ptr(m);
	os_free(m);
}

/* M15: wild pointers. */
static void wild_free(uintptr_t v)
{
	os_free(xmalloc(SMALL));
	expect_ptr((void *)v);
	os_free(launder((void *)v));
}

static void scen_free_wild_1(void)
{
	wild_free(1);
}

static void scen_free_wild_16(void)
{
	wild_free(16);
}

static void scen_free_wild_minus_16(void)
{
	wild_free((uintptr_t)-16);
}

static void scen_free_wild_non_canonical(void)
{
	wild_free((uintptr_t)1 << 63);
}

static void scen_free_wild_top_of_user_space(void)
{
	wild_free(((uintptr_t)1 << 47) - 16);
}

/* M16: glibc's malloc grows the break too, so its chunks and osalloc's
 * segments interleave. */
static void scen_free_glibc_malloc_pointer_interleaved(void)
{
	void *keep[64];
	unsigned char *first = xmalloc(MEDIUM); /* osalloc's first segment */
	void *glibc_early = malloc(100);
	setup_require(glibc_early != NULL, "malloc");
	/* Grow both heaps in turns: each growth starts after the other's. */
	for (int i = 0; i < 64; i++) {
		keep[i] = i % 2 ? (void *)xmalloc(120000) : malloc(120000);
		setup_require(keep[i] != NULL, "malloc");
	}
	void *glibc_late = malloc(100);
	setup_require(glibc_late != NULL, "malloc");
	(void)first;
	expect_ptr(glibc_late);
	os_free(glibc_late);
}

static void scen_free_glibc_malloc_pointer(void)
{
	void *q = malloc(64);
	setup_require(q != NULL, "malloc");
	os_free(xmalloc(SMALL));
	expect_ptr(q);
	os_free(q);
}

/* M17: realloc of invalid pointers. */
static void scen_realloc_stack_address(void)
{
	_Alignas(16) unsigned char buf[64];
	memset(buf, 0, sizeof buf);
	os_free(xmalloc(SMALL));
	void *p = launder(buf);
	expect_ptr(p);
	void *q = os_realloc(p, 100);
	(void)q;
}

static void scen_realloc_interior_small(void)
{
	unsigned char *p = xmalloc(SMALL);
	expect_ptr(p + 16);
	void *q = os_realloc(p + 16, 100);
	(void)q;
}

static void scen_realloc_interior_mmap(void)
{
	unsigned char *p = xmalloc(LARGE);
	expect_ptr(p + 8192);
	void *q = os_realloc(p + 8192, 100);
	(void)q;
}

static void scen_realloc_misaligned_medium(void)
{
	unsigned char *p = xmalloc(MEDIUM);
	expect_ptr(p + 3);
	void *q = os_realloc(p + 3, 100);
	(void)q;
}

static void scen_realloc_wild(void)
{
	os_free(xmalloc(SMALL));
	expect_ptr((void *)0x1000);
	void *q = os_realloc(launder((void *)0x1000), 100);
	(void)q;
}

static void scen_reallocarray_of_freed_small(void)
{
	unsigned char *p = xmalloc(SMALL);
	os_free(p);
	expect_ptr(p);
	void *q = os_reallocarray(p, 4, 16);
	(void)q;
}

/* M18: usable_size of invalid or freed pointers. */
static void scen_usable_size_of_freed_small(void)
{
	unsigned char *p = xmalloc(SMALL);
	os_free(p);
	expect_ptr(p);
	(void)os_malloc_usable_size(p);
}

static void scen_usable_size_of_freed_medium(void)
{
	unsigned char *p = xmalloc(MEDIUM), *guard = xmalloc(MEDIUM);
	os_free(p);
	expect_ptr(p);
	(void)os_malloc_usable_size(p);
	os_free(guard);
}

static void scen_usable_size_of_freed_mmap(void)
{
	unsigned char *p = xmalloc(LARGE);
	os_free(p);
	expect_ptr(p);
	(void)os_malloc_usable_size(p);
}

static void scen_usable_size_interior(void)
{
	unsigned char *p = xmalloc(MEDIUM);
	expect_ptr(p + 32);
	(void)os_malloc_usable_size(p + 32);
}

static void scen_usable_size_misaligned(void)
{
	unsigned char *p = xmalloc(LARGE);
	expect_ptr(p + 4);
	(void)os_malloc_usable_size(p + 4);
}

static void scen_usable_size_global(void)
{
	os_free(xmalloc(SMALL));
	expect_ptr(global_pool);
	(void)os_malloc_usable_size(launder(global_pool));
}

/* M26, M27: overflows into the next block's header, found when either
 * block is freed or reallocated. */
static void overflow_case(size_t size, int bytes, int action)
{
	unsigned char *a, *b;
	adjacent_pair(size, &a, &b);
	if (bytes == 8)
		overflow_8_bytes(a);
	else if (bytes == 1)
		overflow_nul_byte(a);
	else
		overflow_prev_free_bit(a);
	expect_ptr(b);
	void *q;
	switch (action) {
	case 0:
		os_free(a);
		break;
	case 1:
		os_free(b);
		break;
	case 2:
		q = os_realloc(a, size * 2);
		(void)q;
		break;
	case 3:
		q = os_realloc(b, size * 2);
		(void)q;
		break;
	case 4:
		q = os_realloc(a, size / 2);
		(void)q;
		break;
	}
}

static void scen_overflow_flag_small_free_self(void)
{
	overflow_case(SMALL, 0, 0);
}
static void scen_overflow_flag_small_free_next(void)
{
	overflow_case(SMALL, 0, 1);
}
static void scen_overflow_flag_medium_free_self(void)
{
	overflow_case(MEDIUM, 0, 0);
}
static void scen_overflow_flag_medium_realloc_next(void)
{
	overflow_case(MEDIUM, 0, 3);
}
static void scen_overflow_1_small_free_self(void)
{
	overflow_case(SMALL, 1, 0);
}
static void scen_overflow_1_small_free_next(void)
{
	overflow_case(SMALL, 1, 1);
}
static void scen_overflow_8_small_free_self(void)
{
	overflow_case(SMALL, 8, 0);
}
static void scen_overflow_8_small_free_next(void)
{
	overflow_case(SMALL, 8, 1);
}
static void scen_overflow_1_small_realloc_self(void)
{
	overflow_case(SMALL, 1, 2);
}
static void scen_overflow_8_small_realloc_next(void)
{
	overflow_case(SMALL, 8, 3);
}
static void scen_overflow_1_small_binned_free_self(void)
{
	overflow_case(SMALL_B, 1, 0);
}
static void scen_overflow_8_small_binned_free_next(void)
{
	overflow_case(SMALL_B, 8, 1);
}
static void scen_overflow_1_medium_free_self(void)
{
	overflow_case(MEDIUM, 1, 0);
}
static void scen_overflow_1_medium_free_next(void)
{
	overflow_case(MEDIUM, 1, 1);
}
static void scen_overflow_8_medium_free_self(void)
{
	overflow_case(MEDIUM, 8, 0);
}
static void scen_overflow_8_medium_free_next(void)
{
	overflow_case(MEDIUM, 8, 1);
}
static void scen_overflow_1_medium_realloc_self_grow(void)
{
	overflow_case(MEDIUM, 1, 2);
}
static void scen_overflow_8_medium_realloc_self_shrink(void)
{
	overflow_case(MEDIUM, 8, 4);
}
static void scen_overflow_8_medium_realloc_next(void)
{
	overflow_case(MEDIUM, 8, 3);
}
static void scen_overflow_8_near_mmap_free_self(void)
{
	overflow_case(NEAR_MMAP - 1000, 8, 0);
}

/* M28: an overflow into the header of the free space at the heap end. */
static void scen_overflow_8_into_top_then_malloc(void)
{
	unsigned char *a = xmalloc(MEDIUM);
	unsigned char *top = next_payload(a);
	overflow_8_bytes(a);
	expect_ptr(top);
	void *q = os_malloc(MEDIUM);
	(void)q;
}

static void scen_overflow_1_into_top_then_small_malloc(void)
{
	unsigned char *a = xmalloc(MEDIUM);
	unsigned char *top = next_payload(a);
	overflow_nul_byte(a);
	expect_ptr(top);
	void *q = os_malloc(2000); /* fits in what is left */
	(void)q;
}

static void scen_overflow_8_into_top_then_free_self(void)
{
	unsigned char *a = xmalloc(MEDIUM);
	unsigned char *top = next_payload(a);
	overflow_8_bytes(a);
	expect_ptr(top);
	os_free(a);
}

/* M29: underflow into the block's own header. */
static void underflow_case(size_t size, int word, int action)
{
	unsigned char *p = xmalloc(size);
	uint64_t *h = (uint64_t *)(void *)(p - 16);
	h[word] ^= 0x42;
	expect_ptr(p);
	void *q;
	switch (action) {
	case 0:
		os_free(p);
		break;
	case 1:
		q = os_realloc(p, size * 2);
		(void)q;
		break;
	case 2:
		(void)os_malloc_usable_size(p);
		break;
	}
}

static void scen_underflow_size_word_small_free(void)
{
	underflow_case(SMALL, 0, 0);
}
static void scen_underflow_check_word_small_free(void)
{
	underflow_case(SMALL, 1, 0);
}
static void scen_underflow_small_realloc(void)
{
	underflow_case(SMALL, 0, 1);
}
static void scen_underflow_small_usable_size(void)
{
	underflow_case(SMALL, 0, 2);
}
static void scen_underflow_medium_free(void)
{
	underflow_case(MEDIUM, 0, 0);
}
static void scen_underflow_medium_realloc(void)
{
	underflow_case(MEDIUM, 1, 1);
}
static void scen_underflow_mmap_free(void)
{
	underflow_case(LARGE, 0, 0);
}
static void scen_underflow_mmap_realloc(void)
{
	underflow_case(LARGE, 1, 1);
}
static void scen_underflow_mmap_usable_size(void)
{
	underflow_case(LARGE, 0, 2);
}

/* M30: write after free into the links of a free block. */
static void corrupt_word(unsigned char *p, int word)
{
	uint64_t v;
	memcpy(&v, p + 8 * word, sizeof v);
	v ^= 0x4141414141414141ULL;
	memcpy(p + 8 * word, &v, sizeof v);
}

static void scen_write_after_free_bin_next_link_then_malloc(void)
{
	unsigned char *a = xmalloc(2000), *guard = xmalloc(2000);
	os_free(a);
	corrupt_word(a, 0);
	expect_ptr(a);
	void *q = os_malloc(2000);
	(void)q;
	os_free(guard);
}

static void scen_write_after_free_bin_prev_link_then_malloc(void)
{
	unsigned char *a = xmalloc(2000), *guard = xmalloc(2000);
	os_free(a);
	corrupt_word(a, 1);
	expect_ptr(a);
	void *q = os_malloc(2000);
	(void)q;
	os_free(guard);
}

/* Freeing the neighbour merges with the corrupted free block. */
static void scen_write_after_free_bin_link_then_free_neighbour(void)
{
	unsigned char *a = xmalloc(MEDIUM), *b = xmalloc(MEDIUM);
	unsigned char *guard = xmalloc(MEDIUM);
	setup_require(next_payload(a) == b, "a and b not adjacent");
	os_free(a);
	corrupt_word(a, 0);
	expect_ptr(a);
	os_free(b);
	os_free(guard);
}

/* Same for a small binned block (caches off). */
static void scen_write_after_free_small_binned_then_malloc(void)
{
	unsigned char *a = xmalloc(SMALL_B), *guard = xmalloc(SMALL_B);
	os_free(a);
	corrupt_word(a, 0);
	expect_ptr(a);
	void *q = os_malloc(SMALL_B);
	(void)q;
	os_free(guard);
}

/* A thread-cached block: its link and its check word. */
static void scen_write_after_free_cached_link_then_malloc(void)
{
	unsigned char *p = xmalloc(SMALL);
	os_free(p);
	corrupt_word(p, 0);
	expect_ptr(p);
	void *q = os_malloc(SMALL);
	(void)q;
}

static void scen_write_after_free_cached_check_then_malloc(void)
{
	unsigned char *p = xmalloc(SMALL);
	os_free(p);
	corrupt_word(p, 1);
	expect_ptr(p);
	void *q = os_malloc(SMALL);
	(void)q;
}

static void scen_write_after_free_cached_link_then_calloc(void)
{
	unsigned char *p = xmalloc(SMALL);
	os_free(p);
	corrupt_word(p, 0);
	expect_ptr(p);
	void *q = os_calloc(1, SMALL);
	(void)q;
}

/* M31 (junk=1): a write into the payload of a free block. */
static void scen_junk_write_after_free_medium(void)
{
	unsigned char *a = xmalloc(2000), *guard = xmalloc(2000);
	os_free(a);
	a[1000] = 1;
	expect_ptr(a);
	void *q = os_malloc(2000);
	(void)q;
	os_free(guard);
}

static void scen_junk_write_after_free_small(void)
{
	unsigned char *a = xmalloc(SMALL_B), *guard = xmalloc(SMALL_B);
	os_free(a);
	a[50] = 1;
	expect_ptr(a);
	void *q = os_malloc(SMALL_B);
	(void)q;
	os_free(guard);
}

/* M31 (junk=1), deep in a big free block: the first allocation from it
 * takes (and verifies) only its part; the write is found when the part
 * holding it is taken, from the remainder: block sizes 29024 and 2032. */
static void scen_junk_write_after_free_deep(void)
{
	unsigned char *a = xmalloc(40000), *guard = xmalloc(64);
	os_free(a);
	a[30000] = 1;
	void *first = os_malloc(29000);
	setup_require(first == a, "the free block was not reused");
	expect_ptr(a + 29024);
	void *q = os_malloc(2000);
	(void)q;
	os_free(guard);
}

/* M31 (junk=1), a block merged with its free neighbour: the merged block
 * holds junk where the freed block's data was, and the write is found. */
static void scen_junk_write_after_free_merged(void)
{
	unsigned char *b = xmalloc(2000), *c = xmalloc(2000);
	void *guard = xmalloc(64);
	memset(c, 0x5a, 2000);
	os_free(b);
	os_free(c); /* merges with b */
	c[100] = 1;
	expect_ptr(b);
	void *q = os_malloc(3900);
	(void)q;
	os_free(guard);
}

/* M25 (check=2): overflow past the requested size, inside the block. */
static void canary_case(size_t size, size_t bytes, int action)
{
	unsigned char *p = xmalloc(size);
	memset(p + size, 'x', bytes);
	expect_ptr(p);
	void *q;
	switch (action) {
	case 0:
		os_free(p);
		break;
	case 1:
		q = os_realloc(p, size + 100);
		(void)q;
		break;
	case 2:
		(void)os_malloc_usable_size(p);
		break;
	}
}

static void scen_canary_overflow_1_small_free(void)
{
	canary_case(20, 1, 0);
}
static void scen_canary_overflow_8_small_free(void)
{
	canary_case(20, 8, 0);
}
static void scen_canary_overflow_1_exact_class_free(void)
{
	canary_case(32, 1, 0);
}
static void scen_canary_overflow_1_medium_free(void)
{
	canary_case(MEDIUM + 3, 1, 0);
}
static void scen_canary_overflow_8_medium_realloc(void)
{
	canary_case(MEDIUM, 8, 1);
}
static void scen_canary_overflow_1_usable_size(void)
{
	canary_case(40, 1, 2);
}

/* M36: a signal handler that calls the allocator while the thread is
 * inside it.  The test binary interposes sbrk (the library's only caller)
 * and raises the signal from inside it, under the heap lock. */
static volatile sig_atomic_t raise_in_sbrk;
static unsigned char *handler_block;
static void *(*real_sbrk)(intptr_t);

void *sbrk(intptr_t increment)
{
	if (!real_sbrk)
		real_sbrk = (void *(*)(intptr_t))dlsym(RTLD_NEXT, "sbrk");
	if (raise_in_sbrk) {
		raise_in_sbrk = 0;
		raise(SIGUSR1);
	}
	return real_sbrk(increment);
}

static void handler_malloc(int sig)
{
	(void)sig;
	void *p = os_malloc(MEDIUM);
	(void)p;
}

static void handler_free(int sig)
{
	(void)sig;
	os_free(handler_block);
}

static void scen_recursive_malloc_from_signal_handler(void)
{
	signal(SIGUSR1, handler_malloc);
	os_free(xmalloc(MEDIUM));
	raise_in_sbrk = 1;
	expect_ptr(NULL);
	for (int i = 0; i < 4; i++) {
		void *p = os_malloc(120000); /* the heap must grow */
		(void)p;
	}
}

static void scen_recursive_free_from_signal_handler(void)
{
	signal(SIGUSR1, handler_free);
	handler_block = xmalloc(MEDIUM);
	raise_in_sbrk = 1;
	expect_ptr(NULL);
	for (int i = 0; i < 4; i++) {
		void *p = os_malloc(120000);
		(void)p;
	}
}

/* M36 at the edges of the heap lock: the signal comes just after the
 * mutex is taken, or just before it is given back.  The test binary
 * interposes the two calls for the heap's mutex.  A thread that waits is
 * started first: with only one thread, the heap takes no mutex. */
extern pthread_mutex_t osa_heap_lock;
static volatile sig_atomic_t raise_after_lock, raise_before_unlock;

int pthread_mutex_lock(pthread_mutex_t *m)
{
	static int (*real)(pthread_mutex_t *);
	if (!real)
		real = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT,
							 "pthread_mutex_lock");
	int rc = real(m);
	if (m == &osa_heap_lock && raise_after_lock) {
		raise_after_lock = 0;
		raise(SIGUSR1);
	}
	return rc;
}

int pthread_mutex_unlock(pthread_mutex_t *m)
{
	static int (*real)(pthread_mutex_t *);
	if (!real)
		real = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT,
							 "pthread_mutex_unlock");
	if (m == &osa_heap_lock && raise_before_unlock) {
		raise_before_unlock = 0;
		raise(SIGUSR1);
	}
	return real(m);
}

static void *wait_forever(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void not_alone(void)
{
	pthread_t t;
	setup_require(pthread_create(&t, NULL, wait_forever, NULL) == 0,
		      "pthread_create");
}

/* Arms *edge, then makes os_malloc take the heap lock. */
static void recursive_at_a_lock_edge(volatile sig_atomic_t *edge)
{
	signal(SIGUSR1, handler_malloc);
	not_alone();
	os_free(xmalloc(MEDIUM));
	*edge = 1;
	expect_ptr(NULL);
	void *p = os_malloc(MEDIUM);
	(void)p;
}

static void scen_recursive_malloc_just_after_the_heap_lock(void)
{
	recursive_at_a_lock_edge(&raise_after_lock);
}

static void scen_recursive_malloc_just_before_the_heap_unlock(void)
{
	recursive_at_a_lock_edge(&raise_before_unlock);
}

/* M37: the first call to osalloc frees a foreign pointer. */
static void scen_free_before_any_allocation_global(void)
{
	expect_ptr(global_pool + 16);
	os_free(launder(global_pool + 16));
}

static void scen_free_before_any_allocation_stack(void)
{
	_Alignas(16) unsigned char buf[32];
	memset(buf, 0, sizeof buf);
	void *p = launder(buf);
	expect_ptr(p);
	os_free(p);
}

static void scen_realloc_before_any_allocation(void)
{
	expect_ptr(global_pool + 32);
	void *q = os_realloc(launder(global_pool + 32), 10);
	(void)q;
}

static void scen_usable_size_before_any_allocation(void)
{
	expect_ptr(global_pool + 48);
	(void)os_malloc_usable_size(launder(global_pool + 48));
}

/* ---- scenarios that must NOT abort ---- */

/* M34: user data that looks like metadata. */
static void scen_mimic_free_bin_block_links_in_live_block(void)
{
	unsigned char *a = xmalloc(2000), *guard = xmalloc(2000);
	unsigned char *live = xmalloc(2000);
	os_free(a);
	memcpy(live, a, 16);           /* the encoded links of a free block */
	memcpy(live + 16, a - 16, 16); /* and its header */
	os_free(live);
	os_free(guard);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
}

static void scen_mimic_cached_block_links_in_other_block(void)
{
	unsigned char *p = xmalloc(SMALL), *q = xmalloc(SMALL);
	os_free(p);
	memcpy(q, p, 16); /* p's cache link and check */
	os_free(q);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
}

/* glibc tst-tcfree3: the "key" of a cached block, read while it was free,
 * written into the same block after it was handed out again. */
static void scen_mimic_cached_block_links_after_reuse(void)
{
	unsigned char *p = xmalloc(SMALL);
	unsigned char saved[16];
	os_free(p);
	memcpy(saved, p, sizeof saved);
	unsigned char *q = xmalloc(SMALL);
	setup_require(q == p, "the cache did not hand the block out again");
	memcpy(q, saved, sizeof saved);
	os_free(q);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
}

/* The junk byte in live data (junk=1) is not a write after free. */
static void scen_mimic_junk_bytes_in_live_block(void)
{
	unsigned char *a = xmalloc(2000), *guard = xmalloc(2000);
	memset(a, 0xdf, 2000);
	os_free(a);
	unsigned char *b = os_malloc(2000);
	CHILD_REQUIRE(b == a, "reused the block");
	memset(b, 0xdf, 2000);
	os_free(b);
	os_free(guard);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
}

/* junk=1 fills only what a free changes and verifies only what an
 * allocation takes: blocks freed next to free ones (merging on both sides)
 * and big free blocks carved in many pieces hold junk exactly where they
 * should, and no allocation sees a write after free that did not happen. */
static void scen_no_junk_false_alarm_after_merges_and_splits(void)
{
	enum { N = 200 };
	unsigned char *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = xmalloc(100 + (size_t)(i % 7) * 300);
		memset(p[i], 0x5a, 100 + (size_t)(i % 7) * 300);
	}
	void *guard = xmalloc(64);
	for (int i = 0; i < N; i += 2) /* free ones between live ones */
		os_free(p[i]);
	for (int i = 1; i < N; i += 2) /* merge with both neighbours */
		os_free(p[i]);
	for (int round = 0; round < 3; round++) { /* carve, free, merge */
		for (int i = 0; i < N; i++) {
			size_t n = 24 + (size_t)((i * 37 + round * 11) % 900);
			p[i] = xmalloc(n);
			memset(p[i], 0x5a, n);
		}
		for (int i = N - 1; i >= 0; i -= 3)
			os_free(p[i]);
		for (int i = 0; i < N; i++)
			if ((N - 1 - i) % 3 != 0)
				os_free(p[i]);
	}
	os_free(guard);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
}

/* A live block full of header-like words: a copy of its own header, a
 * copy of the next header, sizes with every state. */
static void scen_mimic_headers_in_live_blocks(void)
{
	unsigned char *a, *b;
	adjacent_pair(SMALL_B, &a, &b);
	memcpy(a, a - 16, 16);
	memcpy(a + 16, b - 16, 16);
	for (int i = 2; i < 6; i++) {
		uint64_t w = 112 | (uint64_t)(i - 2);
		memcpy(a + 16 * i, &w, 8);
	}
	os_free(a);
	os_free(b);
	unsigned char *m = xmalloc(LARGE);
	memcpy(m, m - 16, 16);
	os_free(m);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
}

/* M38: aligned and calloc'd blocks go back through os_free and
 * os_realloc like any other. */
static void scen_aligned_blocks_free_and_realloc(void)
{
	static const size_t aligns[] = {16, 32, 64, 256, 4096, 65536};
	static const size_t sizes[] = {1, 24, 100, 1000, 5000, 100000, 200000};
	for (size_t i = 0; i < sizeof aligns / sizeof *aligns; i++) {
		for (size_t j = 0; j < sizeof sizes / sizeof *sizes; j++) {
			size_t al = aligns[i], sz = sizes[j];
			unsigned char *p = os_aligned_alloc(al, sz);
			CHILD_REQUIRE(p && (uintptr_t)p % al == 0,
			              "aligned_alloc(%zu, %zu)", al, sz);
			fill_pattern(p, sz, al + sz);
			void *m = NULL;
			CHILD_REQUIRE(os_posix_memalign(&m, al, sz) == 0 &&
			                  (uintptr_t)m % al == 0,
			              "posix_memalign(%zu, %zu)", al, sz);
			unsigned char *r = os_realloc(p, sz * 3);
			CHILD_REQUIRE(r && (uintptr_t)r % 16 == 0, "realloc");
			CHILD_REQUIRE(check_pattern(r, sz, al + sz) == sz,
			              "realloc kept the contents");
			r = os_realloc(r, sz / 2 + 1);
			CHILD_REQUIRE(r != NULL, "realloc shrink");
			CHILD_REQUIRE(check_pattern(r, sz / 2 + 1, al + sz) ==
			                  sz / 2 + 1,
			              "shrink kept the contents");
			os_free(r);
			os_free(m);
		}
	}
	unsigned char *c = os_calloc(100, 30);
	CHILD_REQUIRE(c != NULL, "calloc");
	os_free(c);
	c = os_calloc(1000, 300);
	CHILD_REQUIRE(c != NULL, "calloc large");
	c = os_realloc(c, 400000);
	CHILD_REQUIRE(c != NULL, "realloc calloc'd block");
	os_free(c);
	CHILD_REQUIRE(os_heap_check() == 0, "heap check");
}

/* os_heap_check reports a corrupted cached block and returns -1. */
static void scen_heap_check_reports_corrupted_cache_link(void)
{
	unsigned char *p = xmalloc(SMALL);
	os_free(p);
	corrupt_word(p, 0);
	expect_ptr(p);
	CHILD_REQUIRE(os_heap_check() == -1, "heap check must fail");
	_exit(CHILD_OK);
}

static void scen_heap_check_reports_corrupted_bin_link(void)
{
	unsigned char *a = xmalloc(2000), *guard = xmalloc(2000);
	os_free(a);
	corrupt_word(a, 1);
	(void)guard;
	CHILD_REQUIRE(os_heap_check() == -1, "heap check must fail");
	_exit(CHILD_OK);
}

static void scen_heap_check_reports_overflow(void)
{
	unsigned char *a, *b;
	adjacent_pair(MEDIUM, &a, &b);
	overflow_8_bytes(a);
	expect_ptr(b);
	CHILD_REQUIRE(os_heap_check() == -1, "heap check must fail");
	_exit(CHILD_OK);
}

/* ---- the table ---- */

#define DOUBLE "double free"
#define NOT_OURS "pointer not allocated by osalloc"
#define NOT_START "pointer is not the start of a block"
#define MISALIGNED "misaligned pointer"
#define HEADER "corrupted block header"
#define NEXT_HEADER "corrupted header of next block (heap overflow?)"
#define CANARY "canary after block corrupted (heap overflow)"
#define FREE_LIST "corrupted free list (write after free?)"
#define WAF "write after free detected"
#define RECURSIVE "recursive call (signal handler?)"
#define DOUBLE_OR_NOT_START DOUBLE "|" NOT_START

#define NOCACHE "cache=0"
#define STRICT "check=2"
#define JUNK "junk=1"

/* X(name, function, cause, OSALLOC_OPTIONS or NULL) */
#define DEATH_CASES(X)                                                         \
	X(double_free_small_immediately, "os_free", DOUBLE, NULL)              \
	X(double_free_small_links_overwritten, "os_free", DOUBLE, NULL)        \
	X(double_free_small_binned, "os_free", DOUBLE, NOCACHE)                \
	X(double_free_small_delayed, "os_free", DOUBLE, NULL)                  \
	X(double_free_after_merge_medium, "os_free", NOT_START, NULL)          \
	X(double_free_after_merge_small_binned, "os_free", NOT_START, NOCACHE) \
	X(double_free_after_merge_into_top, "os_free", DOUBLE_OR_NOT_START,    \
	  NULL)                                                                \
	X(double_free_medium, "os_free", DOUBLE, NULL)                         \
	X(double_free_just_under_mmap_threshold, "os_free", DOUBLE, NULL)      \
	X(double_free_mmap, "os_free", DOUBLE, NULL)                           \
	X(realloc_of_freed_small, "os_realloc", DOUBLE, NULL)                  \
	X(realloc_of_freed_small_binned, "os_realloc", DOUBLE, NOCACHE)        \
	X(realloc_of_freed_medium, "os_realloc", DOUBLE, NULL)                 \
	X(realloc_of_freed_mmap, "os_realloc", DOUBLE, NULL)                   \
	X(realloc_to_zero_of_freed_small, "os_realloc", DOUBLE, NULL)          \
	X(reallocarray_of_freed_small, "os_reallocarray", DOUBLE, NULL)        \
	X(free_after_realloc_to_zero_small, "os_free", DOUBLE, NULL)           \
	X(free_after_realloc_to_zero_mmap, "os_free", DOUBLE, NULL)            \
	X(free_interior_small, "os_free", NOT_START, NULL)                     \
	X(free_interior_medium, "os_free", NOT_START, NULL)                    \
	X(free_interior_mmap, "os_free", NOT_START, NULL)                      \
	X(free_interior_mmap_second_page, "os_free", NOT_START, NULL)          \
	X(free_misaligned_small, "os_free", MISALIGNED, NULL)                  \
	X(free_misaligned_by_8_medium, "os_free", MISALIGNED, NULL)            \
	X(free_misaligned_mmap, "os_free", MISALIGNED, NULL)                   \
	X(free_stack_address, "os_free", NOT_OURS, NULL)                       \
	X(free_misaligned_stack_address, "os_free", MISALIGNED, NULL)          \
	X(free_global_address, "os_free", NOT_OURS, NULL)                      \
	X(free_user_mmap_rw, "os_free", NOT_OURS, NULL)                        \
	X(free_user_mmap_prot_none, "os_free", NOT_OURS, NULL)                 \
	X(free_user_mmap_prot_none_page_start, "os_free", NOT_OURS, NULL)      \
	X(free_wild_1, "os_free", MISALIGNED, NULL)                            \
	X(free_wild_16, "os_free", NOT_OURS, NULL)                             \
	X(free_wild_minus_16, "os_free", NOT_OURS, NULL)                       \
	X(free_wild_non_canonical, "os_free", NOT_OURS, NULL)                  \
	X(free_wild_top_of_user_space, "os_free", NOT_OURS, NULL)              \
	X(free_glibc_malloc_pointer, "os_free", NOT_OURS, NULL)                \
	X(free_glibc_malloc_pointer_interleaved, "os_free", NOT_OURS, NULL)    \
	X(realloc_stack_address, "os_realloc", NOT_OURS, NULL)                 \
	X(realloc_interior_small, "os_realloc", NOT_START, NULL)               \
	X(realloc_interior_mmap, "os_realloc", NOT_START, NULL)                \
	X(realloc_misaligned_medium, "os_realloc", MISALIGNED, NULL)           \
	X(realloc_wild, "os_realloc", NOT_OURS, NULL)                          \
	X(usable_size_of_freed_small, "os_malloc_usable_size", DOUBLE, NULL)   \
	X(usable_size_of_freed_medium, "os_malloc_usable_size", DOUBLE, NULL)  \
	X(usable_size_of_freed_mmap, "os_malloc_usable_size", DOUBLE, NULL)    \
	X(usable_size_interior, "os_malloc_usable_size", NOT_START, NULL)      \
	X(usable_size_misaligned, "os_malloc_usable_size", MISALIGNED, NULL)   \
	X(usable_size_global, "os_malloc_usable_size", NOT_OURS, NULL)         \
	X(overflow_flag_small_free_self, "os_free", NEXT_HEADER, NULL)         \
	X(overflow_flag_small_free_next, "os_free", HEADER, NULL)              \
	X(overflow_flag_medium_free_self, "os_free", NEXT_HEADER, NULL)        \
	X(overflow_flag_medium_realloc_next, "os_realloc", HEADER, NULL)       \
	X(overflow_1_small_free_self, "os_free", NEXT_HEADER, NULL)            \
	X(overflow_1_small_free_next, "os_free", HEADER, NULL)                 \
	X(overflow_8_small_free_self, "os_free", NEXT_HEADER, NULL)            \
	X(overflow_8_small_free_next, "os_free", HEADER, NULL)                 \
	X(overflow_1_small_realloc_self, "os_realloc", NEXT_HEADER, NULL)      \
	X(overflow_8_small_realloc_next, "os_realloc", HEADER, NULL)           \
	X(overflow_1_small_binned_free_self, "os_free", NEXT_HEADER, NOCACHE)  \
	X(overflow_8_small_binned_free_next, "os_free", HEADER, NOCACHE)       \
	X(overflow_1_medium_free_self, "os_free", NEXT_HEADER, NULL)           \
	X(overflow_1_medium_free_next, "os_free", HEADER, NULL)                \
	X(overflow_8_medium_free_self, "os_free", NEXT_HEADER, NULL)           \
	X(overflow_8_medium_free_next, "os_free", HEADER, NULL)                \
	X(overflow_1_medium_realloc_self_grow, "os_realloc", NEXT_HEADER,      \
	  NULL)                                                                \
	X(overflow_8_medium_realloc_self_shrink, "os_realloc", NEXT_HEADER,    \
	  NULL)                                                                \
	X(overflow_8_medium_realloc_next, "os_realloc", HEADER, NULL)          \
	X(overflow_8_near_mmap_free_self, "os_free", NEXT_HEADER, NULL)        \
	X(overflow_8_into_top_then_malloc, "os_malloc", HEADER, NULL)          \
	X(overflow_1_into_top_then_small_malloc, "os_malloc", HEADER, NULL)    \
	X(overflow_8_into_top_then_free_self, "os_free", NEXT_HEADER, NULL)    \
	X(underflow_size_word_small_free, "os_free", HEADER, NULL)             \
	X(underflow_check_word_small_free, "os_free", HEADER, NULL)            \
	X(underflow_small_realloc, "os_realloc", HEADER, NULL)                 \
	X(underflow_small_usable_size, "os_malloc_usable_size", HEADER, NULL)  \
	X(underflow_medium_free, "os_free", HEADER, NULL)                      \
	X(underflow_medium_realloc, "os_realloc", HEADER, NULL)                \
	X(underflow_mmap_free, "os_free", HEADER, NULL)                        \
	X(underflow_mmap_realloc, "os_realloc", HEADER, NULL)                  \
	X(underflow_mmap_usable_size, "os_malloc_usable_size", HEADER, NULL)   \
	X(write_after_free_bin_next_link_then_malloc, "os_malloc", FREE_LIST,  \
	  NULL)                                                                \
	X(write_after_free_bin_prev_link_then_malloc, "os_malloc", FREE_LIST,  \
	  NULL)                                                                \
	X(write_after_free_bin_link_then_free_neighbour, "os_free", FREE_LIST, \
	  NULL)                                                                \
	X(write_after_free_small_binned_then_malloc, "os_malloc", FREE_LIST,   \
	  NOCACHE)                                                             \
	X(write_after_free_cached_link_then_malloc, "os_malloc", FREE_LIST,    \
	  NULL)                                                                \
	X(write_after_free_cached_check_then_malloc, "os_malloc", FREE_LIST,   \
	  NULL)                                                                \
	X(write_after_free_cached_link_then_calloc, "os_calloc", FREE_LIST,    \
	  NULL)                                                                \
	X(junk_write_after_free_medium, "os_malloc", WAF, JUNK)                \
	X(junk_write_after_free_small, "os_malloc", WAF, JUNK)                 \
	X(junk_write_after_free_deep, "os_malloc", WAF, JUNK)                  \
	X(junk_write_after_free_merged, "os_malloc", WAF, JUNK)                \
	X(canary_overflow_1_small_free, "os_free", CANARY, STRICT)             \
	X(canary_overflow_8_small_free, "os_free", CANARY, STRICT)             \
	X(canary_overflow_1_exact_class_free, "os_free", CANARY, STRICT)       \
	X(canary_overflow_1_medium_free, "os_free", CANARY, STRICT)            \
	X(canary_overflow_8_medium_realloc, "os_realloc", CANARY, STRICT)      \
	X(canary_overflow_1_usable_size, "os_malloc_usable_size", CANARY,      \
	  STRICT)                                                              \
	X(recursive_malloc_from_signal_handler, "os_malloc", RECURSIVE, NULL)  \
	X(recursive_free_from_signal_handler, "os_free", RECURSIVE, NULL)      \
	X(recursive_malloc_just_after_the_heap_lock, "os_malloc", RECURSIVE,   \
	  NULL)                                                                \
	X(recursive_malloc_just_before_the_heap_unlock, "os_malloc",           \
	  RECURSIVE, NULL)                                                     \
	X(free_before_any_allocation_global, "os_free", NOT_OURS, NULL)        \
	X(free_before_any_allocation_stack, "os_free", NOT_OURS, NULL)         \
	X(realloc_before_any_allocation, "os_realloc", NOT_OURS, NULL)         \
	X(usable_size_before_any_allocation, "os_malloc_usable_size",          \
	  NOT_OURS, NULL)

/* Cases that exit 0: X(name, OSALLOC_OPTIONS, expected report or NULL) */
#define REPORT_CASES(X)                                             \
	X(mimic_free_bin_block_links_in_live_block, NULL, NULL)     \
	X(mimic_cached_block_links_in_other_block, NULL, NULL)      \
	X(mimic_cached_block_links_after_reuse, NULL, NULL)         \
	X(mimic_junk_bytes_in_live_block, JUNK, NULL)               \
	X(no_junk_false_alarm_after_merges_and_splits, JUNK, NULL)  \
	X(mimic_headers_in_live_blocks, NULL, NULL)                 \
	X(aligned_blocks_free_and_realloc, NULL, NULL)              \
	X(aligned_blocks_free_and_realloc_strict, STRICT, NULL)     \
	X(heap_check_reports_corrupted_cache_link, NULL, FREE_LIST) \
	X(heap_check_reports_corrupted_bin_link, NULL, FREE_LIST)   \
	X(heap_check_reports_overflow, NULL, HEADER)

static void scen_aligned_blocks_free_and_realloc_strict(void)
{
	scen_aligned_blocks_free_and_realloc();
}

struct scenario {
	const char *name;
	void (*run)(void);
};

#define X_ENTRY(name, ...) {#name, scen_##name},
static const struct scenario scenarios[] = {DEATH_CASES(X_ENTRY)
                                                REPORT_CASES(X_ENTRY)};

/* Child side: runs one scenario, then exits 0 (a death case that gets
 * here was not detected). */
static int run_scenario(const char *name)
{
	for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++) {
		if (strcmp(scenarios[i].name, name) == 0) {
			scenarios[i].run();
			return CHILD_OK;
		}
	}
	child_say("no scenario %s", name);
	return CHILD_SETUP;
}

/* Parent side: re-executes this program on a scenario. */
static void spawn_scenario(const char *name, const char *options,
                           struct child_result *r)
{
	int fds[2];
	memset(r, 0, sizeof *r);
	pid_t pid = child_start(DEATH_TIMEOUT, fds);
	if (pid == 0) {
		if (options)
			setenv("OSALLOC_OPTIONS", options, 1);
		else
			unsetenv("OSALLOC_OPTIONS");
		char *argv[] = {self_exe, (char *)"--child", (char *)name,
		                NULL};
		execv(self_exe, argv);
		child_say("execv %s: %s", self_exe, strerror(errno));
		_exit(CHILD_SETUP);
	}
	ck_assert_msg(pid > 0, "fork: %s", strerror(errno));
	child_finish(pid, fds, r);
}

/* The line a report must be, for the pointer the child announced. */
static void expected_line(const char *func, const char *cause,
                          const struct child_result *r, char *buf, size_t len)
{
	uintptr_t ptr = 0;
	ck_assert_msg(r->aux_len == sizeof ptr,
	              "the child did not announce the pointer (stderr: %s)",
	              r->err);
	memcpy(&ptr, r->aux, sizeof ptr);
	snprintf(buf, len, "osalloc: %s(): %s: 0x%lx\n", func, cause,
	         (unsigned long)ptr);
}

/* `cause` may list alternatives separated by '|' (M03 allows two). */
static void expect_death(const char *name, const char *func, const char *cause,
                         const char *options)
{
	struct child_result r;
	char want[256], one[128], st[64];
	spawn_scenario(name, options, &r);
	ck_assert_msg(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT,
	              "%s: expected SIGABRT with \"%s(): %s\", got %s; "
	              "stderr: \"%s\"",
	              name, func, cause,
	              describe_status(r.status, st, sizeof st), r.err);
	for (const char *c = cause;; c++) {
		size_t len = strcspn(c, "|");
		snprintf(one, sizeof one, "%.*s", (int)len, c);
		expected_line(func, one, &r, want, sizeof want);
		if (strcmp(r.err, want) == 0)
			return;
		c += len;
		if (!*c)
			break;
	}
	ck_abort_msg("%s: expected the line \"%.*s\", got \"%s\"", name,
	             (int)strlen(want) - 1, want, r.err);
}

static void expect_report(const char *name, const char *options,
                          const char *cause)
{
	struct child_result r;
	char want[256], st[64];
	spawn_scenario(name, options, &r);
	ck_assert_msg(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
	              "%s: expected exit 0, got %s; stderr: \"%s\"", name,
	              describe_status(r.status, st, sizeof st), r.err);
	if (!cause) {
		ck_assert_msg(r.err_len == 0, "%s: unexpected output \"%s\"",
		              name, r.err);
		return;
	}
	if (r.aux_len == 0) {
		/* Pointer not deterministic: the line up to it. */
		snprintf(want, sizeof want, "osalloc: os_heap_check(): %s: 0x",
		         cause);
		ck_assert_msg(strncmp(r.err, want, strlen(want)) == 0 &&
		                  strchr(r.err, '\n') == r.err + r.err_len - 1,
		              "%s: expected one line \"%s...\", got \"%s\"",
		              name, want, r.err);
		return;
	}
	expected_line("os_heap_check", cause, &r, want, sizeof want);
	ck_assert_msg(strcmp(r.err, want) == 0,
	              "%s: expected the line \"%.*s\", got \"%s\"", name,
	              (int)strlen(want) - 1, want, r.err);
}

#define X_DEATH_TEST(name, func, cause, options)           \
	START_TEST(test_##name)                            \
	{                                                  \
		expect_death(#name, func, cause, options); \
	}                                                  \
	END_TEST
DEATH_CASES(X_DEATH_TEST)

#define X_REPORT_TEST(name, options, cause)           \
	START_TEST(test_##name)                       \
	{                                             \
		expect_report(#name, options, cause); \
	}                                             \
	END_TEST
REPORT_CASES(X_REPORT_TEST)

/* ---- size edge cases: NULL with ENOMEM, nothing changes (in process) ---- */

/* ck_assert_msg records a checkpoint on every call: in long loops, test
 * first. */
#define FAIL_UNLESS(cond, ...)                     \
	do {                                       \
		if (!(cond))                       \
			ck_abort_msg(__VA_ARGS__); \
	} while (0)

/* Some live blocks, so that "nothing changes" means something. */
static void *live[3];

static void make_live_blocks(void)
{
	live[0] = os_malloc(SMALL);
	live[1] = os_malloc(MEDIUM);
	live[2] = os_malloc(LARGE);
	ck_assert(live[0] && live[1] && live[2]);
	fill_pattern(live[0], SMALL, 1);
	fill_pattern(live[1], MEDIUM, 2);
	fill_pattern(live[2], LARGE, 3);
}

static void check_live_blocks(void)
{
	ck_assert(check_pattern(live[0], SMALL, 1) == SMALL);
	ck_assert(check_pattern(live[1], MEDIUM, 2) == MEDIUM);
	ck_assert(check_pattern(live[2], LARGE, 3) == LARGE);
	ck_assert_int_eq(os_heap_check(), 0);
}

static void assert_same_info(const struct os_mallinfo *a,
                             const struct os_mallinfo *b, const char *what)
{
	ck_assert_msg(memcmp(a, b, sizeof *a) == 0,
	              "%s changed the statistics: in use %zu -> %zu, heap %zu "
	              "-> %zu, mmap %zu -> %zu, allocs %llu -> %llu",
	              what, a->in_use_bytes, b->in_use_bytes, a->heap_bytes,
	              b->heap_bytes, a->mmap_count, b->mmap_count,
	              a->alloc_calls, b->alloc_calls);
}

/* Sizes that can never be served. */
static size_t impossible_size(size_t i)
{
	const size_t max = SIZE_MAX, pmax = (size_t)PTRDIFF_MAX;
	switch (i % 8) {
	case 0:
		return max - i / 8; /* SIZE_MAX - k */
	case 1:
		return max - 4096 + i / 8 % 4096; /* within a page */
	case 2:
		return pmax + 1 + i / 8; /* PTRDIFF_MAX + 1 + k */
	case 3:
		return pmax + 1 - i / 8 % 4096; /* a page below it */
	case 4:
		return (size_t)(i / 8 % 8192 + 8192) << 50; /* msbs << 50 */
	case 5:
		return max / 2 + 1;
	case 6:
		return pmax - 16 + i / 8 % 32; /* around PTRDIFF_MAX */
	default:
		return max - 16 * (i / 8);
	}
}

START_TEST(test_malloc_of_impossible_sizes_is_enomem)
{
	struct os_mallinfo before, after;
	make_live_blocks();
	os_mallinfo(&before);
	for (size_t i = 0; i < 8 * 4096; i++) {
		size_t n = impossible_size(i);
		errno = 0;
		void *p = os_malloc(n);
		FAIL_UNLESS(p == NULL && errno == ENOMEM,
		            "os_malloc(%zu): %p errno %d", n, p, errno);
		errno = 0;
		p = os_calloc(1, n);
		FAIL_UNLESS(p == NULL && errno == ENOMEM,
		            "os_calloc(1, %zu): %p errno %d", n, p, errno);
		errno = 0;
		p = os_realloc(NULL, n);
		FAIL_UNLESS(p == NULL && errno == ENOMEM,
		            "os_realloc(NULL, %zu): %p errno %d", n, p, errno);
		errno = 0;
		p = os_aligned_alloc(64, n);
		FAIL_UNLESS(p == NULL && errno == ENOMEM,
		            "os_aligned_alloc(64, %zu): %p errno %d", n, p,
		            errno);
		void *m = &m;
		int rc = os_posix_memalign(&m, 64, n);
		FAIL_UNLESS(rc == ENOMEM && m == &m,
		            "os_posix_memalign(64, %zu): %d", n, rc);
	}
	os_mallinfo(&after);
	assert_same_info(&before, &after, "impossible sizes");
	check_live_blocks();
}
END_TEST

/* Sizes below PTRDIFF_MAX that no machine has: the kernel refuses them
 * (with overcommit heuristics on; mode 1 would hand out 64 TiB). */
static bool overcommit_always(void)
{
	FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
	int mode = 0;
	if (f) {
		if (fscanf(f, "%d", &mode) != 1)
			mode = 0;
		fclose(f);
	}
	return mode == 1;
}

START_TEST(test_malloc_of_unmappable_sizes_is_enomem)
{
	static const size_t sizes[] = {
	    (size_t)1 << 46,
	    ((size_t)1 << 46) + 1,
	    (size_t)3 << 50,
	    ((size_t)1 << 62) + 4096,
	    (size_t)PTRDIFF_MAX - (2u << 20),
	};
	struct os_mallinfo before, after;
	if (overcommit_always() || under_valgrind())
		return;
	make_live_blocks();
	os_mallinfo(&before);
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		errno = 0;
		void *p = os_malloc(sizes[i]);
		ck_assert_msg(p == NULL && errno == ENOMEM,
		              "os_malloc(%zu): %p errno %d", sizes[i], p,
		              errno);
		errno = 0;
		p = os_calloc(sizes[i] / 8, 8);
		ck_assert_msg(p == NULL && errno == ENOMEM,
		              "os_calloc(%zu, 8): %p errno %d", sizes[i] / 8, p,
		              errno);
	}
	os_mallinfo(&after);
	assert_same_info(&before, &after, "unmappable sizes");
	check_live_blocks();
}
END_TEST

/* M20 */
START_TEST(test_calloc_and_reallocarray_overflow_is_enomem)
{
	static const size_t pairs[][2] = {
	    {SIZE_MAX / 2 + 1, 2},   {(size_t)1 << 32, (size_t)1 << 32},
	    {1, SIZE_MAX},           {SIZE_MAX, SIZE_MAX},
	    {2, SIZE_MAX / 2 + 1},   {65537, 281479271677953u},
	    {SIZE_MAX / 16 + 1, 16},
	};
	struct os_mallinfo before, after;
	make_live_blocks();
	os_mallinfo(&before);
	for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
		size_t n = pairs[i][0], s = pairs[i][1];
		errno = 0;
		void *p = os_calloc(n, s);
		ck_assert_msg(p == NULL && errno == ENOMEM,
		              "os_calloc(%zu, %zu): %p errno %d", n, s, p,
		              errno);
		errno = 0;
		p = os_reallocarray(NULL, n, s);
		ck_assert_msg(p == NULL && errno == ENOMEM,
		              "os_reallocarray(NULL, %zu, %zu): %p errno %d", n,
		              s, p, errno);
		for (int k = 0; k < 3; k++) {
			errno = 0;
			p = os_reallocarray(live[k], n, s);
			ck_assert_msg(p == NULL && errno == ENOMEM,
			              "os_reallocarray(live, %zu, %zu)", n, s);
		}
	}
	os_mallinfo(&after);
	assert_same_info(&before, &after, "calloc overflow");
	check_live_blocks();
}
END_TEST

/* M20 control: a product of 0 is not an overflow, it is size 0. */
START_TEST(test_calloc_with_a_zero_factor_is_size_zero)
{
	struct os_mallinfo before, after;
	make_live_blocks();
	os_mallinfo(&before);
	errno = EDOM;
	ck_assert_ptr_null(os_calloc(opaque(SIZE_MAX), 0));
	ck_assert_ptr_null(os_calloc(0, opaque(SIZE_MAX)));
	ck_assert_ptr_null(os_calloc(0, 0));
	ck_assert_ptr_null(os_malloc(0));
	ck_assert_int_eq(errno, EDOM);
	os_mallinfo(&after);
	assert_same_info(&before, &after, "calloc(SIZE_MAX, 0)");
	check_live_blocks();
}
END_TEST

/* M21: a realloc that cannot be served leaves the block intact. */
START_TEST(test_realloc_to_impossible_size_keeps_the_block)
{
	static const size_t sizes[] = {
	    SIZE_MAX,
	    SIZE_MAX - 4096,
	    SIZE_MAX - 1,
	    (size_t)PTRDIFF_MAX + 1,
	    (size_t)PTRDIFF_MAX,
	    (size_t)PTRDIFF_MAX - 4096,
	    SIZE_MAX / 2,
	};
	struct os_mallinfo before, after;
	make_live_blocks();
	os_mallinfo(&before);
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		for (int k = 0; k < 3; k++) {
			errno = 0;
			void *p = os_realloc(live[k], sizes[i]);
			ck_assert_msg(p == NULL && errno == ENOMEM,
			              "os_realloc(block %d, %zu): %p errno %d",
			              k, sizes[i], p, errno);
		}
	}
	os_mallinfo(&after);
	assert_same_info(&before, &after, "failed realloc");
	check_live_blocks();
	/* Still freeable and the heap intact. */
	for (int k = 0; k < 3; k++)
		os_free(live[k]);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* The wasm2go regression: malloc(1), then realloc to a huge size. */
START_TEST(test_realloc_of_one_byte_to_huge_keeps_the_heap)
{
	unsigned char *p = os_malloc(1);
	ck_assert_ptr_nonnull(p);
	*p = 0x77;
	errno = 0;
	ck_assert_ptr_null(os_realloc(p, SIZE_MAX / 2));
	ck_assert_int_eq(errno, ENOMEM);
	if (!overcommit_always() && !under_valgrind()) {
		errno = 0;
		ck_assert_ptr_null(os_realloc(p, (size_t)1 << 46));
		ck_assert_int_eq(errno, ENOMEM);
	}
	ck_assert_int_eq(*p, 0x77);
	ck_assert_int_eq(os_heap_check(), 0);
	unsigned char *q = os_realloc(p, 1000);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_eq(*q, 0x77);
	os_free(q);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* Requests around the mmap threshold are served, and the threshold decides
 * where they come from. */
START_TEST(test_sizes_around_the_mmap_threshold_are_served)
{
	static const size_t sizes[] = {
	    131072 - 4096, 131072 - 17, 131071, 131072, 131073, 131072 + 4096};
	for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
		struct os_mallinfo before, after;
		os_mallinfo(&before);
		unsigned char *p = os_malloc(sizes[i]);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % 16, 0);
		ck_assert_uint_ge(os_malloc_usable_size(p), sizes[i]);
		memset(p, 0xab, sizes[i]);
		os_mallinfo(&after);
		ck_assert_uint_eq(after.mmap_count - before.mmap_count,
		                  sizes[i] >= 131072 ? 1 : 0);
		unsigned char *q = os_calloc(1, sizes[i]);
		ck_assert_ptr_nonnull(q);
		size_t j = 0;
		while (j < sizes[i] && q[j] == 0)
			j++;
		ck_assert_msg(j == sizes[i], "calloc byte %zu not zero", j);
		os_free(q);
		os_free(p);
	}
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* M22 */
START_TEST(test_realloc_null_is_malloc_and_free_null_keeps_errno)
{
	struct os_mallinfo before, after;
	unsigned char *p = os_realloc(NULL, 100);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_ge(os_malloc_usable_size(p), 100);
	os_mallinfo(&before);
	errno = EDOM;
	ck_assert_ptr_null(os_realloc(p, 0));
	ck_assert_int_eq(errno, EDOM);
	os_mallinfo(&after);
	ck_assert_uint_eq(after.free_calls, before.free_calls + 1);
	errno = EDOM;
	os_free(NULL);
	ck_assert_int_eq(errno, EDOM);
	ck_assert_uint_eq(os_malloc_usable_size(NULL), 0);
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* M24: aligned allocation with bad alignments or sizes. */
START_TEST(test_aligned_alloc_bad_alignment_is_einval)
{
	static const size_t bad[] = {0,   3,    24,       48,
	                             100, 4097, SIZE_MAX, (size_t)PTRDIFF_MAX};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		errno = 0;
		ck_assert_ptr_null(os_aligned_alloc(bad[i], 64));
		ck_assert_int_eq(errno, EINVAL);
		void *m = &m;
		ck_assert_int_eq(os_posix_memalign(&m, bad[i], 64), EINVAL);
		ck_assert_ptr_eq(m, &m);
	}
	/* posix_memalign also wants a multiple of sizeof(void *). */
	static const size_t small_pow2[] = {1, 2, 4};
	for (size_t i = 0; i < 3; i++) {
		void *m = &m;
		ck_assert_int_eq(os_posix_memalign(&m, small_pow2[i], 64),
		                 EINVAL);
		ck_assert_ptr_eq(m, &m);
		void *p = os_aligned_alloc(small_pow2[i], 64);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % 16, 0);
		os_free(p);
	}
}
END_TEST

START_TEST(test_aligned_alloc_overflow_is_enomem)
{
	static const size_t cases[][2] = {
	    {(size_t)1 << 62, (size_t)1 << 62},
	    {(size_t)1 << 63, 16},
	    {4096, SIZE_MAX - 100},
	    {65536, (size_t)PTRDIFF_MAX - 1000},
	    {(size_t)1 << 40, (size_t)PTRDIFF_MAX - ((size_t)1 << 39)},
	};
	struct os_mallinfo before, after;
	make_live_blocks();
	os_mallinfo(&before);
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		errno = 0;
		ck_assert_ptr_null(os_aligned_alloc(cases[i][0], cases[i][1]));
		ck_assert_int_eq(errno, ENOMEM);
		void *m = &m;
		errno = EDOM;
		ck_assert_int_eq(
		    os_posix_memalign(&m, cases[i][0], cases[i][1]), ENOMEM);
		ck_assert_ptr_eq(m, &m);
	}
	os_mallinfo(&after);
	assert_same_info(&before, &after, "aligned overflow");
	check_live_blocks();
}
END_TEST

START_TEST(test_alignment_larger_than_size_is_honoured)
{
	for (size_t al = 16; al <= ((size_t)1 << 20); al <<= 1) {
		unsigned char *p = os_aligned_alloc(al, 16);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % al, 0);
		memset(p, 1, 16);
		void *m = NULL;
		ck_assert_int_eq(os_posix_memalign(&m, al, 1), 0);
		ck_assert_uint_eq((uintptr_t)m % al, 0);
		m = &m;
		ck_assert_int_eq(os_posix_memalign(&m, al, 0), 0);
		ck_assert_ptr_null(m);
		ck_assert_ptr_null(os_aligned_alloc(al, 0));
		os_free(p);
	}
	ck_assert_int_eq(os_heap_check(), 0);
}
END_TEST

/* ---- suite ---- */

static Suite *misuse_catalog_suite(void)
{
	Suite *s = suite_create("misuse_catalog");
	TCase *tc = tcase_create("death");
	tcase_set_timeout(tc, 60);
#define X_ADD(name, ...) tcase_add_test(tc, test_##name);
	DEATH_CASES(X_ADD)
	suite_add_tcase(s, tc);

	tc = tcase_create("no_false_positive");
	tcase_set_timeout(tc, 60);
	REPORT_CASES(X_ADD)
	suite_add_tcase(s, tc);

	tc = tcase_create("sizes");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_malloc_of_impossible_sizes_is_enomem);
	tcase_add_test(tc, test_malloc_of_unmappable_sizes_is_enomem);
	tcase_add_test(tc, test_calloc_and_reallocarray_overflow_is_enomem);
	tcase_add_test(tc, test_calloc_with_a_zero_factor_is_size_zero);
	tcase_add_test(tc, test_realloc_to_impossible_size_keeps_the_block);
	tcase_add_test(tc, test_realloc_of_one_byte_to_huge_keeps_the_heap);
	tcase_add_test(tc, test_sizes_around_the_mmap_threshold_are_served);
	tcase_add_test(tc,
	               test_realloc_null_is_malloc_and_free_null_keeps_errno);
	tcase_add_test(tc, test_aligned_alloc_bad_alignment_is_einval);
	tcase_add_test(tc, test_aligned_alloc_overflow_is_enomem);
	tcase_add_test(tc, test_alignment_larger_than_size_is_honoured);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--child") == 0)
		return run_scenario(argv[2]);
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
	if (n <= 0) {
		fprintf(stderr, "readlink /proc/self/exe: %s\n",
		        strerror(errno));
		return 1;
	}
	self_exe[n] = '\0';
	SRunner *sr = srunner_create(misuse_catalog_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
