/* internal.h - what libosalloc's modules share: constants, the block header,
 * and the functions each module offers the others.  Nothing here is exported
 * from the shared library (everything is osa_* and hidden).
 */
#ifndef OSA_INTERNAL_H
#define OSA_INTERNAL_H

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "osalloc.h"
#include "vg.h"

#define OSA_LIKELY(x) __builtin_expect(!!(x), 1)
#define OSA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define OSA_COLD __attribute__((noinline, cold))
#define OSA_NORETURN __attribute__((noreturn))
#define OSA_INLINE static inline __attribute__((always_inline))

/* Tunables and derived constants. */
enum {
	OSA_ALIGN = 16,              /* alignof(max_align_t) on x86-64 */
	OSA_HDR = 16,                /* block header: size word + check word */
	OSA_MIN_BLOCK = 32,          /* header + two free-list links */
	OSA_PAGE = 4096,             /* granule of brk growth and mappings */
	OSA_DEFAULT_PREALLOC = 128 * 1024,  /* first brk growth (seed design) */
	OSA_DEFAULT_MMAP_THRESHOLD = 128 * 1024, /* own mapping from here on */
	OSA_GROW_MIN = 128 * 1024,   /* later growth is amortised this much */
	OSA_TRIM_THRESHOLD = 256 * 1024, /* trim brk top above this, down to
					    half; doubles whenever trimmed
					    pages are needed again ... */
	OSA_TRIM_THRESHOLD_MAX = 32 * 1024 * 1024, /* ... up to this */
	OSA_HUGE_PAGE = 2 * 1024 * 1024, /* mappings this large ask for THP */
	OSA_HUGE_HEAP = 8 * 1024 * 1024, /* heap segments this large, too */
	OSA_POPULATE_AHEAD = 64 * 1024, /* heap pages faulted in past TOP */
	OSA_ARENAS = 4,              /* heap arenas, threads round robin */
	OSA_CACHE_MAX_BLOCK = 1024,  /* largest block a thread cache holds */
	OSA_CACHE_CLASSES = OSA_CACHE_MAX_BLOCK / 16 + 1, /* index = size/16 */
	OSA_EXACT_BINS = 64,         /* bins 0..63: one block size (16*i) each */
	OSA_SUB_BITS = 4,            /* above 1 KiB: 16 bins per power of two,
					each 1/16 wide: any fit wastes < 7% */
	OSA_NBINS = OSA_EXACT_BINS + (48 - 10) * (1 << OSA_SUB_BITS),
	OSA_BESTFIT_SCAN = 8,        /* blocks inspected in a ranged bin */
};

/* An arena's window of address space (lib/heap.c): arena 0 grows with
 * brk, the others in a reservation of OSA_ARENA_WINDOW each. */
#define OSA_ARENA_WINDOW ((size_t)1 << 30)
#define OSA_HOME_SPAN ((size_t)1 << 36)
/* Bytes of blocks freed for another arena that wait there for a refill;
 * beyond, they go to its free lists. */
#define OSA_RETURNED_MAX ((size_t)256 << 10)

/* Largest request served at all: keeps every later size computation
 * (header, alignment padding, page rounding) far from overflow. */
#define OSA_MAX_REQUEST ((size_t)PTRDIFF_MAX - (size_t)(1 << 20))

_Static_assert(OSA_MIN_BLOCK >= OSA_HDR + 2 * sizeof(void *),
	       "a free block must hold its header and two links");
_Static_assert(OSA_CACHE_MAX_BLOCK < OSA_DEFAULT_MMAP_THRESHOLD,
	       "cached blocks come from the brk heap");

