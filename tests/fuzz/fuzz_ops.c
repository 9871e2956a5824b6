/* fuzz_ops.c - libFuzzer target: the input is a program of allocator
 * operations over 64 slots, checked against a shadow model.
 *
 * Each operation is 4 bytes: opcode, slot, and a 16-bit size selector biased
 * to boundaries (0, 1, 15-17, bin edges, page edges, the mmap threshold +-1,
 * sizes near SIZE_MAX and PTRDIFF_MAX).  The shadow keeps every live block's
 * requested size and fill byte.  Oracles:
 *  - every pointer is aligned (16, or the alignment asked for), its usable
 *    size covers the request, and it overlaps no other live block;
 *  - contents survive: each block is filled with its own byte and checked
 *    on free, on realloc (min(old, new) bytes) and at the end;
 *  - calloc memory is zero;
 *  - NULL only for size 0 (errno unchanged), impossible sizes, or an
 *    injected OS failure that happened during the call (errno ENOMEM); a
 *    failed realloc leaves the old block intact;
 *  - os_heap_check() == 0 every K operations and at the end;
 *  - after freeing everything, the bytes in use return to the baseline.
 * One opcode arms osa_sys_fail_nth() so that the n-th next system call
 * fails, which fuzzes the out-of-memory paths.
 *
 * Built by tests/ci/fuzz.sh with clang -fsanitize=fuzzer,address,undefined
 * against the library sources.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "osalloc.h"

enum {
	SLOTS = 64,
	CHECK_EVERY = 64, /* operations between heap checks */
	MAX_OPS = 512,
	THRESHOLD = 128 * 1024,
};

struct slot {
	unsigned char *p;
	size_t size;
	unsigned char fill;
};

static struct slot slot[SLOTS];
static size_t baseline_in_use;
static unsigned char next_fill = 1;

/* Fault injection state of the current input. */
static bool armed;
static unsigned long armed_n, armed_base;
static unsigned armed_mask;

#define FAIL(...)                                          \
	do {                                               \
		fprintf(stderr, "fuzz_ops: " __VA_ARGS__); \
		fputc('\n', stderr);                       \
		abort();                                   \
	} while (0)

#define REQUIRE(cond, ...)                 \
	do {                               \
		if (!(cond))               \
			FAIL(__VA_ARGS__); \
	} while (0)

static const size_t edges[] = {
    0,      1,      15,     16,     17,     24,     31,     32,     33,
    47,     48,     49,     100,    1000,   1007,   1008,   1009,   1023,
    1024,   1025,   2047,   2048,   2049,   4079,   4080,   4095,   4096,
    4097,   8191,   8192,   16384,  65535,  65536,  65537,  126976, 131055,
    131056, 131071, 131072, 131073, 135168, 262144, 1048576};

/* Sizes never served: beyond PTRDIFF_MAX (minus the library's margin), or
 * beyond what any machine maps (the kernel refuses; reallocarray and
 * calloc reach such products). */
static bool impossible(size_t n)
{
	return n > (size_t)PTRDIFF_MAX - (1u << 20);
}

static bool unservable(size_t n)
{
	return n >= (size_t)1 << 44;
}

/* A size from a 16-bit selector, biased to boundaries. */
static size_t pick_size(unsigned v)
{
	unsigned low = v & 0x1fff;
	switch (v >> 13) {
	case 0:
		return low & 63;
	case 1:
		return edges[low % (sizeof edges / sizeof *edges)];
	case 2:
		return 1 + low % 1024;
	case 3:
		return 1025 + low * 7;
	case 4: /* around the mmap threshold, mostly below (mappings are
	         * slow to make and unmake) */
		if (low & 7)
			return THRESHOLD - 1 - (low >> 3);
		return THRESHOLD + (low >> 3) % 64;
	case 5:
		if (low & 7)
			return 1025 + (size_t)low * 15;
		return THRESHOLD + (size_t)low * 16;
	case 6:
		return (size_t)(1 + low % 34) * 4096 + (low & 3) - 1;
	default:
		switch (low & 7) {
		case 0:
			return SIZE_MAX - (low >> 3);
		case 1:
			return (size_t)PTRDIFF_MAX + 1 - (low >> 3);
		case 2:
			return (size_t)PTRDIFF_MAX + 1 + (low >> 3);
		case 3:
			return SIZE_MAX / 2 + 1;
		default:
			return 1 + (low >> 3); /* mostly harmless */
		}
	}
}

