/* osalloc.h - public interface of libosalloc, a hardened memory allocator.
 *
 * Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
 *
 * The manual pages (os_malloc(3), os_heap_check(3), osalloc(7)) are the
 * normative reference; the comments here are short contracts.
 *
 * Common to every call:
 *  - All functions are thread safe (MT-Safe) and may be called from any
 *    thread; they are not async-signal-safe.
 *  - Returned pointers are aligned to alignof(max_align_t) (16 on x86-64)
 *    unless a larger alignment was asked for.
 *  - A size that cannot be served (overflow, more than PTRDIFF_MAX, or the
 *    system refused memory) gives NULL with errno set to ENOMEM and changes
 *    nothing else.
 *  - Misuse (freeing a pointer that osalloc did not return, freeing twice, a
 *    corrupted block header, ...) prints one line to stderr,
 *    "osalloc: <function>(): <cause>: <pointer>", and aborts (SIGABRT).
 */
#ifndef OSALLOC_H
#define OSALLOC_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OSALLOC_VERSION_MAJOR 0
#define OSALLOC_VERSION_MINOR 1
#define OSALLOC_VERSION_PATCH 0

/* Attribute macros, defined once and used on every declaration below. */
#if defined(__GNUC__) || defined(__clang__)
#define OSALLOC_API __attribute__((visibility("default")))
#define OSALLOC_NOTHROW __attribute__((nothrow))
#define OSALLOC_MALLOC __attribute__((malloc))
#define OSALLOC_ALLOC_SIZE(i) __attribute__((alloc_size(i)))
#define OSALLOC_ALLOC_SIZE2(i, j) __attribute__((alloc_size(i, j)))
#define OSALLOC_ALLOC_ALIGN(i) __attribute__((alloc_align(i)))
#define OSALLOC_WUR __attribute__((warn_unused_result))
#define OSALLOC_NONNULL(i) __attribute__((nonnull(i)))
#else
#define OSALLOC_API
#define OSALLOC_NOTHROW
#define OSALLOC_MALLOC
#define OSALLOC_ALLOC_SIZE(i)
#define OSALLOC_ALLOC_SIZE2(i, j)
#define OSALLOC_ALLOC_ALIGN(i)
#define OSALLOC_WUR
#define OSALLOC_NONNULL(i)
#endif

/* Allocate size bytes of uninitialised memory.  size 0 returns NULL (errno
 * unchanged).  Requests of 128 KiB and more get their own mapping (or,
 * when the system refuses it, free heap memory; see osalloc(7)). */
OSALLOC_API void *os_malloc(size_t size)
    OSALLOC_NOTHROW OSALLOC_MALLOC OSALLOC_ALLOC_SIZE(1) OSALLOC_WUR;

/* Allocate nmemb * size zeroed bytes.  Either argument 0 returns NULL;
 * a product that overflows gives NULL and ENOMEM. */
OSALLOC_API void *os_calloc(size_t nmemb, size_t size)
    OSALLOC_NOTHROW OSALLOC_MALLOC OSALLOC_ALLOC_SIZE2(1, 2) OSALLOC_WUR;

/* Resize ptr's block to size bytes, in place when possible, keeping the
 * contents up to the smaller size.  ptr NULL acts as os_malloc(size); size 0
 * frees ptr and returns NULL.  On failure returns NULL with ENOMEM and ptr
 * is left intact and still owned by the caller. */
OSALLOC_API void *os_realloc(void *ptr, size_t size)
    OSALLOC_NOTHROW OSALLOC_ALLOC_SIZE(2) OSALLOC_WUR;

/* os_realloc(ptr, nmemb * size), with ENOMEM when the product overflows
 * (ptr is then left intact). */
OSALLOC_API void *os_reallocarray(void *ptr, size_t nmemb, size_t size)
    OSALLOC_NOTHROW OSALLOC_ALLOC_SIZE2(2, 3) OSALLOC_WUR;

/* Release a block.  NULL does nothing; errno is preserved. */
OSALLOC_API void os_free(void *ptr) OSALLOC_NOTHROW;

/* size bytes aligned to alignment, which must be a power of two (else NULL
 * and EINVAL).  size 0 returns NULL.  Free with os_free. */
OSALLOC_API void *os_aligned_alloc(size_t alignment, size_t size)
    OSALLOC_NOTHROW OSALLOC_MALLOC OSALLOC_ALLOC_ALIGN(1) OSALLOC_ALLOC_SIZE(2)
        OSALLOC_WUR;

/* POSIX interface: stores the block in *memptr and returns 0, or returns
 * EINVAL (alignment not a power of two multiple of sizeof(void *)) or ENOMEM
 * and leaves *memptr unchanged.  size 0 stores NULL and returns 0. */
OSALLOC_API int os_posix_memalign(void **memptr, size_t alignment, size_t size)
    OSALLOC_NOTHROW OSALLOC_NONNULL(1) OSALLOC_WUR;

/* Number of bytes that may really be written at ptr (at least the size
 * asked for).  NULL gives 0. */
OSALLOC_API size_t os_malloc_usable_size(void *ptr) OSALLOC_NOTHROW;

/* Walk every heap structure and verify every invariant.  Returns 0, or
 * reports the first inconsistency on stderr (one line) and returns -1. */
OSALLOC_API int os_heap_check(void) OSALLOC_NOTHROW;

/* Statistics.  Counters are exact when no other thread allocates
 * concurrently, and approximate (never torn) otherwise. */
struct os_mallinfo {
	size_t heap_bytes;     /* bytes obtained from the OS for the heap
				  (the brk heap and other threads' arenas) */
	size_t heap_segments;  /* number of heap segments (brk or mmap) */
	size_t heap_free_bytes; /* free bytes in the heap (bins and top) */
	size_t cached_bytes;   /* free blocks held by per-thread caches
				  (and kept from exited threads, and
				  waiting in their arena), and the
				  caches themselves */
	size_t in_use_bytes;   /* bytes in blocks the program holds (headers
	                          included), heap and mmap */
	size_t mmap_count;     /* live mmap'd blocks */
	size_t mmap_bytes;     /* bytes mapped for them */
	size_t peak_in_use_bytes; /* highest in_use_bytes + cached_bytes
				     seen (caches take blocks in batches) */
	unsigned long long alloc_calls; /* successful allocations */
	unsigned long long free_calls;  /* blocks released */
};

/* Fill *info with the current statistics. */
OSALLOC_API void os_mallinfo(struct os_mallinfo *info)
    OSALLOC_NOTHROW OSALLOC_NONNULL(1);

/* Print the statistics, human readable, to stream (stderr when NULL).
 * Returns 0, or -1 if writing failed. */
OSALLOC_API int os_malloc_stats(FILE *stream) OSALLOC_NOTHROW;

#ifdef __cplusplus
}
#endif

#endif /* OSALLOC_H */
