#!/bin/sh
# man-lint.sh - lint libosalloc's manual pages (an Automake test).
#
# Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
#
# Checks, for every page in man/:
#  - a real page: groff -t -man -ww -z, mandoc -Tlint -W warning, and the
#    command lintian runs (man --warnings ... -Z) print nothing; lexgrog
#    parses the NAME line (lintian bad-whatis-entry); .TH names the file;
#    every name in NAME has a file (page or .so stub) so "man NAME" works;
#    every C program in an .EX block compiles against include/osalloc.h;
#  - a stub: exactly ".so man3/<page>.3", <page> a real page whose NAME
#    lists the stub's name (lintian bad-so-link-within-manual-page);
# and that every public function of include/osalloc.h has a page, and that
# man/Makefile.inc lists exactly the pages in man/.
#
# Exit status: 0 all passed, 1 something failed.  A missing tool (groff,
# mandoc, man, lexgrog, cc) skips its check with a note, unless
# MAN_LINT_STRICT=1 (for CI), which turns a missing tool into a failure and
# compiles the examples with -Werror.

set -u

if [ -z "${srcdir-}" ]; then
	srcdir=${top_srcdir-}
fi
if [ -z "$srcdir" ]; then
	srcdir=$(dirname "$0")/..
fi
mandir=$srcdir/man
header=$srcdir/include/osalloc.h
fragment=$mandir/Makefile.inc
strict=${MAN_LINT_STRICT-0}
[ "$strict" = 1 ] || strict=0

fails=0
checks=0
skips=0

ok() {
	checks=$((checks + 1))
	printf 'ok    %s\n' "$*"
}
fail() {
	checks=$((checks + 1))
	fails=$((fails + 1))
	printf 'FAIL  %s\n' "$*"
}
# Prints the captured output of a failed check, indented.
show() {
	sed 's/^/      | /' "$1"
}
skip() {
	skips=$((skips + 1))
	if [ "$strict" = 1 ]; then
		fail "$* (MAN_LINT_STRICT=1)"
	else
		printf 'skip  %s\n' "$*"
	fi
}
have() {
	command -v "$1" >/dev/null 2>&1
}

if [ ! -d "$mandir" ] || [ ! -f "$header" ]; then
	printf 'FAIL  cannot find man/ and include/osalloc.h under srcdir=%s\n' \
		"$srcdir"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/man-lint.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# The names listed in a real page's NAME section, one per line.
page_names() {
	sed -n '/^\.SH NAME/{n;p;q;}' "$1" |
		sed 's/ *\\-.*//; s/\\//g; s/,/ /g' | tr -s ' ' '\n' | sed '/^$/d'
}

# A stub is a file whose first line is a .so request.
is_stub() {
	head -n 1 "$1" | grep -q '^\.so'
}