/*
 * Block layout in the brk heap (every block starts 16-aligned):
 *
 *   block -> +------------------+
 *            | word: size|flags | size in bytes incl. header, multiple of 16
 *            | check            | keyed hash of word and block address
 *   ptr  ->  +------------------+
 *            | payload ...      | free (bin):   link next, link prev (encoded)
 *            |                  | cached:       link next (encoded), link check
 *            |          footer  | free, size>32: last word = size (boundary tag)
 *            +------------------+
 *
 * Flags: bits 0-1 state, bit 2 PREV_FREE (the block before is a free block in
 * a bin), bit 3 PREV_MIN (that free block is 32 bytes: no footer; its start is
 * 32 bytes back).  A block held by a thread cache is USED as far as the heap
 * knows; its check is the used check xor the `cached` key, so the header
 * alone (keyed, never the payload) says whether a block is cached.  Large
 * (mmap'd) blocks use the same header, state USED, size = the mapping's length.
 *
 * Who writes a header: the check of a used or cached block only its owner
 * (the thread freeing it, or the cache holding it, which toggles the cached
 * key without the heap lock); the PREV_* flags of any block only the heap,
 * under its lock, when the block before it changes.  So the check does not
 * cover PREV_* (the two writers never race on one word), and the PREV_*
 * flags are verified where they are used instead: prev_free_block() checks
 * the keyed header, state and size of the block they point to, and a used
 * block's successor must have none.
 */
typedef struct osa_block {
	uintptr_t word;
	uintptr_t check;
} osa_block;

enum osa_state {
	OSA_FREE = 0,  /* in a bin */
	OSA_USED = 1,  /* held by the program or a thread cache */
	OSA_TOP = 2,   /* free space at the end of a segment, not in a bin */
	OSA_FENCE = 3, /* end marker of a segment, never handed out */
};
#define OSA_STATE_MASK ((uintptr_t)3)
#define OSA_PREV_FREE ((uintptr_t)4)
#define OSA_PREV_MIN ((uintptr_t)8)
#define OSA_PREV_MASK (OSA_PREV_FREE | OSA_PREV_MIN)
#define OSA_FLAG_MASK ((uintptr_t)15)

/* ---- secret.c / check.c: integrity keys, checks, reports ---- */
struct osa_keys {
	uint64_t header; /* keys block header checks */
	uint64_t link;   /* encodes free-list and cache links */
	uint64_t canary; /* keys strict-mode canaries and state canaries */
	uint64_t cached; /* xor'ed into the check of a thread-cached block */
};
extern struct osa_keys osa_keys;

/* Check values are (fields ^ address ^ key) times an odd constant: a
 * bijection, so any change of any bit of the fields changes the check, and
 * without the per-process key no value can be forged.  One multiply keeps
 * the checks cheap enough for the fast paths. */
OSA_INLINE uint64_t osa_mix(uint64_t x)
{
	return x * 0xd6e8feb86659fd93ULL;
}

/* The check of a used or free block's header (PREV_* flags excluded). */
OSA_INLINE uintptr_t osa_header_check(const osa_block *b, uintptr_t word)
{
	return osa_mix((word & ~OSA_PREV_MASK) ^ (uintptr_t)b ^ osa_keys.header);
}

enum osa_cause {
	OSA_E_DOUBLE_FREE,
	OSA_E_NOT_OURS,
	OSA_E_NOT_START,
	OSA_E_MISALIGNED,
	OSA_E_HEADER,
	OSA_E_NEXT_HEADER,
	OSA_E_CANARY,
	OSA_E_FREE_LIST,
	OSA_E_WRITE_AFTER_FREE,
	OSA_E_STATE,
	OSA_E_RECURSIVE,
};

