#!/bin/sh
# run.sh - the drop-in malloc (libosalloc-malloc.so.0) in the hard places.
#
# Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
#
# An Automake test ("make check"), also run by hand from the top of a built
# tree: sh tests/dropin/run.sh.  Runs each case of tests/dropin/dropin-test
# under LD_PRELOAD of lib/.libs/libosalloc-malloc.so.0 (several
# OSALLOC_OPTIONS for some), the same program linked with -losalloc-malloc
# and with libosalloc-malloc.a, the misuse cases (SIGABRT and the one-line
# report naming free(), realloc(), ...), the statistics at exit (stats=1,
# stderr closed or not), and C++ new/delete when a C++ compiler is
# installed.
#
# DROPIN_REPEAT=N repeats the thread and fork cases N times (CI stress:
# tests/ci/dropin.sh).  Exit status: 0 all passed, 1 a failure, 77 skipped
# (no shared library, or a sanitizer build: the sanitizer runtime must come
# first and replaces malloc itself).

set -u

top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
repeat=${DROPIN_REPEAT:-1}

lib=$top_builddir/lib/.libs/libosalloc-malloc.so.0
test=$top_builddir/tests/dropin/dropin-test
linked=$top_builddir/tests/dropin/dropin-linked
static=$top_builddir/tests/dropin/dropin-static
module=$top_builddir/tests/dropin/.libs/dlmod.so

if [ ! -e "$lib" ]; then
	echo "SKIP: $lib not built (--disable-shared?)"
	exit 77
fi
if grep -q '^#define OSALLOC_SANITIZE 1' "$top_builddir/config.h" 2>/dev/null; then
	echo "SKIP: sanitizer build (the sanitizer runtime replaces malloc)"
	exit 77
fi
for f in "$test" "$linked" "$module"; do
	if [ ! -e "$f" ]; then
		echo "FAIL: $f missing (make check builds it)"
		exit 1
	fi
done
# Absolute paths: LD_PRELOAD and dlopen resolve them from any directory.
lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")
module=$(cd "$(dirname "$module")" && pwd)/$(basename "$module")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dropin.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

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
show() {
	sed -n '1,20s/^/      | /p' "$1"
}

# Time limit per run: a deadlock (fork, thread exit) must fail, not hang.
# (timeout runs outside the preload: only the program under test is on
# libosalloc-malloc and prints statistics.)
if command -v timeout >/dev/null 2>&1; then
	limit="timeout 300"
else
	limit=
fi

# preload OPTIONS CMD...: CMD under the drop-in, stdout and stderr to files.
preload() {
	_opts=$1
	shift
	$limit env LD_PRELOAD="$lib" OSALLOC_OPTIONS="$_opts" "$@" \
		>"$tmp/out" 2>"$tmp/err"
}

# expect_pass LABEL OPTIONS CMD...
expect_pass() {
	label=$1
	shift
	start=$(date +%s)
	if preload "$@" && [ ! -s "$tmp/err" ]; then
		ok "$label ($(($(date +%s) - start)) s)"
	else
		fail "$label (exit $?)"
		show "$tmp/err"
	fi
}

# expect_abort LABEL FUNCTION CAUSE CMD...: the command prints the pointer
# it misuses, then must die of SIGABRT after exactly one line on stderr:
# "osalloc: FUNCTION(): CAUSE: POINTER".
expect_abort() {
	label=$1 func=$2 cause=$3
	shift 3
	# The shell reports "Aborted" on its stderr, which dash redirects
	# along with the command's: the inner sh execs the command with its
	# stderr going to the file, the outer one reports to /dev/null.
	{ sh -c 'err=$1; shift; exec "$@" 2>"$err"' sh "$tmp/err" \
		$limit env LD_PRELOAD="${PRELOAD-$lib}" OSALLOC_OPTIONS= "$@" \
		>"$tmp/out"; } 2>/dev/null
	rc=$?
	ptr=$(head -n 1 "$tmp/out")
	want="osalloc: $func(): $cause: $ptr"
	if [ "$rc" -eq 134 ] && [ -n "$ptr" ] &&
		[ "$(cat "$tmp/err")" = "$want" ]; then
		ok "$label: SIGABRT, '$want'"
	else
		fail "$label: exit $rc, expected SIGABRT (134) and '$want'"
		show "$tmp/err"
	fi
}