/* First byte of [p, p+n) that is not `fill`, or n.  Not inlined: the
 * coverage ignorelist names it. */
__attribute__((noinline)) static size_t first_diff(const unsigned char *p,
                                                   size_t n, unsigned char fill)
{
	uint64_t w = 0x0101010101010101ULL * fill;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		if (v != w)
			break;
	}
	for (; i < n; i++)
		if (p[i] != fill)
			return i;
	return n;
}

/* Blocks are filled whole up to FULL bytes (a page); beyond, 64 bytes every
 * STRIDE (the same places whatever the size, so that a prefix can be checked
 * after a shrinking realloc) and the last 64 bytes: page faults and
 * memset of big mappings would otherwise take most of the time. */
enum { FULL = 4096, STRIDE = 16 * 1024, RUN = 64 };

static void fill_block(unsigned char *p, size_t n, unsigned char fill)
{
	if (n <= FULL) {
		memset(p, fill, n);
		return;
	}
	memset(p, fill, FULL);
	for (size_t i = FULL; i + RUN <= n; i += STRIDE)
		memset(p + i, fill, RUN);
	memset(p + n - RUN, fill, RUN);
}

/* First differing byte of the filled places of [0, n) (with the last 64
 * bytes when `tail`), or n. */
static size_t diff_block(const unsigned char *p, size_t n, unsigned char fill,
                         bool tail)
{
	size_t d = first_diff(p, n < FULL ? n : FULL, fill);
	if (n <= FULL || d < FULL)
		return d == (n < FULL ? n : FULL) ? n : d;
	for (size_t i = FULL; i + RUN <= n; i += STRIDE) {
		d = first_diff(p + i, RUN, fill);
		if (d < RUN)
			return i + d;
	}
	if (tail) {
		d = first_diff(p + n - RUN, RUN, fill);
		if (d < RUN)
			return n - RUN + d;
	}
	return n;
}

static void verify_slot(int i, const char *when)
{
	const struct slot *s = &slot[i];
	size_t d = diff_block(s->p, s->size, s->fill, true);
	REQUIRE(d == s->size,
	        "slot %d (%p, %zu bytes): byte %zu is %#x, not "
	        "%#x (%s)",
	        i, (void *)s->p, s->size, d, s->p[d], s->fill, when);
}

/* The injected failure happened during the call that started with the
 * counter at `before`. */
static unsigned long fault_count(void)
{
	return osa_sys_calls(armed_mask) - armed_base;
}

static bool fired_since(unsigned long before)
{
	return armed && before < armed_n && fault_count() >= armed_n;
}

static void check_new_block(int i, unsigned char *p, size_t size, size_t align)
{
	REQUIRE((uintptr_t)p % align == 0, "%p not aligned to %zu", (void *)p,
	        align);
	REQUIRE(os_malloc_usable_size(p) >= size, "usable %zu < %zu",
	        os_malloc_usable_size(p), size);
	for (int j = 0; j < SLOTS; j++) {
		if (j == i || !slot[j].p)
			continue;
		uintptr_t a = (uintptr_t)p, b = (uintptr_t)slot[j].p;
		REQUIRE(a + size <= b || b + slot[j].size <= a,
		        "new block %p+%zu overlaps slot %d %p+%zu", (void *)p,
		        size, j, (void *)slot[j].p, slot[j].size);
	}
}

static void place(int i, unsigned char *p, size_t size)
{
	slot[i].p = p;
	slot[i].size = size;
	slot[i].fill = next_fill++;
	if (!next_fill)
		next_fill = 1;
	fill_block(p, size, slot[i].fill);
}