/* The public call a report names. */
enum osa_api {
	OSA_API_MALLOC,
	OSA_API_CALLOC,
	OSA_API_REALLOC,
	OSA_API_FREE,
	OSA_API_ALIGNED_ALLOC,
	OSA_API_POSIX_MEMALIGN,
	OSA_API_USABLE_SIZE,
	OSA_API_HEAP_CHECK,
	OSA_API_REALLOCARRAY,
	/* The drop-in library's calls (libosalloc-malloc). */
	OSA_API_STD_MALLOC,
	OSA_API_STD_CALLOC,
	OSA_API_STD_REALLOC,
	OSA_API_STD_REALLOCARRAY,
	OSA_API_STD_FREE,
	OSA_API_STD_FREE_SIZED,
	OSA_API_STD_FREE_ALIGNED_SIZED,
	OSA_API_STD_POSIX_MEMALIGN,
	OSA_API_STD_ALIGNED_ALLOC,
	OSA_API_STD_MEMALIGN,
	OSA_API_STD_VALLOC,
	OSA_API_STD_PVALLOC,
	OSA_API_STD_USABLE_SIZE,
};

/* Writes "osalloc: <api>(): <cause>: <ptr>" with one write(2); errno kept. */
void osa_report(enum osa_api api, enum osa_cause cause, const void *ptr);
/* Reports, then aborts.  Used for misuse and corruption. */
OSA_NORETURN void osa_fatal(enum osa_api api, enum osa_cause cause,
			    const void *ptr);
/* Test hook: when set, osa_fatal calls it instead of aborting (and then
 * longjmps or exits from it; it must not return). */
extern void (*osa_fatal_hook)(enum osa_api, enum osa_cause, const void *);
/* Set on the thread that forks from the end of the fork prepare handler,
 * which holds every lock of the library, until the parent or child handler
 * starts: fork handlers of other libraries that run in between, on that
 * thread, may allocate, and must not wait for locks their thread holds.
 * osa_lock and osa_unlock then do nothing (malloc.c). */
extern __thread bool osa_forking __attribute__((tls_model("initial-exec")));
OSA_INLINE void osa_lock(pthread_mutex_t *m)
{
	if (!osa_forking)
		pthread_mutex_lock(m);
}
OSA_INLINE void osa_unlock(pthread_mutex_t *m)
{
	if (!osa_forking)
		pthread_mutex_unlock(m);
}

/* The api whose call is in progress in this thread (for reports raised deep
 * inside the heap). */
extern __thread enum osa_api osa_current_api
    __attribute__((tls_model("initial-exec")));
void osa_keys_init(void);
const char *osa_cause_text(enum osa_cause cause);

/* ---- os.c: every system call ---- */
void *osa_sys_sbrk(intptr_t increment);        /* (void *)-1 on failure */
void *osa_sys_mmap(size_t len);                 /* RW private anon; NULL */
int osa_sys_munmap(void *addr, size_t len);
/* PROT_NONE, at hint if that range is free (else where the kernel
 * chooses; hint may be NULL); NULL on failure. */
void *osa_sys_reserve(void *hint, size_t len);
int osa_sys_commit(void *addr, size_t len);     /* -> RW; -1 on failure */
void *osa_sys_mremap(void *old, size_t old_len, size_t new_len); /* NULL */
int osa_sys_getrandom(void *buf, size_t len);
void osa_sys_write_stderr(const char *buf, size_t len);
int osa_sys_madvise_free(void *addr, size_t len);
void osa_sys_madvise_hugepage(void *addr, size_t len); /* hint only */
void osa_sys_madvise_populate(void *addr, size_t len);  /* hint only */

/* Fault injection (tests only): the nth call (1-based) from now to any of
 * the calls in mask fails with ENOMEM; 0 disarms.  Counts calls that would
 * have been made, so a test can sweep n over a workload. */
enum {
	OSA_SYS_SBRK = 1,
	OSA_SYS_MMAP = 2,
	OSA_SYS_MUNMAP = 4,
	OSA_SYS_MREMAP = 8,
	OSA_SYS_ALL = 15,
};
void osa_sys_fail_nth(unsigned long n, unsigned mask);
unsigned long osa_sys_calls(unsigned mask); /* calls counted since start */

