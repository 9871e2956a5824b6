#!/bin/sh
# dropin.sh - longer checks of the drop-in malloc for CI (not "make check").
#
# Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
#
# Run from the top of a built tree (after "make check", which builds the
# test programs):
#   1. tests/dropin/run.sh with DROPIN_REPEAT=${DROPIN_REPEAT:-5}: the fork
#      and thread-exit cases several times over;
#   2. the thread and usable-size cases under valgrind's memcheck with
#      --soname-synonyms=somalloc=libosalloc-malloc.so*, as osalloc-malloc(7)
#      documents (skipped without valgrind).
# Prints one line per check and "N passed, M failed"; exits 1 on failure.
set -u

top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
export top_srcdir top_builddir

passed=0
failed=0
ok() {
	passed=$((passed + 1))
	printf 'ok    %s\n' "$*"
}
fail() {
	failed=$((failed + 1))
	printf 'FAIL  %s\n' "$*"
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dropin-ci.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

lib=$top_builddir/lib/.libs/libosalloc-malloc.so.0
test=$top_builddir/tests/dropin/dropin-test
if [ ! -e "$lib" ] || [ ! -e "$test" ]; then
	fail "build first: $lib and $test are needed (make check)"
	echo "$passed passed, $failed failed"
	exit 1
fi
lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")

# 1. The make check script, the racy cases repeated.
DROPIN_REPEAT=${DROPIN_REPEAT:-5} sh "$top_srcdir/tests/dropin/run.sh" \
	>"$tmp/run.log" 2>&1
rc=$?
sed -n 's/^\(FAIL\) /      | \1/p' "$tmp/run.log"
n=$(grep -c '^ok ' "$tmp/run.log")
if [ "$rc" -eq 0 ]; then
	ok "tests/dropin/run.sh, DROPIN_REPEAT=${DROPIN_REPEAT:-5}: $n checks"
else
	fail "tests/dropin/run.sh, DROPIN_REPEAT=${DROPIN_REPEAT:-5} (exit $rc)"
	tail -n 20 "$tmp/run.log" | sed 's/^/      | /'
fi

# 2. valgrind, replacing the drop-in's functions with memcheck's.
if command -v valgrind >/dev/null 2>&1; then
	for c in threads usable; do
		if env LD_PRELOAD="$lib" valgrind -q --error-exitcode=9 \
			--soname-synonyms='somalloc=libosalloc-malloc.so*' \
			"$test" "$c" >"$tmp/vg.out" 2>"$tmp/vg.err" &&
			[ ! -s "$tmp/vg.err" ]; then
			ok "valgrind --soname-synonyms=somalloc=libosalloc-malloc.so* dropin-test $c: no errors"
		else
			fail "valgrind dropin-test $c"
			sed -n '1,20s/^/      | /p' "$tmp/vg.err"
		fi
	done
else
	echo "skip  valgrind not installed"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