# The allocations counted in stats=1 output, "  allocations  N".
stats_allocations() {
	sed -n 's/^  allocations  *\([0-9][0-9]*\)$/\1/p' "$1" | tail -n 1
}

echo "drop-in library: $lib"

# ---- exports: exactly the standard functions, unversioned -----------------
NM=${NM:-nm}
names='aligned_alloc calloc cfree free free_aligned_sized free_sized malloc
malloc_usable_size memalign posix_memalign pvalloc realloc reallocarray valloc'
printf '%s\n' $names | sort >"$tmp/names"
$NM -D --defined-only "$lib" | awk '$2 ~ /^[TtWiV]$/ { print $3 }' |
	sort >"$tmp/exported"
if cmp -s "$tmp/names" "$tmp/exported" &&
	! $NM -D --defined-only "$lib" | grep -q '@'; then
	ok "exports the $(wc -l <"$tmp/names") standard functions, unversioned, nothing else"
else
	fail "exports differ from the standard functions (< expected, > exported)"
	$NM -D --defined-only "$lib" | sed 's/^/      | /'
fi
symbols=$top_srcdir/debian/libosalloc-malloc0.symbols
if [ -f "$symbols" ]; then
	sed -n 's/^ \([^ @]*\)@Base .*/\1/p' "$symbols" | sort >"$tmp/debian"
	if cmp -s "$tmp/names" "$tmp/debian"; then
		ok "debian/libosalloc-malloc0.symbols lists the same names, @Base"
	else
		fail "debian/libosalloc-malloc0.symbols differs from the exports"
		diff "$tmp/names" "$tmp/debian" | sed 's/^/      | /'
	fi
fi

# ---- every case, default options ----------------------------------------
for c in interposed ctor semantics align usable threads; do
	expect_pass "$c" "" "$test" "$c"
done
expect_pass "dlopen, dlsym, dlerror, dlclose" "" "$test" dlopen "$module"
expect_pass "dynamic TLS in new threads" "" "$test" tls "$module"
i=1
while [ "$i" -le "$repeat" ]; do
	expect_pass "fork from a threaded program (round $i)" "" "$test" fork
	expect_pass "threads exit while others hold their blocks (round $i)" "" \
		"$test" threadexit
	i=$((i + 1))
done

# ---- usable size and semantics under the debugging options --------------
for opts in check=2 junk=1 zero=1 cache=0 mmap_threshold=4096 \
	"check=2,junk=1,mmap_threshold=65536"; do
	expect_pass "usable, OSALLOC_OPTIONS=$opts" "$opts" "$test" usable
	expect_pass "align, OSALLOC_OPTIONS=$opts" "$opts" "$test" align
done
expect_pass "semantics, OSALLOC_OPTIONS=check=2,junk=1" check=2,junk=1 \
	"$test" semantics

# ---- linked with -losalloc-malloc or libosalloc-malloc.a, no preload ------
for prog in "$linked" "$static"; do
	kind=linked
	[ "$prog" = "$static" ] && kind=static
	if [ ! -e "$prog" ]; then
		echo "skip  $kind: $prog not built"
		continue
	fi
	# Without a static library (--disable-static) libtool links the
	# shared one: nothing new to test.
	if [ "$kind" = static ] && ! $NM "$prog" 2>/dev/null | grep -q ' T malloc$'; then
		echo "skip  static: libosalloc-malloc.a not built (--disable-static)"
		continue
	fi
	for c in interposed ctor semantics align threads \
		"dlopen $module"; do
		start=$(date +%s)
		# shellcheck disable=SC2086 # $c is a case and its argument
		if $limit env -u LD_PRELOAD OSALLOC_OPTIONS= "$prog" $c \
			>"$tmp/out" 2>"$tmp/err" && [ ! -s "$tmp/err" ]; then
			ok "$kind: ${c%% *} ($(($(date +%s) - start)) s)"
		else
			fail "$kind: ${c%% *}"
			show "$tmp/err"
		fi
	done
	PRELOAD= expect_abort "$kind: double free" free "double free" \
		"$prog" misuse-double-free