/* ---- pagemap.c: which 16-byte granules start a heap block ---- */
bool osa_pagemap_reserve(uintptr_t base, uintptr_t end); /* leaves exist */
void osa_pagemap_set(uintptr_t ptr);
void osa_pagemap_clear(uintptr_t ptr);
/* The first block start in [lo, hi) (16-aligned), or hi: a word of the map
 * at a time (os_heap_check). */
uintptr_t osa_pagemap_find(uintptr_t lo, uintptr_t hi);
extern uint64_t *osa_pagemap_l1[1u << 17];
/* Is ptr (a payload address) the start of a live heap block? */
OSA_INLINE bool osa_pagemap_is_start(uintptr_t ptr)
{
	if (OSA_UNLIKELY(ptr >> 47))
		return false;
	uint64_t *leaf =
	    __atomic_load_n(&osa_pagemap_l1[ptr >> 30], __ATOMIC_ACQUIRE);
	if (!leaf)
		return false;
	uintptr_t bit = (ptr & ((1u << 30) - 1)) >> 4;
	return (__atomic_load_n(&leaf[bit >> 6], __ATOMIC_RELAXED) >>
		(bit & 63)) & 1;
}

/* ---- heap.c: the brk heap (lock held by callers: osa_heap_lock) ---- */
extern pthread_mutex_t osa_heap_lock;
void osa_heap_lock_acquire(void);
void osa_heap_lock_release(void);
/* Allocates a block of `size` bytes or a little more (size incl. header,
 * multiple of 16, >= 32).  NULL with errno ENOMEM.  *dirty is how many
 * leading payload bytes may be non-zero (the rest is fresh from the OS). */
osa_block *osa_heap_alloc(size_t size, size_t *dirty);
/* The same from the heap's free space only (never grows it); NULL and
 * errno unchanged when no free block or TOP is big enough. */
osa_block *osa_heap_alloc_free_only(size_t size, size_t *dirty);
/* As osa_heap_alloc, with the payload aligned to `align` (> 16). */
osa_block *osa_heap_alloc_aligned(size_t size, size_t align);
void osa_heap_free(osa_block *b);
/* Tries to resize b in place to `size`; true on success. */
bool osa_heap_resize(osa_block *b, size_t size);
/* The calling thread's arena, 1-based (0: none chosen yet), and a way to
 * hand it another one (a cache it adopts brings its own). */
unsigned osa_heap_thread_arena(void);
void osa_heap_set_thread_arena(unsigned arena);
/* Does shrinking a block of bsize bytes to size keep it whole?  Yes when
 * less than a quarter (or less than a minimum block) would be freed. */
bool osa_heap_shrink_keeps(size_t bsize, size_t size);
/* Verifies b's header (state USED) and its neighbour's; aborts otherwise. */
void osa_heap_verify_used(const osa_block *b);
bool osa_heap_contains(uintptr_t ptr); /* inside one of our segments */
/* Arena `arena`'s (1-based) window: its blocks lie in [*lo, *lo + *len),
 * unless it had to map a segment elsewhere. */
void osa_heap_home(unsigned arena, uintptr_t *lo, size_t *len);
/* Takes a chain of cached blocks (linked as in a thread cache) that a
 * thread freed for other arenas: each waits in its arena, by class, for
 * a refill there (osa_heap_take_returned), up to osa_cache_limit blocks
 * a class and OSA_RETURNED_MAX bytes; the rest go to the free lists. */
void osa_heap_return(osa_block *chain);
/* Arena `arena`'s (1-based) returned blocks of class cls, a chain of *n
 * cached blocks. */
osa_block *osa_heap_take_returned(unsigned arena, size_t cls, unsigned *n);
/* Every arena's returned blocks to its free lists (tests). */
void osa_heap_release_returned(void);
/* The arena (1-based) of the segment holding ptr; 0: none. */
unsigned osa_heap_arena_of(uintptr_t ptr);
int osa_heap_check_all(void);          /* -1 after reporting */
void osa_heap_stats(struct os_mallinfo *info);
void osa_heap_after_fork_child(void);

