#!/bin/sh
# client-requests.sh - valgrind's memcheck understands os_malloc blocks:
# it reports a leaked os_malloc block ("definitely lost", with the
# program's stack) and a write after os_free ("Invalid write ... inside a
# block ... free'd"), and nothing for a correct program.  Skips (exit 77) when
# valgrind is not installed or libosalloc was built without
# <valgrind/valgrind.h>.
#
# Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).

set -u
builddir=${top_builddir:-.}
prog=$builddir/tests/valgrind/vg_client
config=$builddir/config.h

if ! command -v valgrind >/dev/null 2>&1; then
	echo "SKIP: valgrind is not installed"
	exit 77
fi
if ! grep -q '^#define HAVE_VALGRIND_VALGRIND_H 1' "$config" 2>/dev/null; then
	echo "SKIP: libosalloc was built without <valgrind/valgrind.h>"
	exit 77
fi
if grep -q '^#define OSALLOC_SANITIZE 1' "$config" 2>/dev/null; then
	echo "SKIP: a sanitizer build does not run under valgrind"
	exit 77
fi
if [ ! -x "$prog" ]; then
	echo "FAIL: $prog not built"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vgclient.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0

run() { # run MODE: memcheck's report in $tmp/MODE.log
	valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
		--num-callers=20 --log-file="$tmp/$1.log" "$prog" "$1"
	echo "vg_client $1: exit $?"
	# valgrind 3.19 cannot read clang 14's DWARF 5 debug information.
	if grep -q 'debuginfo reader: Possibly corrupted' "$tmp/$1.log"; then
		echo "SKIP: valgrind cannot read this build's debug information" \
			"(clang's DWARF 5? build with CFLAGS=-gdwarf-4)"
		exit 77
	fi
}

expect() { # expect MODE PATTERN WHAT
	if grep -Eq "$2" "$tmp/$1.log"; then
		echo "ok: $1: $3"
	else
		echo "FAIL: $1: no \"$2\" ($3) in memcheck's report:"
		sed 's/^/    /' "$tmp/$1.log"
		fail=1
	fi
}

reject() { # reject MODE PATTERN WHAT
	if grep -Eq "$2" "$tmp/$1.log"; then
		echo "FAIL: $1: unexpected \"$2\" ($3) in memcheck's report:"
		sed 's/^/    /' "$tmp/$1.log"
		fail=1
	else
		echo "ok: $1: $3"
	fi
}

run leak
expect leak '[0-9]+ bytes in 1 blocks are definitely lost' 'leak reported'
expect leak 'by 0x[0-9A-F]+: (leak|main) \(vg_client\.c' 'leak traced to the program'

run uaf
expect uaf 'Invalid write of size 1' 'write after free reported'
expect uaf 'is 10 bytes inside a block of size [0-9]+ free.d' 'in the freed block'
expect uaf 'Block was alloc.d at' 'allocation stack shown'

run ok
reject ok 'Invalid (read|write)|uninitialised|definitely lost' 'a correct program: no error'
expect ok 'ERROR SUMMARY: 0 errors' 'a correct program: 0 errors'

exit $fail