/* NULL from an allocation of `size`: must be explained. */
static void check_null(size_t size, int err, int err_before,
                       unsigned long before, const char *op)
{
	if (size == 0) {
		REQUIRE(err == err_before, "%s(0) changed errno to %d", op,
		        err);
		return;
	}
	REQUIRE(err == ENOMEM, "%s(%zu): NULL with errno %d", op, size, err);
	REQUIRE(unservable(size) || fired_since(before),
	        "%s(%zu): NULL without cause", op, size);
}

static void release(int i)
{
	if (!slot[i].p)
		return;
	verify_slot(i, "before free");
	int e = errno = 4321;
	os_free(slot[i].p);
	REQUIRE(errno == e, "os_free changed errno");
	slot[i].p = NULL;
}

static void op_malloc(int i, size_t size)
{
	release(i);
	unsigned long before = fault_count();
	errno = 1234;
	unsigned char *p = os_malloc(size);
	if (!p) {
		check_null(size, errno, 1234, before, "os_malloc");
		return;
	}
	REQUIRE(size != 0 && !impossible(size), "os_malloc(%zu) gave %p", size,
	        (void *)p);
	check_new_block(i, p, size, 16);
	place(i, p, size);
}

static void op_calloc(int i, size_t size, unsigned b)
{
	release(i);
	size_t n = 1 + b % 8, each = size / n;
	if (b >> 4 == 15) { /* overflowing products */
		n = SIZE_MAX / 2 + 1 + b % 4;
		each = 2 + b % 3;
	}
	size_t total;
	bool over = __builtin_mul_overflow(n, each, &total);
	unsigned long before = fault_count();
	errno = 1234;
	unsigned char *p = os_calloc(n, each);
	if (!p) {
		if (over)
			REQUIRE(errno == ENOMEM, "calloc overflow: errno %d",
			        errno);
		else
			check_null(total, errno, 1234, before, "os_calloc");
		return;
	}
	REQUIRE(!over && total != 0, "os_calloc(%zu, %zu) gave %p", n, each,
	        (void *)p);
	check_new_block(i, p, total, 16);
	REQUIRE(diff_block(p, total, 0, true) == total,
	        "calloc memory not zero");
	place(i, p, total);
}

static void op_realloc(int i, size_t size, bool array, unsigned b)
{
	struct slot old = slot[i];
	if (old.p)
		verify_slot(i, "before realloc");
	size_t n = 1, each = size;
	if (array) {
		n = 1 + b % 4;
		each = size / n;
		if ((b & 0xe0) == 0xe0)
			n = SIZE_MAX / 4 + b % 16; /* overflows unless 0 */
	}
	size_t total;
	bool over = __builtin_mul_overflow(n, each, &total);
	unsigned long before = fault_count();
	errno = 1234;
	unsigned char *p =
	    array ? os_reallocarray(old.p, n, each) : os_realloc(old.p, size);
	if (!array)
		total = size;
	if (!p) {
		if (old.p && total == 0 && !over) {
			slot[i].p = NULL; /* freed */
			return;
		}
		if (over)
			REQUIRE(errno == ENOMEM, "reallocarray overflow");
		else
			check_null(total, errno, 1234, before, "os_realloc");
		if (old.p)
			verify_slot(i, "after a failed realloc");
		return;
	}
	REQUIRE(!over && total != 0 && !impossible(total),
	        "os_realloc(%zu) gave %p", total, (void *)p);
	slot[i].p = NULL;
	check_new_block(i, p, total, 16);
	if (old.p) {
		size_t keep = old.size < total ? old.size : total;
		size_t d = diff_block(p, keep, old.fill, keep == old.size);
		REQUIRE(d == keep, "realloc %zu -> %zu lost byte %zu", old.size,
		        total, d);
	}
	place(i, p, total);
}