/* ---- large.c: blocks with their own mapping ---- */
void *osa_large_alloc(size_t size, size_t align);
/* Faults in the pages of [ptr, ptr + len), a range of one large block,
 * with one system call: for pages about to be written anyway. */
void osa_large_prefault(void *ptr, size_t len);
/* Looks ptr up: its header when it is a live large block, else NULL. */
osa_block *osa_large_find(const void *ptr);
void osa_large_free(osa_block *b);
void *osa_large_realloc(osa_block *b, size_t size); /* NULL: ENOMEM */
size_t osa_large_usable(const osa_block *b);
/* Classifies a pointer that is neither a heap block nor a live large block. */
enum osa_cause osa_large_classify_miss(const void *ptr);
int osa_large_check_all(void);
void osa_large_stats(struct os_mallinfo *info);
void osa_large_lock_all(void);
void osa_large_unlock_all(bool child);

/* ---- cache.c: per-thread caches of small blocks ---- */
/* How many blocks of class cls (cls * 16 bytes) a cache holds at most:
 * 32 KiB, but 16 to 256 blocks. */
OSA_INLINE unsigned osa_cache_limit(size_t cls)
{
	size_t n = 32768 / (cls * 16);
	return (unsigned)(n < 16 ? 16 : n > 256 ? 256 : n);
}
struct osa_tcache {
	/* A cache line's worth of padding at either end: the counters are
	 * written on every call, and no other thread's block or cache may
	 * share a line with them (the struct is a heap block). */
	char pad_front[64];
	/* Its arena's window (osa_heap_home).  A block freed from outside
	 * it goes to class 0, whatever its size, and back to its own arena
	 * in a batch: the blocks a thread reuses stay in its arena, and
	 * threads running side by side never write to neighbouring blocks
	 * (whose headers each free reads).  While the cache shares (cache.c)
	 * the window is all of memory. */
	uintptr_t home_lo;
	size_t home_len;
	osa_block *head[OSA_CACHE_CLASSES]; /* 0: other arenas' blocks */
	uint16_t count[OSA_CACHE_CLASSES];
	uint16_t limit[OSA_CACHE_CLASSES];
	uint8_t refills[OSA_CACHE_CLASSES]; /* batches taken, up to 15 */
	uint64_t nalloc, nfree; /* calls served by the threads owning it */
	size_t foreign_bytes;   /* bytes of the blocks in class 0 */
	/* Sharing (cache.c): from share_until on, the next refill or flush
	 * ends it; until then the home window is all of memory and other
	 * arenas' blocks are reused here. */
	uint64_t share_until;   /* 0: not sharing */
	uint64_t share_mark;    /* nfree at the last return of class 0 */
	unsigned share_streak;  /* returns in a row that were nearly all */
	unsigned arena;         /* heap arena its refills come from, 1-based */
	struct osa_tcache *next, *prev; /* all live and parked caches */
	char pad_back[64];
};
extern __thread struct osa_tcache *osa_tcache_self
    __attribute__((tls_model("initial-exec")));
void osa_tcache_init(void);
/* Caches are on (options, valgrind) and can be registered. */
bool osa_tcache_possible(void);
struct osa_tcache *osa_tcache_create(void); /* NULL: no cache here */
/* Adopts a parked cache of arena `arena` (1-based) for the calling thread,
 * which has none yet; NULL when no such cache is parked. */
struct osa_tcache *osa_tcache_adopt_arena(unsigned arena);
void osa_tcache_flush_self(void); /* empties the caller's, retires parked */
void osa_tcache_retire_self(void); /* the caller's (tests) */
bool osa_tcache_count(bool alloc); /* false: the caller has no cache */
int osa_tcache_check_self(void);  /* the caller's and parked; -1: reported */
void *osa_tcache_refill(struct osa_tcache *tc, size_t cls);
void osa_tcache_flush(struct osa_tcache *tc, size_t cls);
void osa_tcache_stats(struct os_mallinfo *info);
void osa_tcache_lock_all(void);
void osa_tcache_unlock_all(bool child);
void osa_tcache_report_corrupt(const void *ptr) OSA_NORETURN;

