#!/bin/sh
# syscalls-in-one-module.sh - every memory system call of libosalloc goes
# through lib/os.c: no other object of the library refers to brk, sbrk,
# mmap, munmap, mremap, madvise, mprotect or syscall.  Complements
# tests/check_syscalls, which counts the calls at run time.
#
# Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
#
# Run by "make check" (top_builddir and NM come from AM_TESTS_ENVIRONMENT).

set -u
builddir=${top_builddir:-.}
nm=${NM:-nm}

# The archive libtool builds holds exactly the library's objects.
archive=
for a in "$builddir/lib/.libs/libosalloc.a" "$builddir/lib/.libs/libosalloc-core.a"; do
	if [ -f "$a" ]; then
		archive=$a
		break
	fi
done
if [ -z "$archive" ]; then
	echo "no static archive of the library under $builddir/lib/.libs" >&2
	exit 99 # hard error: the build is incomplete
fi

calls='^(brk|__brk|sbrk|__sbrk|mmap|mmap64|__mmap|munmap|__munmap|mremap|__mremap|madvise|__madvise|mprotect|__mprotect|syscall)$'
# "archive:member: U symbol" for every undefined symbol of every member.
refs=$($nm -A -u "$archive" 2>/dev/null |
	awk '{ print $1, $NF }' | sed 's/:$//; s/: / /' |
	awk -v re="$calls" '$2 ~ re { n = split($1, p, ":"); print p[n], $2 }')
if [ -z "$refs" ]; then
	echo "no object of $archive refers to a memory system call: is NM ($nm) working?" >&2
	exit 99
fi
echo "references to memory system calls in $archive:"
echo "$refs" | sed 's/^/  /'
bad=$(echo "$refs" | awk '$1 != "os.o" && $1 !~ /-os\.o$/')
if [ -n "$bad" ]; then
	echo "FAIL: made outside lib/os.c:" >&2
	echo "$bad" | sed 's/^/  /' >&2
	exit 1
fi
for sym in sbrk mmap munmap; do
	echo "$refs" | grep -q " $sym\$" || {
		echo "FAIL: lib/os.c does not call $sym (renamed?)" >&2
		exit 1
	}
done
echo "PASS: only lib/os.c makes them"
