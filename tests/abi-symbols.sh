#!/bin/sh
# abi-symbols.sh - the shared library exports exactly the public API.
#
# Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
#
# Checks that "nm -D --defined-only" of lib/.libs/libosalloc.so shows the
# public os_* functions of include/osalloc.h and nothing else, each under the
# symbol version OSALLOC_0, and that debian/libosalloc0.symbols lists the
# same names.  Run by "make check" (top_srcdir and top_builddir come from
# the test environment) or by hand from the top of a built tree.
set -eu

top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
NM=${NM:-nm}

expected='os_aligned_alloc
os_calloc
os_free
os_heap_check
os_mallinfo
os_malloc
os_malloc_stats
os_malloc_usable_size
os_posix_memalign
os_realloc
os_reallocarray'

lib=$top_builddir/lib/.libs/libosalloc.so
symbols=$top_srcdir/debian/libosalloc0.symbols
map=$top_srcdir/lib/osalloc.map
header=$top_srcdir/include/osalloc.h

if [ ! -e "$lib" ]; then
	echo "SKIP: $lib not built (--disable-shared?)"
	exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

printf '%s\n' "$expected" >"$tmp/expected"

# 1. The header declares exactly these functions.
sed -n 's/^OSALLOC_API[^(]*[ *]\(os_[a-z_]*\)(.*/\1/p' "$header" | sort -u \
	>"$tmp/header"
if ! cmp -s "$tmp/expected" "$tmp/header"; then
	echo "FAIL: public functions in include/osalloc.h differ from the API:"
	diff "$tmp/expected" "$tmp/header" || true
	fail=1
fi

# 2. The library exports exactly these, versioned OSALLOC_0.  Besides them
#    the dynamic symbol table holds only the version node itself (an
#    absolute symbol named OSALLOC_0).  Older nm prints no version suffix.
$NM -D --defined-only "$lib" >"$tmp/nm.raw"
awk '{ print $NF }' "$tmp/nm.raw" | sed 's/@@*OSALLOC_0$//' |
	grep -v '^OSALLOC_0$' | sort -u >"$tmp/exported"
if ! cmp -s "$tmp/expected" "$tmp/exported"; then
	echo "FAIL: symbols exported by $lib differ from the API"
	echo "      (< expected, > exported):"
	diff "$tmp/expected" "$tmp/exported" || true
	fail=1
fi
if $NM -D --defined-only --with-symbol-versions "$lib" >"$tmp/nm.ver" 2>/dev/null &&
	grep -q '@' "$tmp/nm.ver"; then
	if grep ' os_' "$tmp/nm.ver" | grep -v '@@OSALLOC_0$' >"$tmp/unversioned"; then
		echo "FAIL: exported functions not under the symbol version OSALLOC_0:"
		cat "$tmp/unversioned"
		fail=1
	fi
fi

# 3. The version script names the same functions.
sed -n 's/^[[:space:]]*\([A-Za-z_][A-Za-z0-9_]*\);.*/\1/p' "$map" | sort -u >"$tmp/map"
if ! cmp -s "$tmp/expected" "$tmp/map"; then
	echo "FAIL: lib/osalloc.map differs from the API:"
	diff "$tmp/expected" "$tmp/map" || true
	fail=1
fi

# 4. The Debian symbols file lists each of them as name@OSALLOC_0, plus the
#    version node OSALLOC_0@OSALLOC_0.
if [ -e "$symbols" ]; then
	sed -n 's/^ \([^ ]*\) .*/\1/p' "$symbols" | sort -u >"$tmp/debian"
	{ sed 's/$/@OSALLOC_0/' "$tmp/expected"; echo 'OSALLOC_0@OSALLOC_0'; } |
		sort -u >"$tmp/debian.expected"
	if ! cmp -s "$tmp/debian.expected" "$tmp/debian"; then
		echo "FAIL: debian/libosalloc0.symbols differs from the exports"
		echo "      (< expected, > in the symbols file):"
		diff "$tmp/debian.expected" "$tmp/debian" || true
		fail=1
	fi
else
	echo "FAIL: $symbols missing"
	fail=1
fi

if [ "$fail" -eq 0 ]; then
	echo "PASS: $(wc -l <"$tmp/expected") public symbols, versioned OSALLOC_0," \
		"match the header, lib/osalloc.map and debian/libosalloc0.symbols"
fi
exit "$fail"