/* Link encoding of cached blocks: next is stored xor the link key, and the
 * second payload word holds a keyed check of the block and that word, which
 * proves the link unmodified before it is followed.  Whether a block is
 * cached is in its header (osa_header_cached), never read from the payload. */
OSA_INLINE uintptr_t osa_link_check(const osa_block *b, uintptr_t enc)
{
	return osa_mix(enc ^ ((uintptr_t)b << 1) ^ osa_keys.link);
}

/* Links cached block b to next: encoded, with its keyed check. */
OSA_INLINE void osa_link_put(osa_block *b, const osa_block *next)
{
	uintptr_t *w = (uintptr_t *)(b + 1);
	uintptr_t enc = (uintptr_t)next ^ osa_keys.link;
	w[0] = enc;
	w[1] = osa_link_check(b, enc);
}

/* Marks b cached (push) or back in use (pop), given its current check:
 * only b's owner writes its check, so a plain relaxed store suffices. */
OSA_INLINE void osa_header_flip_cached(osa_block *b, uintptr_t check)
{
	__atomic_store_n(&b->check, check ^ osa_keys.cached, __ATOMIC_RELAXED);
}
OSA_INLINE void osa_header_toggle_cached(osa_block *b)
{
	osa_header_flip_cached(b, __atomic_load_n(&b->check, __ATOMIC_RELAXED));
}

/* Links b, already marked cached, into class cls. */
OSA_INLINE void osa_tcache_push_marked(struct osa_tcache *tc, size_t cls,
				       osa_block *b)
{
	osa_link_put(b, tc->head[cls]);
	tc->head[cls] = b;
	__atomic_store_n(&tc->count[cls], tc->count[cls] + 1, __ATOMIC_RELAXED);
}
/* The class a freed block of `size` bytes at p goes to in tc: its size's,
 * or 0 when it belongs to another arena. */
OSA_INLINE size_t osa_tcache_class_of(const struct osa_tcache *tc,
				      uintptr_t p, size_t size)
{
	return OSA_LIKELY(p - tc->home_lo < tc->home_len) ? size >> 4 : 0;
}
/* Counts a block of `size` bytes pushed on class 0. */
OSA_INLINE void osa_tcache_note_foreign(struct osa_tcache *tc, size_t size)
{
	__atomic_store_n(&tc->foreign_bytes, tc->foreign_bytes + size,
			 __ATOMIC_RELAXED);
}
/* Pushes b (a verified USED block of class cls, not cached) on the cache. */
OSA_INLINE void osa_tcache_push(struct osa_tcache *tc, size_t cls,
				osa_block *b)
{
	osa_header_toggle_cached(b);
	osa_tcache_push_marked(tc, cls, b);
}

OSA_INLINE void osa_tcache_count_free(struct osa_tcache *tc)
{
	__atomic_store_n(&tc->nfree, tc->nfree + 1, __ATOMIC_RELAXED);
}

/* ---- options.c ---- */
struct osa_options {
	size_t mmap_threshold;
	size_t heap_prealloc;
	bool zero;
	bool junk;
	int check; /* 1 default, 2 strict canaries */
	int cache; /* -1: automatic (on unless under valgrind), 0, 1 */
	bool stats;
	bool thp; /* hint transparent huge pages (large blocks, big heaps) */
};
extern struct osa_options osa_opt;
void osa_options_init(void);

/* ---- stats.c ---- */
void osa_stats_note_in_use(size_t in_use); /* raises the peak */
void osa_stats_count(bool alloc);          /* calls not seen by caches */
size_t osa_heap_used_bytes(void);          /* relaxed reads, any thread */
size_t osa_large_bytes(void);

