/* heap.c - the heap: arenas, segments, blocks, best-fit bins, split,
 * coalesce, and the blocks returned to their arena.
 *
 * Owns every block below the mmap threshold.  Memory comes in segments: the
 * first is one sbrk of the preallocation size (and of the rest of the page
 * where someone else left the break, so that it ends on a page boundary);
 * later growth extends the segment in place when the break is still where
 * we left it, and otherwise starts a new segment (sbrk elsewhere, or an
 * mmap when brk fails).  Segments never merge; an index sorted by address
 * finds a block's segment in O(log segments) (a heap whose break is
 * obstructed grows by 1 MiB mappings, thousands of segments).  A segment of
 * OSA_HUGE_HEAP bytes or more grows to 2 MiB boundaries and asks for
 * transparent huge pages.  Each segment ends in a fence header and keeps
 * its free space at the end as a TOP block.  Free
 * blocks live in segregated bins (exact 16-byte classes below 1 KiB, 16 per
 * power of two above) found with a bitmap, so every operation is O(1) in
 * the number of blocks.
 *
 * There are OSA_ARENAS arenas, each with its own bins and segments: arena 0
 * is the brk heap, the others grow the same way inside a reserved window of
 * address space (and so does arena 0 once the process has threads: see
 * brk_usable).  A thread allocates from its arena (given in turn at its
 * first allocation, or taken over with a parked cache); a block goes back to
 * the arena of its segment.  Blocks that a thread freed for another arena
 * wait there, by class, for that arena's next refill.
 *
 * Invariants: no two adjacent blocks are free; a free block's successor has
 * PREV_FREE set; every block start has its pagemap bit; a segment and its
 * free blocks belong to one arena.  All functions here run with
 * osa_heap_lock held.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP */
#endif
#include "internal.h"

#include <errno.h>
#include <string.h>
#ifdef HAVE_SYS_SINGLE_THREADED_H
#include <sys/single_threaded.h>
#endif

pthread_mutex_t osa_heap_lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;

struct osa_segment {
	uint64_t canary;          /* keyed with the segment's address */
	struct osa_segment *next; /* all segments, newest first */
	uintptr_t end;            /* one past the fence */
	osa_block *top;           /* the TOP block, NULL once retired */
	uintptr_t clean_from;     /* bytes from here to the fence are zero */
	uintptr_t trimmed_from;   /* pages from here were given back; 0: none */
	uintptr_t populated_to;   /* pages below were faulted in ahead */
	size_t length;            /* bytes obtained for this segment */
	bool from_mmap;
	bool huge;                /* hinted for transparent huge pages */
	unsigned arena;           /* index of the arena it belongs to */
};

enum {
	SEG_HDR = (sizeof(struct osa_segment) + 15) & ~15,
	BINMAP_WORDS = (OSA_NBINS + 63) / 64,
	TRIM_MIN = 64 * 1024, /* do not madvise less than this */
};

/* An arena: bins and a current segment of its own.  A thread takes its
 * blocks from one arena, so threads running side by side do not write to
 * neighbouring blocks (whose headers each free reads).  A freed block goes
 * back to the arena of its segment; merging never crosses segments. */
struct arena {
	osa_block *bins[OSA_NBINS];
	uint64_t binmap[BINMAP_WORDS];
	struct osa_segment *cur; /* the segment with the TOP we carve from */
	/* Its window of address space: [win_lo, win_end).  Arena 0's is the
	 * OSA_HOME_SPAN from its first segment (the break grows up into it);
	 * another arena's is a reservation of OSA_ARENA_WINDOW bytes whose
	 * pages up to win_next are committed, its own break.  Thread caches
	 * tell their arena's blocks by it (osa_heap_home). */
	uintptr_t win_lo, win_next, win_end;
	/* Blocks of this arena that threads of other arenas freed, still
	 * cached and linked as in a thread cache, by class: a refill of a
	 * cache of this arena takes a class's chain whole. */
	osa_block *returned[OSA_CACHE_CLASSES];
	uint16_t nreturned[OSA_CACHE_CLASSES];
	size_t returned_bytes;
};

/* A segment in the index: where it starts (its header) and ends, so that
 * a lookup reads no segment header. */
struct index_entry {
	uintptr_t start, end;
};

static struct {
	uint64_t canary_head;
	struct arena arenas[OSA_ARENAS]; /* 0: the brk heap */
	struct osa_segment *segs;        /* all arenas', newest first */
	/* The same segments by address, for lookups in O(log nsegs): a heap
	 * whose growth keeps falling back to mappings has thousands. */
	struct index_entry *index;
	size_t index_cap;
	size_t heap_bytes, free_bytes, used_bytes, nsegs;
	size_t trim_threshold; /* 0 until first used: OSA_TRIM_THRESHOLD */
	unsigned threads;      /* threads given an arena so far */
	uint64_t canary_tail;
} H;

/* Recursion guard (a signal handler calling in while the lock is held),
 * and how the heap is held: with the mutex, or alone. */
enum { OUT = 0, HELD_MUTEX = 1, HELD_ALONE = 2 };
static __thread unsigned char in_heap
	__attribute__((tls_model("initial-exec")));

/* The arena the current operation works on: set by each entry point under
 * the heap lock, to the caller's arena (allocation) or to the block's. */
static struct arena *A;

/* 1 + the arena of this thread's allocations; 0 until its first one.  A
 * thread that adopts a parked cache takes over its arena too. */
static __thread unsigned char thread_arena
	__attribute__((tls_model("initial-exec")));

unsigned osa_heap_thread_arena(void)
{
	return thread_arena;
}

void osa_heap_set_thread_arena(unsigned arena)
{
	assert(arena <= OSA_ARENAS);
	thread_arena = (unsigned char)arena;
}

/* ---- state integrity and locking ---- */

static uint64_t state_canary(const void *where)
{
	return osa_mix((uintptr_t)where ^ osa_keys.canary);
}

OSA_COLD OSA_NORETURN static void heap_corrupt(enum osa_cause cause,
					       const void *p)
{
	osa_fatal(osa_current_api, cause, p);
}

/* True while the calling thread is the only one, as the C library says:
 * no other thread can then take the lock, and only this one could create
 * one (never from inside the allocator), so the mutex is not needed.  The
 * uncontended lock and unlock were 6 % of a single-threaded program's
 * time in the heap's locked paths. */
static bool alone(void)
{
#ifdef HAVE_SYS_SINGLE_THREADED_H
	return __atomic_load_n(&__libc_single_threaded, __ATOMIC_RELAXED);
#else
	return false;
#endif
}

/* in_heap is set before the mutex is taken and cleared after it is given
 * back, so that a signal handler that interrupts either step and calls in
 * is told (recursive call) instead of locking the mutex a second time. */
void osa_heap_lock_acquire(void)
{
	if (OSA_UNLIKELY(in_heap))
		osa_fatal(osa_current_api, OSA_E_RECURSIVE, NULL);
	if (alone() || osa_forking) { /* forking: the lock is ours already */
		in_heap = HELD_ALONE;
	} else {
		in_heap = HELD_MUTEX;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		pthread_mutex_lock(&osa_heap_lock);
	}
	if (OSA_UNLIKELY(H.canary_head != state_canary(&H.canary_head) ||
			 H.canary_tail != state_canary(&H.canary_tail))) {
		if (H.canary_head == 0 && H.canary_tail == 0 && !H.segs) {
			H.canary_head = state_canary(&H.canary_head);
			H.canary_tail = state_canary(&H.canary_tail);
		} else {
			heap_corrupt(OSA_E_STATE, &H);
		}
	}
}

void osa_heap_lock_release(void)
{
	assert(in_heap != OUT && "release of a heap not held");
	bool mutex = in_heap == HELD_MUTEX; /* as acquired, whatever now */
	if (mutex)
		pthread_mutex_unlock(&osa_heap_lock);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	in_heap = OUT;
}