static void op_aligned(int i, size_t size, unsigned b)
{
	release(i);
	size_t align = (size_t)1 << (b % 14); /* 1 .. 8192 */
	bool imp = size > SIZE_MAX - align || impossible(size + align);
	unsigned long before = fault_count();
	unsigned char *p;
	if (b & 0x40) {
		void *m = &m;
		errno = 1234;
		int rc = os_posix_memalign(&m, align, size);
		if (align < sizeof(void *)) {
			REQUIRE(rc == EINVAL && m == &m, "posix_memalign(%zu)",
			        align);
			return;
		}
		if (rc) {
			REQUIRE(m == &m, "posix_memalign set *memptr");
			REQUIRE(errno == 1234, "posix_memalign set errno");
			REQUIRE(rc == ENOMEM, "posix_memalign: %d", rc);
			REQUIRE(
			    imp || unservable(size) || fired_since(before),
			    "posix_memalign(%zu, %zu): ENOMEM without cause",
			    align, size);
			return;
		}
		if (size == 0) {
			REQUIRE(m == NULL, "posix_memalign(0) gave %p", m);
			return;
		}
		p = m;
	} else {
		errno = 1234;
		p = os_aligned_alloc(align, size);
		if (!p) {
			int err = errno;
			if (size && imp)
				REQUIRE(err == ENOMEM, "aligned overflow");
			else
				check_null(size, err, 1234, before,
				           "os_aligned_alloc");
			return;
		}
	}
	REQUIRE(size != 0 && !imp, "aligned(%zu) gave %p", size, (void *)p);
	check_new_block(i, p, size, align < 16 ? 16 : align);
	place(i, p, size);
}

static void heap_check(void)
{
	REQUIRE(os_heap_check() == 0, "os_heap_check failed");
}

static void arm(unsigned v)
{
	armed_mask = 1 + (v >> 4) % 15; /* any non-empty mask */
	armed_n = 1 + v % 8;
	armed_base = osa_sys_calls(armed_mask);
	armed = true;
	osa_sys_fail_nth(armed_n, armed_mask);
}

static size_t in_use(void)
{
	struct os_mallinfo m;
	osa_tcache_flush_self();
	os_mallinfo(&m);
	return m.in_use_bytes;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	os_free(os_malloc(16)); /* the thread's cache and the first segment */
	baseline_in_use = in_use();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	size_t nops = len / 4 < MAX_OPS ? len / 4 : MAX_OPS;
	armed = false;
	for (size_t k = 0; k < nops; k++) {
		const uint8_t *o = data + 4 * k;
		int i = o[1] % SLOTS;
		unsigned v = (unsigned)o[2] << 8 | o[3];
		size_t size = pick_size(v);
		switch (o[0] % 16) {
		case 0:
		case 1:
		case 2:
			op_malloc(i, size);
			break;
		case 3:
			op_calloc(i, size, o[0]);
			break;
		case 4:
		case 5:
			op_realloc(i, size, false, o[0]);
			break;
		case 6:
			op_realloc(i, size, true, o[3]);
			break;
		case 7:
		case 8:
		case 9:
			release(i);
			break;
		case 10:
			op_aligned(i, size, o[3] ^ o[0]);
			break;
		case 11:
			if (slot[i].p)
				REQUIRE(os_malloc_usable_size(slot[i].p) >=
				            slot[i].size,
				        "usable size");
			break;
		case 12:
			heap_check();
			break;
		case 13:
			if (o[3] & 1) /* keep arming rare */
				arm(v);
			break;
		case 14:
			if (slot[i].p)
				verify_slot(i, "check op");
			break;
		default:
			op_malloc(i, 1 + v % 256);
			break;
		}
		if (k % CHECK_EVERY == CHECK_EVERY - 1)
			heap_check();
	}
	osa_sys_fail_nth(0, 0);
	armed = false;
	heap_check();
	for (int i = 0; i < SLOTS; i++)
		release(i);
	heap_check();
	size_t now = in_use();
	REQUIRE(now == baseline_in_use,
	        "in use %zu after freeing all, %zu at "
	        "the start",
	        now, baseline_in_use);
	return 0;
}
