/* vg.h - valgrind client requests, so that memcheck sees os_malloc blocks as
 * it sees malloc blocks (leaks, use after free, uninitialised reads).
 *
 * Compiled in when <valgrind/valgrind.h> exists; active only when the
 * process runs under valgrind (checked once at initialisation).  Under
 * valgrind the thread caches are off, so only slow paths carry requests.
 * Blocks are described with their usable size.  Metadata words that live in
 * free memory (links, footers, headers written inside a freed range) are
 * marked defined before the allocator touches them.
 */
#ifndef OSA_VG_H
#define OSA_VG_H

#include <stdbool.h>

extern bool osa_on_valgrind;

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#define OSA_VG_DETECT() ((bool)RUNNING_ON_VALGRIND)
#define OSA_VG_MALLOC(p, n)                                                    \
	do {                                                                   \
		if (osa_on_valgrind)                                           \
			VALGRIND_MALLOCLIKE_BLOCK((p), (n), 0, 0);             \
	} while (0)
#define OSA_VG_FREE(p)                                                         \
	do {                                                                   \
		if (osa_on_valgrind)                                           \
			VALGRIND_FREELIKE_BLOCK((p), 0);                       \
	} while (0)
#define OSA_VG_RESIZE(p, old, new)                                             \
	do {                                                                   \
		if (osa_on_valgrind)                                           \
			VALGRIND_RESIZEINPLACE_BLOCK((p), (old), (new), 0);    \
	} while (0)
#define OSA_VG_DEFINED(p, n)                                                   \
	do {                                                                   \
		if (osa_on_valgrind)                                           \
			(void)VALGRIND_MAKE_MEM_DEFINED((p), (n));             \
	} while (0)
#else
#define OSA_VG_DETECT() false
#define OSA_VG_MALLOC(p, n) ((void)(p), (void)(n))
#define OSA_VG_FREE(p) ((void)(p))
#define OSA_VG_RESIZE(p, old, new) ((void)(p), (void)(old), (void)(new))
#define OSA_VG_DEFINED(p, n) ((void)(p), (void)(n))
#endif

#endif /* OSA_VG_H */