done

# ---- misuse names the standard function ------------------------------------
expect_abort "double free" free "double free" "$test" misuse-double-free
expect_abort "double free of an mmap'd block" free "double free" \
	"$test" misuse-double-free-large
expect_abort "realloc of a freed block" realloc "double free" \
	"$test" misuse-realloc-freed
expect_abort "free of a static array" free "pointer not allocated by osalloc" \
	"$test" misuse-free-stack
expect_abort "free of an interior pointer" free \
	"pointer is not the start of a block" "$test" misuse-free-interior
expect_abort "malloc_usable_size of a freed block" malloc_usable_size \
	"double free" "$test" misuse-usable-freed
expect_abort "free_sized twice" free_sized "double free" \
	"$test" misuse-free-sized-twice

# ---- statistics at exit, options ---------------------------------------------
preload stats=1 "$test" ctor
n=$(stats_allocations "$tmp/err")
if [ -n "$n" ] && [ "$n" -ge 8 ] && grep -q '^osalloc statistics$' "$tmp/err"; then
	ok "stats=1 prints statistics at exit ($n allocations)"
else
	fail "stats=1: no statistics with at least 8 allocations on stderr"
	show "$tmp/err"
fi
preload stats=1 "$test" closed-stderr
n=$(stats_allocations "$tmp/err")
if [ -n "$n" ] && [ "$n" -ge 1 ]; then
	ok "stats=1 prints even when the program closed stderr ($n allocations)"
else
	fail "stats=1 after fclose(stderr): no statistics"
	show "$tmp/err"
fi
preload "no_such_option=1,zero=maybe" "$test" semantics
rc=$?
if [ "$rc" -eq 0 ] && [ "$(grep -c '^osalloc: OSALLOC_OPTIONS: ' "$tmp/err")" -ge 1 ] &&
	[ "$(grep -vc '^osalloc: OSALLOC_OPTIONS: ' "$tmp/err")" -eq 0 ]; then
	ok "bad OSALLOC_OPTIONS: warnings only ($(wc -l <"$tmp/err") lines), program runs"
else
	fail "bad OSALLOC_OPTIONS: exit $rc"
	show "$tmp/err"
fi

# ---- C++ new and delete --------------------------------------------------------
cxx=
for c in ${CXX:-} g++ clang++ c++; do
	if command -v "$c" >/dev/null 2>&1; then
		cxx=$c
		break
	fi
done
if [ -z "$cxx" ]; then
	echo "skip  C++ new/delete: no C++ compiler"
else
	cxxprog=$top_builddir/tests/dropin/cxx-test
	if $cxx -std=c++17 -O2 -pthread -o "$cxxprog" \
		"$top_srcdir/tests/dropin/cxx-test.cc" -ldl >"$tmp/cxx.log" 2>&1; then
		expect_pass "C++ new/delete, containers, aligned new, bad_alloc ($cxx)" \
			"" "$cxxprog"
		expect_abort "C++ double delete" free "double free" \
			"$cxxprog" double-delete
	else
		fail "C++: $cxx cannot compile tests/dropin/cxx-test.cc"
		show "$tmp/cxx.log"
	fi
fi

# ---- cfree of old binaries (glibc's compatibility symbol, x86-64) ------------
if [ "$(uname -m)" = x86_64 ] && command -v "${CC:-cc}" >/dev/null 2>&1; then
	cfreeprog=$top_builddir/tests/dropin/cfree-test
	if ${CC:-cc} -O1 -o "$cfreeprog" "$top_srcdir/tests/dropin/cfree-test.c" \
		>"$tmp/cfree.log" 2>&1; then
		expect_pass "cfree@GLIBC_2.2.5 of an old binary frees through the drop-in" \
			"" "$cfreeprog"
	else
		fail "cannot compile tests/dropin/cfree-test.c"
		show "$tmp/cfree.log"
	fi
else
	echo "skip  cfree@GLIBC_2.2.5: not x86-64 or no C compiler"
fi

echo "${0##*/}: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || exit 1
exit 0