void osa_heap_after_fork_child(void)
{
	pthread_mutex_t fresh = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
	osa_heap_lock = fresh;
	in_heap = OUT;
}

/* used_bytes is written under the lock, read by statistics anywhere. */
static void used_add(ptrdiff_t delta)
{
	size_t v = H.used_bytes + (size_t)delta;
	__atomic_store_n(&H.used_bytes, v, __ATOMIC_RELAXED);
	if (delta > 0)
		osa_stats_note_in_use(v + osa_large_bytes());
}

size_t osa_heap_used_bytes(void)
{
	return __atomic_load_n(&H.used_bytes, __ATOMIC_RELAXED);
}

/* ---- blocks ---- */

static osa_block *block_at(uintptr_t a)
{
	return (osa_block *)a;
}
static osa_block *block_next(const osa_block *b)
{
	return block_at((uintptr_t)b + osa_block_size(b));
}
static uintptr_t block_flags(const osa_block *b)
{
	return osa_load(&b->word) & (OSA_PREV_FREE | OSA_PREV_MIN);
}
static uintptr_t *block_words(osa_block *b)
{
	return (uintptr_t *)(b + 1); /* payload words */
}
static void start_set(osa_block *b)
{
	osa_pagemap_set((uintptr_t)osa_block_to_ptr(b));
}
/* b stops being a block start.  Its check word is cleared too, so that no
 * stale header stays valid: check_link and prev_flags_hold trust a valid
 * keyed header inside a segment without asking the pagemap. */
static void start_clear(osa_block *b)
{
	osa_pagemap_clear((uintptr_t)osa_block_to_ptr(b));
	osa_store(&b->check, 0);
}

/* Verifies a neighbour's header before it is trusted or rewritten. */
static void verify_next(const osa_block *next)
{
	if (OSA_UNLIKELY(!osa_header_valid(next)))
		heap_corrupt(OSA_E_NEXT_HEADER, osa_block_to_ptr(next));
}

/* Rewrites next's PREV_* flags to describe its predecessor.  Only the word:
 * the check does not cover them, and next may be a cached block whose
 * check its owner toggles without the heap lock. */
static void set_prev_flags(osa_block *next, uintptr_t flags)
{
	verify_next(next);
	uintptr_t w = osa_load(&next->word) & ~OSA_PREV_MASK;
	osa_store(&next->word, w | flags);
}

static uintptr_t prev_flags_for(size_t free_size)
{
	return OSA_PREV_FREE | (free_size == OSA_MIN_BLOCK ? OSA_PREV_MIN : 0);
}

/* ---- bins ---- */

static unsigned bin_index(size_t size)
{
	if (size < 1024)
		return (unsigned)(size >> 4);
	unsigned fl = 63u - (unsigned)__builtin_clzll(size);
	unsigned sl = (unsigned)(size >> (fl - OSA_SUB_BITS)) &
		      ((1u << OSA_SUB_BITS) - 1);
	unsigned idx = OSA_EXACT_BINS + ((fl - 10) << OSA_SUB_BITS) + sl;
	assert(idx < OSA_NBINS && "block size beyond the bin table");
	return idx;
}

static uintptr_t link_code(const uintptr_t *field)
{
	return osa_keys.link ^ (uintptr_t)field;
}

static osa_block *link_get(osa_block *b, int which)
{
	uintptr_t *f = &block_words(b)[which];
	return block_at(*f ^ link_code(f));
}

static void link_put(osa_block *b, int which, osa_block *v)
{
	uintptr_t *f = &block_words(b)[which];
	OSA_VG_DEFINED(f, sizeof *f);
	*f = (uintptr_t)v ^ link_code(f);
}

static bool heap_holds(uintptr_t a);

/* A decoded link must lead to a free block before it is followed: inside a
 * heap segment (so its header can be read), with a valid keyed header in
 * state FREE.  No stale header stays valid (start_clear), so this proves a
 * block start without the pagemap, whose leaves are one more cache miss. */
static void check_link(osa_block *from, osa_block *to)
{
	if (!to)
		return;
	uintptr_t a = (uintptr_t)to;
	if ((a & 15) || !heap_holds(a) || !osa_header_ok(to) ||
	    osa_block_state(to) != OSA_FREE)
		heap_corrupt(OSA_E_FREE_LIST, osa_block_to_ptr(from));
}

enum { LINK_NEXT = 0, LINK_PREV = 1 };

static void bin_insert(osa_block *b, size_t size)
{
	unsigned i = bin_index(size);
	osa_block *head = A->bins[i];
	link_put(b, LINK_NEXT, head);
	link_put(b, LINK_PREV, NULL);
	if (head)
		link_put(head, LINK_PREV, b);
	A->bins[i] = b;
	A->binmap[i >> 6] |= (uint64_t)1 << (i & 63);
}