/* ---- malloc.c: initialisation ---- */
extern int osa_initialised;
void osa_init_slow(void);
OSA_INLINE void osa_ensure_init(void)
{
	if (OSA_UNLIKELY(!__atomic_load_n(&osa_initialised, __ATOMIC_ACQUIRE)))
		osa_init_slow();
}

/* ---- small helpers ---- */
/* Header words are read and written with relaxed atomics: a neighbour's
 * flags may be rewritten under the heap lock while a lock-free free() reads
 * them; a torn view is rechecked under the lock, never reported. */
OSA_INLINE uintptr_t osa_load(const uintptr_t *w)
{
	return __atomic_load_n(w, __ATOMIC_RELAXED);
}
OSA_INLINE void osa_store(uintptr_t *w, uintptr_t v)
{
	__atomic_store_n(w, v, __ATOMIC_RELAXED);
}
OSA_INLINE size_t osa_block_size(const osa_block *b)
{
	return osa_load(&b->word) & ~OSA_FLAG_MASK;
}
OSA_INLINE unsigned osa_block_state(const osa_block *b)
{
	return (unsigned)(osa_load(&b->word) & OSA_STATE_MASK);
}
OSA_INLINE void *osa_block_to_ptr(const osa_block *b)
{
	return (char *)b + OSA_HDR;
}
OSA_INLINE osa_block *osa_block_from_ptr(const void *p)
{
	return (osa_block *)((char *)p - OSA_HDR);
}
/* b's header is intact and b is not in a thread cache. */
OSA_INLINE bool osa_header_ok(const osa_block *b)
{
	return osa_load(&b->check) == osa_header_check(b, osa_load(&b->word));
}
/* b's header is intact and says b is in a thread cache. */
OSA_INLINE bool osa_header_cached(const osa_block *b)
{
	return (osa_load(&b->check) ^ osa_keys.cached) ==
	       osa_header_check(b, osa_load(&b->word));
}
/* b's header, whose size word is w, is intact, cached or not. */
OSA_INLINE bool osa_header_valid_word(const osa_block *b, uintptr_t w)
{
	uintptr_t x = osa_load(&b->check) ^ osa_header_check(b, w);
	/* No branch between the two: whether a neighbour is cached is random,
	 * and a mispredicted branch here waits for its header's cache miss. */
	uintptr_t cached = -(uintptr_t)(x == osa_keys.cached);
	__asm__("" : "+r"(cached)); /* keeps the compiler from branching */
	return (x & ~cached) == 0;
}
/* b's header is intact, cached or not (a neighbour, a block in a walk). */
OSA_INLINE bool osa_header_valid(const osa_block *b)
{
	return osa_header_valid_word(b, osa_load(&b->word));
}
/* The block after a used block: intact, and no PREV_* flags. */
OSA_INLINE bool osa_header_next_of_used(const osa_block *next)
{
	uintptr_t w = osa_load(&next->word); /* read once */
	return !(w & OSA_PREV_MASK) && osa_header_valid_word(next, w);
}
OSA_INLINE void osa_header_set(osa_block *b, uintptr_t word)
{
	OSA_VG_DEFINED(b, sizeof *b);
	osa_store(&b->word, word);
	osa_store(&b->check, osa_header_check(b, word));
}
/* Request -> block size in the heap (header included, 16-aligned, >= 32);
 * valid for size <= OSA_MAX_REQUEST. */
OSA_INLINE size_t osa_request_to_block(size_t size)
{
	size_t s = (size + OSA_HDR + 15) & ~(size_t)15;
	return s < OSA_MIN_BLOCK ? OSA_MIN_BLOCK : s;
}
OSA_INLINE uintptr_t osa_align_up(uintptr_t x, uintptr_t a)
{
	return (x + a - 1) & ~(a - 1);
}

#endif /* OSA_INTERNAL_H */