pages=
stubs=
for f in "$mandir"/*.[1-9]; do
	[ -f "$f" ] || continue
	if is_stub "$f"; then
		stubs="$stubs $f"
	else
		pages="$pages $f"
	fi
done
if [ -z "$pages" ]; then
	fail "no manual pages found in $mandir"
	exit 1
fi

for tool in groff mandoc man lexgrog; do
	have "$tool" || skip "$tool not installed: its checks are not run"
done
cc=${CC:-cc}
have "${cc%% *}" || skip "$cc not found: the examples are not compiled"

# ---- real pages ------------------------------------------------------------

for f in $pages; do
	base=${f##*/}
	name=${base%.*}
	sec=${base##*.}

	# .TH must name this very page, in upper or lower case.
	th=$(sed -n 's/^\.TH  *\([^ ]*\)  *\([^ ]*\) .*/\1 \2/p' "$f" | head -n 1)
	if [ "$th" = "$name $sec" ]; then
		ok "$base: .TH $th"
	else
		fail "$base: .TH says '$th', expected '$name $sec'"
	fi

	if have groff; then
		if groff -t -man -ww -z "$f" >"$tmp/out" 2>&1 && [ ! -s "$tmp/out" ]; then
			ok "$base: groff -t -man -ww -z"
		else
			fail "$base: groff -t -man -ww -z"
			show "$tmp/out"
		fi
	fi

	if have mandoc; then
		if mandoc -Tlint -W warning "$f" >"$tmp/out" 2>&1 && [ ! -s "$tmp/out" ]; then
			ok "$base: mandoc -Tlint -W warning"
		else
			fail "$base: mandoc -Tlint -W warning"
			show "$tmp/out"
		fi
	fi

	if have man; then
		# Lintian's own check (Lintian/Check/Documentation/Manual.pm):
		# any output on stderr is a groff-message.
		if LC_ALL=C.UTF-8 MANROFFSEQ='' man --warnings -E UTF-8 -l -Tutf8 -Z \
			"$f" >/dev/null 2>"$tmp/out" && [ ! -s "$tmp/out" ]; then
			ok "$base: man --warnings -E UTF-8 -l -Tutf8 -Z"
		else
			fail "$base: man --warnings -E UTF-8 -l -Tutf8 -Z"
			show "$tmp/out"
		fi
	fi

	if have lexgrog; then
		# Every line must read: <file>: "<name> - <description>"
		if lexgrog "$f" >"$tmp/out" 2>&1 &&
			[ -s "$tmp/out" ] &&
			! grep -v ': "[^ ][^ ]* - [^ ].*"$' "$tmp/out" >/dev/null; then
			ok "$base: lexgrog parses NAME ($(wc -l <"$tmp/out") whatis entries)"
		else
			fail "$base: lexgrog cannot parse NAME"
			show "$tmp/out"
		fi
	fi

	# Every name in NAME has a file in this section, so "man NAME" works
	# after installation.
	missing=
	for n in $(page_names "$f"); do
		[ -f "$mandir/$n.$sec" ] || missing="$missing $n.$sec"
	done
	if [ -z "$missing" ]; then
		ok "$base: every name in NAME has a page or stub"
	else
		fail "$base: no page or stub for:$missing"
	fi

	# Each C program in an .EX/.EE block compiles.
	if have "${cc%% *}"; then
		awk -v dir="$tmp" '
			/^\.EX/ { inex = 1; buf = ""; next }
			/^\.EE/ {
				if (buf ~ /#include <osalloc.h>/ && buf ~ /main\(/) {
					n++
					file = dir "/example" n ".c"
					printf "%s", buf > file
					close(file)
				}
				inex = 0
				next
			}
			inex && /^\.\\"/ { next }
			inex { buf = buf $0 "\n" }
			END { print n + 0 > (dir "/count") }
		' "$f"
		count=$(cat "$tmp/count")
		i=1
		while [ "$i" -le "$count" ]; do
			src=$tmp/example$i.c
			# Undo the roff escapes used in examples.
			sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e 's/\\(aq/'"'"'/g' \
				-e 's/\\(dq/"/g' -e 's/\\&//g' -e 's/\\e/\\/g' \
				"$src" >"$src.tmp" && mv "$src.tmp" "$src"
			werror=
			[ "$strict" = 1 ] && werror=-Werror
			if $cc -std=gnu11 -Wall -Wextra $werror -fsyntax-only \
				-I"$srcdir/include" "$src" >"$tmp/out" 2>&1 &&
				[ ! -s "$tmp/out" ]; then
				ok "$base: example program $i of $count compiles"
			elif [ "$strict" = 0 ] && $cc -std=gnu11 -fsyntax-only \
				-I"$srcdir/include" "$src" >/dev/null 2>&1; then
				printf 'note  %s: example program %s has warnings:\n' \
					"$base" "$i"
				show "$tmp/out"
				ok "$base: example program $i of $count compiles"
			else
				fail "$base: example program $i of $count does not compile"
				show "$tmp/out"
			fi
			i=$((i + 1))
		done
	fi
done

# ---- .so stubs -------------------------------------------------------------

for f in $stubs; do
	base=${f##*/}
	name=${base%.*}
	sec=${base##*.}
	lines=$(wc -l <"$f")
	first=$(head -n 1 "$f")
	target=$(printf '%s\n' "$first" |
		sed -n 's|^\.so man'"$sec"'/\([A-Za-z0-9_][A-Za-z0-9_.-]*\.'"$sec"'\)$|\1|p')
	if [ "$lines" -ne 1 ] || [ -z "$target" ]; then
		fail "$base: a stub must be exactly one line '.so man$sec/<page>.$sec', found '$first' ($lines lines)"
		continue
	fi
	if [ ! -f "$mandir/$target" ] || is_stub "$mandir/$target"; then
		fail "$base: .so target man$sec/$target is not a real page in man/"
		continue
	fi
	if page_names "$mandir/$target" | grep -qx "$name"; then
		ok "$base: '$first', and $target lists $name in NAME"
	else
		fail "$base: $target does not list $name in its NAME section"
	fi
done

# ---- every public function has a page --------------------------------------

funcs=$(sed -n 's/^OSALLOC_API[^(]*[ *]\([A-Za-z_][A-Za-z0-9_]*\)(.*/\1/p' "$header")
if [ -z "$funcs" ]; then
	fail "found no OSALLOC_API function declarations in include/osalloc.h"
fi
nfuncs=0
for fn in $funcs; do
	nfuncs=$((nfuncs + 1))
	f=$mandir/$fn.3
	if [ ! -f "$f" ]; then
		fail "public function $fn has no man/$fn.3"
		continue
	fi
	if is_stub "$f"; then
		target=$(sed -n 's|^\.so man3/\([^/]*\)$|\1|p' "$f" | head -n 1)
		if [ -z "$target" ] || [ ! -f "$mandir/$target" ]; then
			fail "public function $fn: man/$fn.3 is a broken stub"
			continue
		fi
		f=$mandir/$target
	fi
	if page_names "$f" | grep -qx "$fn"; then
		ok "public function $fn is documented in ${f##*/}"
	else
		fail "public function $fn is not in the NAME section of ${f##*/}"
	fi
done

# ---- man/Makefile.inc lists exactly the pages --------------------------------

if [ -f "$fragment" ]; then
	grep -o 'man/[A-Za-z0-9_.-]*\.[1-9]' "$fragment" | sort -u >"$tmp/listed"
	for f in "$mandir"/*.[1-9]; do
		[ -f "$f" ] && printf 'man/%s\n' "${f##*/}"
	done | sort -u >"$tmp/present"
	if cmp -s "$tmp/listed" "$tmp/present"; then
		ok "man/Makefile.inc lists all $(wc -l <"$tmp/present") files in man/"
	else
		fail "man/Makefile.inc and man/ differ (< listed only, > present only)"
		diff "$tmp/listed" "$tmp/present" | grep '^[<>]' | sed 's/^/      | /'
	fi
else
	fail "man/Makefile.inc is missing"
fi

set -- $pages
np=$#
set -- $stubs
printf '%s: %d checks on %d pages, %d stubs, %d public functions; %d failed, %d tools skipped\n' \
	"${0##*/}" "$checks" "$np" "$#" "$nfuncs" "$fails" "$skips"
[ "$fails" -eq 0 ] || exit 1
exit 0