/* Unlinks a free block, verifying both links point back at it. */
static void bin_remove(osa_block *b)
{
	unsigned i = bin_index(osa_block_size(b));
	osa_block *next = link_get(b, LINK_NEXT);
	osa_block *prev = link_get(b, LINK_PREV);
	check_link(b, next);
	check_link(b, prev);
	if ((next && link_get(next, LINK_PREV) != b) ||
	    (prev ? link_get(prev, LINK_NEXT) != b : A->bins[i] != b))
		heap_corrupt(OSA_E_FREE_LIST, osa_block_to_ptr(b));
	if (next)
		link_put(next, LINK_PREV, prev);
	if (prev)
		link_put(prev, LINK_NEXT, next);
	else
		A->bins[i] = next;
	if (!A->bins[i])
		A->binmap[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

/* Makes b a free block of `size` in a bin: header, footer, links, the
 * successor's flags.  `flags` are b's own PREV_* flags. */
enum { JUNK_BYTE = 0xdf };

/* With junk=1 a free block's payload, but for its links and footer, holds
 * JUNK_BYTE; [*from, *to) is that range.  Only what changes is written or
 * read: an allocation verifies the part it takes (a remainder split off
 * keeps its junk, verified when it is taken in turn), and a free fills the
 * freed block and the metadata that a merge absorbs, so that carving many
 * blocks out of a big free one costs what they take, not its size. */
static bool junk_range(osa_block *b, size_t size, unsigned char **from,
		       unsigned char **to)
{
	*from = (unsigned char *)b + OSA_HDR + 2 * sizeof(uintptr_t);
	*to = (unsigned char *)b + size - sizeof(uintptr_t);
	return *to > *from;
}

/* Verifies the junk of free block b (of `size`) below `upto`. */
static void junk_verify(osa_block *b, size_t size, uintptr_t upto)
{
	unsigned char *from, *to;
	if (!junk_range(b, size, &from, &to))
		return;
	if ((uintptr_t)to > upto)
		to = (unsigned char *)upto;
	for (unsigned char *q = from; q < to; q++)
		if (*q != JUNK_BYTE)
			heap_corrupt(OSA_E_WRITE_AFTER_FREE,
				     osa_block_to_ptr(b));
}

/* Fills [lo, hi) with junk, within free block b's (of `size`) range. */
static void junk_fill_part(osa_block *b, size_t size, uintptr_t lo,
			   uintptr_t hi)
{
	unsigned char *from, *to;
	if (!junk_range(b, size, &from, &to))
		return;
	if ((uintptr_t)from < lo)
		from = (unsigned char *)lo;
	if ((uintptr_t)to > hi)
		to = (unsigned char *)hi;
	if (to <= from)
		return;
	OSA_VG_DEFINED(from, (size_t)(to - from));
	memset(from, JUNK_BYTE, (size_t)(to - from));
}

/* The caller has filled b's junk range (junk=1). */
static void make_free(osa_block *b, size_t size, uintptr_t flags)
{
	assert(size >= OSA_MIN_BLOCK && size % 16 == 0);
	osa_header_set(b, size | flags | OSA_FREE);
	if (size > OSA_MIN_BLOCK) {
		uintptr_t *footer = (uintptr_t *)((uintptr_t)b + size) - 1;
		OSA_VG_DEFINED(footer, sizeof *footer);
		*footer = size;
	}
	bin_insert(b, size);
	set_prev_flags(block_at((uintptr_t)b + size), prev_flags_for(size));
	H.free_bytes += size;
}

/* Takes b out of its bin (it stops being free). */
static void take_free(osa_block *b)
{
	bin_remove(b);
	H.free_bytes -= osa_block_size(b);
}

static int bin_next_nonempty(unsigned from)
{
	for (unsigned w = from >> 6; w < BINMAP_WORDS; w++) {
		uint64_t bits = A->binmap[w];
		if (w == from >> 6)
			bits &= ~(uint64_t)0 << (from & 63);
		if (bits)
			return (int)(w * 64 + (unsigned)__builtin_ctzll(bits));
	}
	return -1;
}

/* Best block of bin i for `size`: an exact bin's head, or the smallest of
 * the first OSA_BESTFIT_SCAN blocks that fit in a ranged bin. */
static osa_block *bin_best(unsigned i, size_t size)
{
	osa_block *b = A->bins[i], *best = NULL;
	if (i < OSA_EXACT_BINS)
		return b;
	for (int n = 0; b && n < OSA_BESTFIT_SCAN; n++) {
		size_t s = osa_block_size(b);
		if (s >= size && (!best || s < osa_block_size(best))) {
			best = b;
			if (s == size)
				break;
		}
		osa_block *next = link_get(b, LINK_NEXT);
		check_link(b, next);
		b = next;
	}
	return best;
}

static osa_block *bins_find(size_t size)
{
	unsigned i = bin_index(size);
	if (A->bins[i]) {
		osa_block *b = bin_best(i, size);
		if (b)
			return b;
	}
	int j = bin_next_nonempty(i + 1);
	return j < 0 ? NULL : bin_best((unsigned)j, size);
}

/* ---- segments ---- */

static void seg_check(const struct osa_segment *s)
{
	if (OSA_UNLIKELY(s->canary != state_canary(s)))
		heap_corrupt(OSA_E_STATE, s);
}

static osa_block *seg_first(const struct osa_segment *s)
{
	return block_at((uintptr_t)s + SEG_HDR);
}

static osa_block *seg_fence(const struct osa_segment *s)
{
	return block_at(s->end - OSA_HDR);
}

static bool in_segment(const struct osa_segment *s, uintptr_t a)
{
	uintptr_t lo = (uintptr_t)seg_first(s);
	return a - lo < (uintptr_t)seg_fence(s) - lo;
}

/* ---- the segment index ---- */

/* The index's first entries: a heap that the break serves has one or a few
 * segments, and its first growth is one brk and nothing else. */
enum { INDEX_STATIC = 32 };
static struct index_entry index_static[INDEX_STATIC];

/* Room for one more segment in the index; false (errno kept) when the
 * memory for a bigger index is not there. */
static bool index_room(void)
{
	if (OSA_UNLIKELY(!H.index)) {
		H.index = index_static;
		H.index_cap = INDEX_STATIC;
	}
	if (H.nsegs < H.index_cap)
		return true;
	size_t cap = 2 * H.index_cap;
	if (cap < OSA_PAGE / sizeof *H.index)
		cap = OSA_PAGE / sizeof *H.index;
	int saved = errno;
	struct index_entry *n = osa_sys_mmap(cap * sizeof *n);
	if (n) {
		memcpy(n, H.index, H.nsegs * sizeof *n);
		if (H.index != index_static)
			osa_sys_munmap(H.index, H.index_cap * sizeof *n);
	}
	errno = saved;
	if (!n)
		return false;
	H.index = n;
	H.index_cap = cap;
	return true;
}

/* The position of the last segment that starts at or below a, or -1. */
static long index_find(uintptr_t a)
{
	const struct index_entry *base = H.index;
	size_t n = H.nsegs;
	if (n == 0)
		return -1;
	/* Without a branch on the comparison (a conditional move): heap
	 * addresses come in no order a predictor could learn. */
	while (n > 1) {
		size_t half = n / 2;
		base = base[half].start <= a ? base + half : base;
		n -= half;
	}
	return base->start <= a ? base - H.index : -1;
}

/* Adds s, a new segment, to the index (index_room was true). */
static void index_insert(struct osa_segment *s)
{
	assert(H.nsegs < H.index_cap && "index_room first");
	size_t i = (size_t)(index_find((uintptr_t)s) + 1);
	memmove(&H.index[i + 1], &H.index[i], (H.nsegs - i) * sizeof *H.index);
	H.index[i] = (struct index_entry){(uintptr_t)s, s->end};
}

/* The index entry of the segment that starts nearest at or below a, or
 * NULL. */
static const struct index_entry *entry_below(uintptr_t a)
{
	long i = index_find(a);
	return i < 0 ? NULL : &H.index[i];
}

/* Segment s now ends at s->end. */
static void index_extend(const struct osa_segment *s)
{
	long i = index_find((uintptr_t)s);
	assert(i >= 0 && H.index[i].start == (uintptr_t)s && "indexed");
	H.index[i].end = s->end;
}

/* The segment whose blocks include the header at a (readable: before the
 * fence), or NULL.  The current arena's segment first: usually it. */
static struct osa_segment *segment_of(uintptr_t a)
{
	if (OSA_LIKELY(A && A->cur && in_segment(A->cur, a)))
		return A->cur;
	const struct index_entry *e = entry_below(a);
	uintptr_t first = e ? e->start + SEG_HDR : 0;
	if (e && a - first < e->end - OSA_HDR - first)
		return (struct osa_segment *)e->start;
	return NULL;
}

static bool heap_holds(uintptr_t a)
{
	return segment_of(a) != NULL;
}

/* Makes the arena of heap block b (known to be one) the current one. */
static void enter_arena_of(const osa_block *b)
{
	struct osa_segment *s = segment_of((uintptr_t)b);
	if (OSA_UNLIKELY(!s))
		heap_corrupt(OSA_E_STATE, osa_block_to_ptr(b));
	seg_check(s);
	if (OSA_UNLIKELY(s->arena >= OSA_ARENAS))
		heap_corrupt(OSA_E_STATE, s);
	A = &H.arenas[s->arena];
}

/* Does free block b lie in a segment of the current arena? */
static bool arena_owns(const osa_block *b)
{
	const struct osa_segment *s = segment_of((uintptr_t)b);
	return s && &H.arenas[s->arena] == A;
}

/* Reserves arena a's window; false (errno kept) when the address space
 * is not there (RLIMIT_AS). */
static bool reserve_window(struct arena *a)
{
	int saved = errno;
	void *m = osa_sys_reserve(NULL, OSA_ARENA_WINDOW);
	errno = saved;
	if (!m)
		return false;
	/* Arena 0's span ends below any window, until it has a window of its
	 * own: its end is then the end of what arena 0 may commit. */
	struct arena *z = &H.arenas[0];
	if (z->win_lo && !z->win_next &&
	    (uintptr_t)m - z->win_lo < z->win_end - z->win_lo)
		z->win_end = (uintptr_t)m;
	a->win_lo = a->win_next = (uintptr_t)m;
	a->win_end = (uintptr_t)m + OSA_ARENA_WINDOW;
	return true;
}

/* Arena 0 of a process with threads grows in a window of its own too.  It
 * is reserved 1 GiB above the break when that range is free (the break
 * stays free to grow for the C library), so that arena 0's home, the range
 * its caches keep blocks from, spans its brk heap and the window at once;
 * elsewhere the window alone becomes its home, and its blocks on the break
 * go back to it as other arenas' blocks do.  False when no window can be
 * reserved. */
static bool arena0_window(void)
{
	struct arena *z = &H.arenas[0];
	if (z->win_next)
		return true;
	uintptr_t brk_now = (uintptr_t)osa_sys_sbrk(0), hint = 0;
	if (z->win_lo && brk_now != (uintptr_t)-1 && brk_now >= z->win_lo)
		hint = osa_align_up(brk_now, OSA_HUGE_PAGE) + OSA_ARENA_WINDOW;
	int saved = errno;
	void *m = osa_sys_reserve((void *)hint, OSA_ARENA_WINDOW);
	errno = saved;
	if (!m)
		return false;
	uintptr_t lo = (uintptr_t)m, end = lo + OSA_ARENA_WINDOW;
	if (!hint || lo != hint || end - z->win_lo > z->win_end - z->win_lo)
		z->win_lo = lo; /* not inside its span: the window alone */
	z->win_next = lo;
	z->win_end = end;
	return true;
}

/* A new thread's arena, 1-based: round robin, the first thread (main)
 * gets the brk heap; an arena without a window shares the brk heap. */
static unsigned char pick_arena(void)
{
	unsigned k = H.threads++ % OSA_ARENAS;
	if (k && !H.arenas[k].win_lo && !reserve_window(&H.arenas[k]))
		k = 0;
	return (unsigned char)(k + 1);
}

/* Makes the calling thread's arena the current one; a thread's first heap
 * allocation picks it, round robin (the first thread gets the brk heap). */
static void enter_thread_arena(void)
{
	if (OSA_UNLIKELY(!thread_arena))
		thread_arena = pick_arena();
	A = &H.arenas[thread_arena - 1];
}

/* The current segment's TOP becomes an ordinary free block. */
static void retire_top(struct osa_segment *s)
{
	osa_block *t = s->top;
	if (!t)
		return;
	size_t size = osa_block_size(t);
	H.free_bytes -= size; /* make_free counts it again */
	s->top = NULL;
	if (OSA_UNLIKELY(osa_opt.junk))
		junk_fill_part(t, size, 0, UINTPTR_MAX);
	make_free(t, size, block_flags(t));
}

/* A segment of OSA_HUGE_HEAP bytes or more grows to a 2 MiB boundary, so
 * that its pages can be transparent huge pages (see huge_hint). */
static size_t huge_round(const struct osa_segment *s, uintptr_t at,
			 size_t want)
{
	if (!s || at != s->end || s->length + want < OSA_HUGE_HEAP ||
	    !osa_opt.thp || osa_on_valgrind)
		return want;
	return osa_align_up(at + want, OSA_HUGE_PAGE) - at;
}

/* Marks [from, to) for transparent huge pages, from its first whole page
 * (a segment may start inside a page that is not ours). */
static void hint_range(uintptr_t from, uintptr_t to)
{
	from = osa_align_up(from, OSA_PAGE);
	if (to > from)
		osa_sys_madvise_hugepage((void *)from, to - from);
}

/* Segment s is about to grow by the `len` bytes at p, its end: once it is
 * OSA_HUGE_HEAP bytes or more, the pages from the 2 MiB boundary below p
 * (from its start, the first time) are hinted for transparent huge pages,
 * one fault per 2 MiB instead of 512 as the heap is carved.  This comes
 * before anything is written there: a page touched first is a small one. */
static void huge_hint(struct osa_segment *s, uintptr_t p, size_t len)
{
	if (s->length + len < OSA_HUGE_HEAP || !osa_opt.thp || osa_on_valgrind)
		return;
	uintptr_t from = p & ~(uintptr_t)(OSA_HUGE_PAGE - 1);
	if (!s->huge || from < (uintptr_t)s)
		from = (uintptr_t)s;
	s->huge = true;
	hint_range(from, p + len);
}

/* Lays out a new segment on [base, base+len). */
static bool seg_create(uintptr_t base, size_t len, bool from_mmap)
{
	uintptr_t b = osa_align_up(base, 16);
	uintptr_t end = (base + len) & ~(uintptr_t)15;
	if (end < b + SEG_HDR + OSA_MIN_BLOCK + OSA_HDR || !index_room() ||
	    !osa_pagemap_reserve(b, end))
		return false;
	/* A segment born big is hinted before its header is written. */
	bool huge = len >= OSA_HUGE_HEAP && osa_opt.thp && !osa_on_valgrind;
	if (huge)
		hint_range(b, end);
	struct osa_segment *s = (struct osa_segment *)b;
	s->canary = state_canary(s);
	s->end = end;
	s->length = len;
	s->from_mmap = from_mmap;
	s->huge = huge;
	osa_block *t = seg_first(s);
	osa_header_set(t, (end - OSA_HDR - (uintptr_t)t) | OSA_TOP);
	osa_header_set(seg_fence(s), OSA_HDR | OSA_FENCE);
	start_set(t);
	s->top = t;
	s->clean_from = (uintptr_t)osa_block_to_ptr(t);
	/* The rest of a page where someone else left the break may hold
	 * their bytes (a break lowered inside a page keeps them): not clean. */
	if (s->clean_from < osa_align_up(base, OSA_PAGE))
		s->clean_from = osa_align_up(base, OSA_PAGE);
	s->trimmed_from = 0;
	s->populated_to = osa_align_up(s->clean_from, OSA_PAGE);
	s->arena = (unsigned)(A - H.arenas);
	if (!A->win_lo) { /* arena 0's first segment */
		A->win_lo = b;
		A->win_end = b + OSA_HOME_SPAN;
	}
	if (A->cur)
		retire_top(A->cur);
	s->next = H.segs;
	H.segs = s;
	index_insert(s);
	A->cur = s;
	H.nsegs++;
	H.heap_bytes += len;
	H.free_bytes += osa_block_size(t);
	return true;
}

/* Extends segment s by `len` bytes that the break gave at s->end. */
static void seg_extend(struct osa_segment *s, size_t len)
{
	osa_block *fence = seg_fence(s);
	uintptr_t new_end = s->end + len;
	osa_block *t = s->top;
	assert(t && block_next(t) == fence && "TOP ends at the fence");
	memset(fence, 0, OSA_HDR); /* keeps the clean region's promise */
	if (s->clean_from > (uintptr_t)fence)
		s->clean_from = (uintptr_t)fence;
	s->end = new_end;
	index_extend(s);
	s->length += len;
	osa_header_set(t, (osa_block_size(t) + len) | OSA_TOP |
			      block_flags(t));
	osa_header_set(seg_fence(s), OSA_HDR | OSA_FENCE);
	H.heap_bytes += len;
	H.free_bytes += len;
}

/* The TOP block's header is checked before memory is taken from it. */
static void verify_top(const struct osa_segment *s)
{
	seg_check(s);
	if (OSA_UNLIKELY(!osa_header_ok(s->top) ||
			 osa_block_state(s->top) != OSA_TOP))
		heap_corrupt(OSA_E_HEADER, osa_block_to_ptr(s->top));
}

/* Commits `want` more bytes of the current arena's window, after the
 * current segment if it ends there; false when the window is full or the
 * commit fails. */
static bool commit_window(struct osa_segment *s, size_t want)
{
	uintptr_t p = A->win_next;
	bool extends = s && p == s->end && s->top;
	/* Everything that can fail comes before the commit: committed
	 * pages that no segment took would be lost for good. */
	if (want > A->win_end - p || (!extends && !index_room()) ||
	    !osa_pagemap_reserve(p, p + want) ||
	    osa_sys_commit((void *)p, want) != 0)
		return false;
	A->win_next = p + want;
	if (extends) {
		huge_hint(s, p, want);
		seg_extend(s, want);
		return true;
	}
	bool made = seg_create(p, want, false);
	assert(made && "index and block-start map were ready");
	return made;
}

/* The window grows to a 2 MiB boundary when it can (huge_round), else by
 * `want` bytes. */
static bool grow_window(struct osa_segment *s, size_t want)
{
	size_t rounded = huge_round(s, A->win_next, want);
	return (rounded > want && commit_window(s, rounded)) ||
	       commit_window(s, want);
}

/* The break is moved only while the process has one thread.  The C
 * library's malloc moves it too, under a lock of its own, and sbrk(2) is
 * not atomic: two threads growing it at once can both be given the same
 * pages.  (Without __libc_single_threaded there is no telling, and the
 * break is used as before.) */
static bool brk_usable(void)
{
#ifdef HAVE_SYS_SINGLE_THREADED_H
	return alone();
#else
	return true;
#endif
}

enum brk_result { BRK_REFUSED, BRK_UNUSABLE, BRK_GREW };

/* Moves the break by `want` bytes, seen at brk_now, and adds them to the
 * heap: extending s in place, or as a new segment. */
static enum brk_result extend_brk(struct osa_segment *s, uintptr_t brk_now,
				  size_t want)
{
	/* What a new segment needs is made ready before the break moves. */
	bool extends = s && brk_now == s->end && s->top;
	if ((!extends && !index_room()) ||
	    !osa_pagemap_reserve(brk_now, brk_now + want + OSA_PAGE))
		return BRK_REFUSED;
	/* Another party may move the break at any time: what sbrk returns
	 * decides, not what we saw before. */
	uintptr_t p = (uintptr_t)osa_sys_sbrk((intptr_t)want);
	if (p == (uintptr_t)-1)
		return BRK_REFUSED;
	if (s && p == s->end && s->top) {
		huge_hint(s, p, want);
		seg_extend(s, want);
		return BRK_GREW;
	}
	if (seg_create(p, want, false))
		return BRK_GREW;
	/* The break moved elsewhere than we saw it, and the new segment
	 * could not be made: given back if it is still ours to give. */
	if ((uintptr_t)osa_sys_sbrk(0) == p + want)
		(void)osa_sys_sbrk(-(intptr_t)want);
	return BRK_UNUSABLE;
}

/* Grows arena 0 with the break: to a 2 MiB boundary when it can (a break
 * that cannot move that far, RLIMIT_DATA, is asked for `want` again). */
static bool grow_brk(struct osa_segment *s, size_t want)
{
	uintptr_t brk_now = (uintptr_t)osa_sys_sbrk(0);
	if (brk_now == (uintptr_t)-1)
		return false;
	/* A new segment where someone else left the break inside a page
	 * takes the rest of that page too: it then ends on a page boundary,
	 * where the next growth finds the break and extends it in place. */
	if (!s || brk_now != s->end)
		want += osa_align_up(brk_now, OSA_PAGE) - brk_now;
	size_t rounded = huge_round(s, brk_now, want);
	enum brk_result r = BRK_REFUSED;
	if (rounded > want)
		r = extend_brk(s, brk_now, rounded);
	if (r == BRK_REFUSED)
		r = extend_brk(s, brk_now, want);
	return r == BRK_GREW;
}

/* Gets at least `need` more bytes for the TOP block.  False with ENOMEM. */
static bool heap_grow(size_t need)
{
	struct osa_segment *s = A->cur;
	size_t floor = s ? OSA_GROW_MIN : osa_opt.heap_prealloc;
	size_t want = osa_align_up(need + SEG_HDR + 4 * OSA_HDR, OSA_PAGE);
	if (want < floor)
		want = floor;
	struct arena *z = &H.arenas[0];
	if (A == z && brk_usable()) {
		/* Also after a growth fell back to a mapping: the break may
		 * be free again, and a brk segment grows in place. */
		if (grow_brk(s, want))
			return true;
	} else if ((A != z || arena0_window()) && grow_window(s, want)) {
		return true;
	}
	/* Another arena's, or brk refused or is obstructed: a mapping of
	 * 1 MiB or more, or of what is needed when that much address space
	 * is not there (RLIMIT_AS). */
	size_t len = want > (1u << 20) ? want : (1u << 20);
	void *m = osa_sys_mmap(len);
	if (!m && len > want) {
		len = want;
		m = osa_sys_mmap(len);
	}
	if (m && seg_create((uintptr_t)m, len, true))
		return true;
	if (m)
		osa_sys_munmap(m, len);
	errno = ENOMEM;
	return false;
}

static size_t trim_threshold(void)
{
	return H.trim_threshold ? H.trim_threshold : OSA_TRIM_THRESHOLD;
}

/* The TOP of s now starts at nt: when it has grown back over pages given
 * back to the OS, trimming them cost a round of page faults for nothing,
 * so the threshold doubles (like glibc's dynamic one, but driven by what
 * the program did).  Memory held back is bounded by
 * OSA_TRIM_THRESHOLD_MAX. */
static void top_moved_to(struct osa_segment *s, const osa_block *nt)
{
	if (OSA_LIKELY(!s->trimmed_from) || (uintptr_t)nt <= s->trimmed_from)
		return;
	s->trimmed_from = 0;
	size_t t = trim_threshold();
	if (t < OSA_TRIM_THRESHOLD_MAX)
		H.trim_threshold = 2 * t;
}

/* Releases the pages of a large TOP back to the OS (they read as zero
 * afterwards), keeping half the trim threshold ready. */
static void maybe_trim(struct osa_segment *s)
{
	osa_block *t = s->top;
	size_t threshold = trim_threshold();
	if (!t || osa_block_size(t) < threshold)
		return;
	uintptr_t from = osa_align_up((uintptr_t)t + OSA_HDR + threshold / 2,
				      OSA_PAGE);
	uintptr_t to = (s->end - OSA_HDR) & ~(uintptr_t)(OSA_PAGE - 1);
	if (to > s->clean_from)
		to = osa_align_up(s->clean_from, OSA_PAGE);
	if (to <= from || to - from < TRIM_MIN)
		return;
	if (osa_sys_madvise_free((void *)from, to - from) != 0)
		return;
	/* The pages read as zero now; the dirty tail between `to` and the
	 * old clean mark (less than a page) is cleared so that everything
	 * from `from` on is zero, as clean_from promises. */
	if (s->clean_from > to) {
		/* Inside blocks freed earlier (memcheck: no access). */
		OSA_VG_DEFINED((void *)to, s->clean_from - to);
		memset((void *)to, 0, s->clean_from - to);
	}
	if (s->clean_from > from)
		s->clean_from = from;
	s->trimmed_from = from;
	if (s->populated_to > from)
		s->populated_to = from;
}

static struct osa_segment *seg_of_top(const osa_block *t)
{
	if (A->cur && A->cur->top == t) {
		seg_check(A->cur);
		return A->cur;
	}
	heap_corrupt(OSA_E_STATE, osa_block_to_ptr(t));
}

/* ---- allocation ---- */

/* Turns free block b (already out of its bin, `bsize` bytes) into a USED
 * block of `size`, the rest becoming a free block. */
static void use_block(osa_block *b, size_t bsize, size_t size)
{
	uintptr_t flags = block_flags(b);
	if (bsize - size >= OSA_MIN_BLOCK) {
		osa_block *rem = block_at((uintptr_t)b + size);
		osa_header_set(b, size | flags | OSA_USED);
		start_set(rem);
		make_free(rem, bsize - size, 0);
	} else {
		size = bsize;
		osa_header_set(b, size | flags | OSA_USED);
		set_prev_flags(block_next(b), 0);
	}
	used_add((ptrdiff_t)size);
}

/* The memory after a block carved from TOP is where the next blocks will
 * be carved, and blocks are written when they are allocated.  When the new
 * TOP's header at `top` passes the populated mark, the pages from there are
 * faulted in, OSA_POPULATE_AHEAD bytes at a time, with one call that costs
 * about 60 % of the page faults it replaces (Linux 5.14 and later; a hint
 * elsewhere).  The block itself is not populated (a large calloc of fresh
 * memory stays untouched), and at most OSA_POPULATE_AHEAD bytes past the
 * used part of a segment are taken before they are needed.  In a segment
 * marked for huge pages, one call takes the rest of the 2 MiB page: one
 * fault where huge pages are on, and where they are off, at most that
 * much ahead in a segment of 8 MiB or more. */
static void populate_ahead(struct osa_segment *s, uintptr_t top)
{
	if (OSA_LIKELY(top + OSA_HDR <= s->populated_to) || osa_on_valgrind)
		return;
	uintptr_t from = top & ~(uintptr_t)(OSA_PAGE - 1);
	uintptr_t limit = (uintptr_t)seg_fence(s) & ~(uintptr_t)(OSA_PAGE - 1);
	if (from < s->populated_to)
		from = s->populated_to;
	uintptr_t to = from + OSA_POPULATE_AHEAD;
	if (s->huge)
		to = (from | (OSA_HUGE_PAGE - 1)) + 1;
	if (to > limit)
		to = limit;
	if (to <= from)
		return;
	osa_sys_madvise_populate((void *)from, to - from);
	s->populated_to = to;
}

static osa_block *carve_top(size_t size, size_t *dirty)
{
	struct osa_segment *s = A->cur;
	osa_block *t = s->top;
	size_t tsize = osa_block_size(t);
	assert(tsize >= size + OSA_MIN_BLOCK && "TOP has room");
	verify_top(s);
	osa_block *nt = block_at((uintptr_t)t + size);
	populate_ahead(s, (uintptr_t)nt);
	osa_header_set(t, size | block_flags(t) | OSA_USED);
	osa_header_set(nt, (tsize - size) | OSA_TOP);
	start_set(nt);
	s->top = nt;
	top_moved_to(s, nt);
	uintptr_t p = (uintptr_t)osa_block_to_ptr(t);
	*dirty = s->clean_from > p ? s->clean_from - p : 0;
	if (s->clean_from < (uintptr_t)nt + OSA_HDR)
		s->clean_from = (uintptr_t)nt + OSA_HDR;
	H.free_bytes -= size;
	used_add((ptrdiff_t)size);
	return t;
}

/* The end of what use_block takes of free block b (of bsize) for `size`:
 * all of it, or up to the junk range of the remainder it splits off. */
static uintptr_t junk_taken(const osa_block *b, size_t bsize, size_t size)
{
	if (bsize - size < OSA_MIN_BLOCK)
		return (uintptr_t)b + bsize;
	return (uintptr_t)b + size + OSA_HDR + 2 * sizeof(uintptr_t);
}

/* A block of `size` from the current arena: its bins, its TOP, and when
 * `grow`, more memory for its TOP. */
static osa_block *arena_alloc(size_t size, size_t *dirty, bool grow)
{
	osa_block *b = bins_find(size);
	if (b) {
		size_t bsize = osa_block_size(b);
		if (OSA_UNLIKELY(osa_opt.junk))
			junk_verify(b, bsize, junk_taken(b, bsize, size));
		take_free(b);
		use_block(b, bsize, size);
		*dirty = osa_block_size(b) - OSA_HDR;
		return b;
	}
	if (A->cur && A->cur->top)
		verify_top(A->cur);
	if (!A->cur || !A->cur->top ||
	    osa_block_size(A->cur->top) < size + OSA_MIN_BLOCK) {
		if (!grow)
			return NULL;
		size_t have = A->cur && A->cur->top ? osa_block_size(A->cur->top)
						  : 0;
		if (!heap_grow(size + OSA_MIN_BLOCK - have))
			return NULL;
		if (osa_block_size(A->cur->top) < size + OSA_MIN_BLOCK &&
		    !heap_grow(size + OSA_MIN_BLOCK))
			return NULL;
	}
	return carve_top(size, dirty);
}

/* The calling thread's arena, else the brk heap's. */
static osa_block *heap_alloc(size_t size, size_t *dirty, bool grow)
{
	assert(size >= OSA_MIN_BLOCK && size % 16 == 0);
	enter_thread_arena();
	osa_block *b = arena_alloc(size, dirty, grow);
	if (OSA_UNLIKELY(!b) && A != &H.arenas[0]) {
		A = &H.arenas[0]; /* no new mapping: the brk heap may serve */
		b = arena_alloc(size, dirty, grow);
	}
	return b;
}

osa_block *osa_heap_alloc(size_t size, size_t *dirty)
{
	int saved = errno; /* a fallback that succeeds leaves it alone */
	osa_block *b = heap_alloc(size, dirty, true);
	if (b)
		errno = saved;
	return b;
}

osa_block *osa_heap_alloc_free_only(size_t size, size_t *dirty)
{
	return heap_alloc(size, dirty, false);
}

/* ---- free ---- */

/* Do b's PREV_* flags (not covered by its check) describe the block
 * before it?  PREV_MIN alone, or PREV_FREE without a free block of that size
 * ending at b, is corruption (an overflow into b's first byte). */
/* The size of the free block before b that b's PREV_* flags claim (its
 * footer, or 32 for PREV_MIN); only meaningful with PREV_FREE set. */
static size_t prev_size_claimed(const osa_block *b)
{
	return (block_flags(b) & OSA_PREV_MIN) ? OSA_MIN_BLOCK
					       : ((const uintptr_t *)b)[-1];
}

static bool prev_flags_hold(const osa_block *b)
{
	uintptr_t flags = block_flags(b);
	if (!flags)
		return true;
	if (!(flags & OSA_PREV_FREE))
		return false;
	size_t psize = prev_size_claimed(b);
	const osa_block *prev = block_at((uintptr_t)b - psize);
	return psize >= OSA_MIN_BLOCK && psize % 16 == 0 &&
	       psize <= (uintptr_t)b && heap_holds((uintptr_t)prev) &&
	       osa_header_ok(prev) && osa_block_state(prev) == OSA_FREE &&
	       osa_block_size(prev) == psize;
}

static osa_block *prev_free_block(osa_block *b)
{
	if (!prev_flags_hold(b))
		heap_corrupt(OSA_E_FREE_LIST, osa_block_to_ptr(b));
	return block_at((uintptr_t)b - prev_size_claimed(b));
}

void osa_heap_free(osa_block *b)
{
	enter_arena_of(b);
	size_t size = osa_block_size(b);
	osa_block *next = block_at((uintptr_t)b + size);
	verify_next(next);
	used_add(-(ptrdiff_t)size);
	/* junk=1: what becomes free payload is the block itself, the
	 * previous block's footer and the next one's header and links. */
	uintptr_t junk_lo = (uintptr_t)b, junk_hi = (uintptr_t)next;
	if (block_flags(b) & OSA_PREV_FREE) {
		junk_lo -= sizeof(uintptr_t);
		osa_block *prev = prev_free_block(b);
		take_free(prev);
		start_clear(b);
		size += osa_block_size(prev);
		b = prev;
	}
	uintptr_t flags = block_flags(b);
	switch (osa_block_state(next)) {
	case OSA_FREE:
		take_free(next);
		start_clear(next);
		size += osa_block_size(next);
		junk_hi += OSA_HDR + 2 * sizeof(uintptr_t);
		break;
	case OSA_TOP: {
		struct osa_segment *s = seg_of_top(next);
		start_clear(next);
		osa_header_set(b, (size + osa_block_size(next)) | flags |
				      OSA_TOP);
		s->top = b;
		H.free_bytes += size;
		maybe_trim(s);
		return;
	}
	default:
		break;
	}
	if (OSA_UNLIKELY(osa_opt.junk))
		junk_fill_part(b, size, junk_lo, junk_hi);
	make_free(b, size, flags);
}

/* ---- resize in place ---- */

/* Gives the tail of b beyond `size` back to the heap. */
static void shrink_to(osa_block *b, size_t size)
{
	size_t bsize = osa_block_size(b);
	if (bsize - size < OSA_MIN_BLOCK)
		return;
	osa_block *rem = block_at((uintptr_t)b + size);
	osa_header_set(b, size | block_flags(b) | OSA_USED);
	osa_header_set(rem, (bsize - size) | OSA_USED);
	start_set(rem);
	osa_heap_free(rem);
}

bool osa_heap_shrink_keeps(size_t bsize, size_t size)
{
	return bsize - size < OSA_MIN_BLOCK || (bsize - size) * 4 < bsize;
}

bool osa_heap_resize(osa_block *b, size_t size)
{
	enter_arena_of(b);
	size_t bsize = osa_block_size(b);
	if (size <= bsize) {
		if (!osa_heap_shrink_keeps(bsize, size))
			shrink_to(b, size);
		return true;
	}
	osa_block *next = block_next(b);
	verify_next(next);
	unsigned st = osa_block_state(next);
	if (st == OSA_FREE && bsize + osa_block_size(next) >= size) {
		size_t total = bsize + osa_block_size(next);
		if (OSA_UNLIKELY(osa_opt.junk))
			junk_verify(next, osa_block_size(next),
				    junk_taken(b, total, size));
		take_free(next);
		start_clear(next);
		used_add(-(ptrdiff_t)bsize);
		osa_header_set(b, total | block_flags(b) | OSA_FREE);
		use_block(b, total, size);
		return true;
	}
	if (st != OSA_TOP)
		return false;
	struct osa_segment *s = seg_of_top(next);
	size_t have = bsize + osa_block_size(next);
	if (have < size + OSA_MIN_BLOCK) {
		if (s->from_mmap || !heap_grow(size + OSA_MIN_BLOCK - have) ||
		    A->cur != s)
			return false; /* a new segment cannot help in place */
		next = s->top;
	}
	/* Absorb the whole TOP, then cut a new TOP after `size`. */
	size_t tsize = osa_block_size(next);
	start_clear(next);
	osa_block *nt = block_at((uintptr_t)b + size);
	size_t nsize = bsize + tsize - size;
	populate_ahead(s, (uintptr_t)nt);
	osa_header_set(b, size | block_flags(b) | OSA_USED);
	osa_header_set(nt, nsize | OSA_TOP);
	start_set(nt);
	s->top = nt;
	top_moved_to(s, nt);
	if (s->clean_from < (uintptr_t)nt + OSA_HDR)
		s->clean_from = (uintptr_t)nt + OSA_HDR;
	H.free_bytes -= size - bsize;
	used_add((ptrdiff_t)(size - bsize));
	return true;
}

osa_block *osa_heap_alloc_aligned(size_t size, size_t align)
{
	size_t dirty;
	osa_block *b = osa_heap_alloc(size + align + OSA_MIN_BLOCK, &dirty);
	if (!b)
		return NULL;
	uintptr_t p = (uintptr_t)osa_block_to_ptr(b);
	if (p % align) {
		uintptr_t ap = osa_align_up(p + OSA_MIN_BLOCK, align);
		osa_block *nb = osa_block_from_ptr((void *)ap);
		size_t front = (uintptr_t)nb - (uintptr_t)b;
		size_t bsize = osa_block_size(b);
		osa_header_set(nb, (bsize - front) | OSA_USED);
		start_set(nb);
		osa_header_set(b, front | block_flags(b) | OSA_USED);
		osa_heap_free(b); /* the front goes back, nb stays used */
		b = nb;
	}
	shrink_to(b, size);
	return b;
}

/* ---- queries ---- */

void osa_heap_verify_used(const osa_block *b)
{
	if (!osa_header_ok(b))
		heap_corrupt(OSA_E_HEADER, osa_block_to_ptr(b));
	unsigned st = osa_block_state(b);
	if (st == OSA_FREE || st == OSA_TOP)
		heap_corrupt(OSA_E_DOUBLE_FREE, osa_block_to_ptr(b));
	if (st != OSA_USED)
		heap_corrupt(OSA_E_HEADER, osa_block_to_ptr(b));
	if (OSA_UNLIKELY(!prev_flags_hold(b)))
		heap_corrupt(OSA_E_HEADER, osa_block_to_ptr(b));
	if (OSA_UNLIKELY(!osa_header_next_of_used(block_next(b))))
		heap_corrupt(OSA_E_NEXT_HEADER, osa_block_to_ptr(block_next(b)));
}

bool osa_heap_contains(uintptr_t ptr)
{
	const struct index_entry *e = entry_below(ptr);
	return e && ptr < e->end;
}

/* ---- blocks returned to their arena ---- */

/* The arena whose threads reuse block b once it is returned: the one whose
 * window holds it (the reservations first, then arena 0's span), else the
 * one of its segment (a mapping an arena continued in).  Where b goes when
 * it is freed is always its segment's arena. */
static struct arena *window_of(const osa_block *b)
{
	uintptr_t a = (uintptr_t)b;
	for (unsigned k = OSA_ARENAS; k-- > 0;)
		if (a - H.arenas[k].win_lo <
		    H.arenas[k].win_end - H.arenas[k].win_lo)
			return &H.arenas[k];
	const struct osa_segment *s = segment_of(a);
	return s && s->arena < OSA_ARENAS ? &H.arenas[s->arena] : NULL;
}

/* Takes cached block b off a chain (its link verified); the next one. */
static osa_block *chain_next(osa_block *b)
{
	uintptr_t *w = (uintptr_t *)(b + 1);
	if (OSA_UNLIKELY(w[1] != osa_link_check(b, w[0]) ||
			 !osa_header_cached(b)))
		heap_corrupt(OSA_E_FREE_LIST, w);
	return (osa_block *)(w[0] ^ osa_keys.link);
}

static void chain_push(osa_block **head, osa_block *b)
{
	osa_link_put(b, *head);
	*head = b;
}

/* A cached block back to the heap proper. */
static void free_cached(osa_block *b)
{
	((uintptr_t *)(b + 1))[1] = 0;
	osa_header_toggle_cached(b);
	osa_heap_free(b);
}

void osa_heap_return(osa_block *chain)
{
	while (chain) {
		osa_block *b = chain, *next = chain_next(b);
		struct arena *a = window_of(b);
		size_t size = osa_block_size(b), c = size >> 4;
		if (OSA_UNLIKELY(c < 2 || c >= OSA_CACHE_CLASSES))
			heap_corrupt(OSA_E_HEADER, osa_block_to_ptr(b));
		if (a && a->nreturned[c] < osa_cache_limit(c) &&
		    a->returned_bytes + size <= OSA_RETURNED_MAX) {
			chain_push(&a->returned[c], b);
			a->nreturned[c]++;
			a->returned_bytes += size;
		} else {
			free_cached(b); /* outside the windows, or enough */
		}
		chain = next;
	}
}

osa_block *osa_heap_take_returned(unsigned arena, size_t cls, unsigned *n)
{
	assert(arena >= 1 && arena <= OSA_ARENAS);
	assert(cls >= 2 && cls < OSA_CACHE_CLASSES);
	struct arena *a = &H.arenas[arena - 1];
	osa_block *chain = a->returned[cls];
	*n = a->nreturned[cls];
	a->returned[cls] = NULL;
	a->nreturned[cls] = 0;
	a->returned_bytes -= *n * cls * 16;
	return chain;
}

void osa_heap_release_returned(void)
{
	for (unsigned k = 0; k < OSA_ARENAS; k++)
		for (size_t c = 2; c < OSA_CACHE_CLASSES; c++) {
			unsigned n;
			osa_block *b = osa_heap_take_returned(k + 1, c, &n);
			while (b) {
				osa_block *next = chain_next(b);
				free_cached(b);
				b = next;
			}
		}
}

static size_t returned_bytes(void)
{
	size_t n = 0;
	for (unsigned k = 0; k < OSA_ARENAS; k++)
		n += H.arenas[k].returned_bytes;
	return n;
}

static int check_fail(enum osa_cause cause, const void *p);

static int check_returned(void)
{
	for (unsigned k = 0; k < OSA_ARENAS; k++) {
		const struct arena *a = &H.arenas[k];
		size_t bytes = 0;
		for (size_t c = 2; c < OSA_CACHE_CLASSES; c++) {
			unsigned n = 0;
			for (osa_block *b = a->returned[c]; b; n++) {
				uintptr_t *w = (uintptr_t *)(b + 1);
				if (!osa_pagemap_is_start((uintptr_t)w) ||
				    w[1] != osa_link_check(b, w[0]) ||
				    !osa_header_cached(b) ||
				    osa_block_size(b) != c * 16 ||
				    window_of(b) != a || n >= a->nreturned[c])
					return check_fail(OSA_E_FREE_LIST, w);
				b = (osa_block *)(w[0] ^ osa_keys.link);
			}
			if (n != a->nreturned[c])
				return check_fail(OSA_E_STATE, a);
			bytes += n * c * 16;
		}
		if (bytes != a->returned_bytes)
			return check_fail(OSA_E_STATE, a);
	}
	return 0;
}

void osa_heap_home(unsigned arena, uintptr_t *lo, size_t *len)
{
	assert(arena >= 1 && arena <= OSA_ARENAS);
	const struct arena *a = &H.arenas[arena - 1];
	*lo = a->win_lo;
	*len = a->win_end - a->win_lo;
}

unsigned osa_heap_arena_of(uintptr_t ptr)
{
	const struct osa_segment *s = segment_of(ptr);
	return s && s->arena < OSA_ARENAS ? s->arena + 1 : 0;
}

void osa_heap_stats(struct os_mallinfo *info)
{
	info->cached_bytes += returned_bytes();
	info->heap_bytes = H.heap_bytes;
	info->heap_segments = H.nsegs;
	info->heap_free_bytes = H.free_bytes;
	info->in_use_bytes += H.used_bytes;
}

/* ---- full check ---- */

static int check_fail(enum osa_cause cause, const void *p)
{
	osa_report(OSA_API_HEAP_CHECK, cause, p);
	return -1;
}

/* Walks one segment's blocks; counts free blocks and bytes. */
static int check_segment(const struct osa_segment *s, size_t *nfree,
			 size_t *free_bytes, size_t *used_bytes)
{
	if (s->canary != state_canary(s) || s->arena >= OSA_ARENAS ||
	    (s->top && H.arenas[s->arena].cur != s))
		return check_fail(OSA_E_STATE, s);
	osa_block *b = seg_first(s), *fence = seg_fence(s);
	bool prev_free = false;
	size_t prev_size = 0;
	while (b != fence) {
		void *p = osa_block_to_ptr(b);
		size_t size = osa_block_size(b);
		unsigned st = osa_block_state(b);
		bool ok = osa_header_ok(b) ||
			  (st == OSA_USED && osa_header_cached(b));
		if (!ok || size < OSA_MIN_BLOCK ||
		    (uintptr_t)b + size > (uintptr_t)fence || st == OSA_FENCE)
			return check_fail(OSA_E_HEADER, p);
		if (!osa_pagemap_is_start((uintptr_t)p))
			return check_fail(OSA_E_STATE, p);
		uintptr_t want = prev_free ? prev_flags_for(prev_size) : 0;
		if (block_flags(b) != want)
			return check_fail(OSA_E_HEADER, p);
		if (st == OSA_FREE) {
			if (prev_free || (size > OSA_MIN_BLOCK &&
					  ((uintptr_t *)block_next(b))[-1] != size))
				return check_fail(OSA_E_FREE_LIST, p);
			(*nfree)++;
			*free_bytes += size;
		} else if (st == OSA_TOP) {
			if (s->top != b || block_next(b) != fence || prev_free)
				return check_fail(OSA_E_STATE, p);
			*free_bytes += size;
		} else {
			*used_bytes += size;
		}
		uintptr_t q = osa_pagemap_find((uintptr_t)p + 16,
					       (uintptr_t)p + size);
		if (q != (uintptr_t)p + size)
			return check_fail(OSA_E_STATE, (void *)q);
		prev_free = st == OSA_FREE;
		prev_size = size;
		b = block_next(b);
	}
	if (!osa_header_ok(fence) || osa_block_state(fence) != OSA_FENCE ||
	    osa_block_size(fence) != OSA_HDR)
		return check_fail(OSA_E_HEADER, osa_block_to_ptr(fence));
	return 0;
}

/* Walks the current arena's bins; takes each block off *nfree. */
static int check_arena_bins(size_t *nfree)
{
	for (unsigned i = 0; i < OSA_NBINS; i++) {
		bool bit = (A->binmap[i >> 6] >> (i & 63)) & 1;
		if (bit != (A->bins[i] != NULL))
			return check_fail(OSA_E_STATE, &A->bins[i]);
		osa_block *prev = NULL;
		for (osa_block *b = A->bins[i]; b; b = link_get(b, LINK_NEXT)) {
			uintptr_t a = (uintptr_t)b;
			if ((a & 15) || !osa_pagemap_is_start(a + OSA_HDR) ||
			    !osa_header_ok(b) || osa_block_state(b) != OSA_FREE ||
			    bin_index(osa_block_size(b)) != i ||
			    !arena_owns(b) || link_get(b, LINK_PREV) != prev ||
			    *nfree == 0)
				return check_fail(OSA_E_FREE_LIST,
						  prev ? osa_block_to_ptr(prev)
						       : (void *)&A->bins[i]);
			(*nfree)--;
			prev = b;
		}
	}
	return 0;
}

static int check_bins(size_t *nfree)
{
	int rc = 0;
	for (unsigned k = 0; k < OSA_ARENAS && rc == 0; k++) {
		A = &H.arenas[k];
		rc = check_arena_bins(nfree);
	}
	A = NULL;
	if (rc)
		return rc;
	return *nfree == 0 ? 0 : check_fail(OSA_E_FREE_LIST, &H);
}

/* The index holds every segment once, in address order, none overlapping
 * the next; nonzero if not. */
static int check_index(void)
{
	if (H.nsegs > H.index_cap)
		return -1;
	for (size_t i = 1; i < H.nsegs; i++)
		if (H.index[i - 1].end > H.index[i].start)
			return -1;
	for (const struct osa_segment *s = H.segs; s; s = s->next) {
		const struct index_entry *e = entry_below((uintptr_t)s);
		if (!e || e->start != (uintptr_t)s || e->end != s->end)
			return -1;
	}
	return 0;
}

int osa_heap_check_all(void)
{
	if (H.canary_head != state_canary(&H.canary_head) ||
	    H.canary_tail != state_canary(&H.canary_tail))
		return H.segs ? check_fail(OSA_E_STATE, &H) : 0;
	size_t nfree = 0, free_bytes = 0, used_bytes = 0, bytes = 0, n = 0;
	for (struct osa_segment *s = H.segs; s; s = s->next) {
		if (check_segment(s, &nfree, &free_bytes, &used_bytes))
			return -1;
		bytes += s->length;
		n++;
	}
	if (free_bytes != H.free_bytes || used_bytes != H.used_bytes ||
	    bytes != H.heap_bytes || n != H.nsegs || check_index())
		return check_fail(OSA_E_STATE, &H);
	if (check_returned())
		return -1;
	return check_bins(&nfree);
}
