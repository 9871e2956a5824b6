#!/bin/bash
# dropin-programs.sh - real programs on the drop-in malloc (issue 6).
#
# Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).
#
# Runs python3, perl, sort, gcc, sqlite3, git and xz -T2 twice on generated
# input: once as they are, once under
#     LD_PRELOAD=libosalloc-malloc.so.0 OSALLOC_OPTIONS=stats=1
# and checks, for each program, that
#   - the outputs (stdout and the files it writes) are byte-identical,
#   - the exit statuses agree, and stderr agrees once the statistics are
#     taken out of it,
#   - the statistics printed at exit count at least a minimum number of
#     allocations (summed over every process of the run: gcc and git start
#     others), so the allocations really went through libosalloc.
# Prints one line per program and ends with "N passed, M failed"; exits 1
# if anything failed.
#
# Usage: tests/ci/dropin-programs.sh [LIBRARY]
#   LIBRARY defaults to $DROPIN_LIB, else lib/.libs/libosalloc-malloc.so.0
#   of the build tree (top_builddir, default .), else the installed one.
#   DROPIN_PROGRAMS="python3 git ..." runs only these.
#   DROPIN_SCALE=N multiplies the input sizes (default 1: about a minute on
#   2 cores for the whole set, both runs included).
# Missing programs are installed with apt-get when running as root
# (python3, perl, coreutils, gcc, sqlite3, git, xz-utils are Debian
# packages); otherwise that program fails.
set -u
export LC_ALL=C
export DEBIAN_FRONTEND=noninteractive

scale=${DROPIN_SCALE:-1}
programs=${DROPIN_PROGRAMS:-"python3 perl sort gcc sqlite3 git xz"}
limit=600 # seconds per command

# ---- the library ---------------------------------------------------------
lib=${1:-${DROPIN_LIB:-}}
if [ -z "$lib" ]; then
	b=${top_builddir:-.}
	if [ -e "$b/lib/.libs/libosalloc-malloc.so.0" ]; then
		lib=$b/lib/.libs/libosalloc-malloc.so.0
	else
		multiarch=$(gcc -print-multiarch 2>/dev/null || true)
		for d in "/usr/lib/$multiarch" /usr/local/lib /usr/lib; do
			if [ -e "$d/libosalloc-malloc.so.0" ]; then
				lib=$d/libosalloc-malloc.so.0
				break
			fi
		done
	fi
fi
if [ -z "$lib" ] || [ ! -e "$lib" ]; then
	echo "dropin-programs: libosalloc-malloc.so.0 not found (build it, or give its path)"
	echo "0 passed, 1 failed"
	exit 1
fi
lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")
echo "drop-in library: $lib"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dropin-programs.XXXXXX") || exit 1
if [ -n "${KEEP_WORK:-}" ]; then
	echo "work directory (kept): $tmp"
else
	trap 'rm -rf "$tmp"' EXIT
fi
trap 'exit 1' HUP INT TERM

passed=0
failed=0
pass() {
	passed=$((passed + 1))
	printf 'ok    %-8s %s\n' "$1" "$2"
}
failure() {
	failed=$((failed + 1))
	printf 'FAIL  %-8s %s\n' "$1" "$2"
}

# ---- tools -----------------------------------------------------------------
apt_updated=no
# need COMMAND PACKAGE: make COMMAND available, installing PACKAGE if root.
need() {
	command -v "$1" >/dev/null 2>&1 && return 0
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		return 1
	fi
	if [ "$apt_updated" = no ]; then
		apt-get update >"$tmp/apt-update.log" 2>&1 || true
		apt_updated=yes
	fi
	apt-get install -y --no-install-recommends "$2" >"$tmp/apt-$2.log" 2>&1
	command -v "$1" >/dev/null 2>&1
}

# ---- running a program twice -------------------------------------------------
#
# Each program is a function prog_NAME that does its work in the current
# directory, running every command of interest through `x`, and leaves what
# is to be compared under out/.  It runs in $tmp/NAME/base (plain) and in
# $tmp/NAME/preload (drop-in, stats=1); x appends stderr to $tmp/NAME/err.MODE
# and records a failing exit status in $tmp/NAME/status.MODE.

mode=base
errfile=/dev/null
statusfile=/dev/null
x() {
	local rc=0
	if [ "$mode" = preload ]; then
		timeout "$limit" env LD_PRELOAD="$lib" OSALLOC_OPTIONS=stats=1 "$@" \
			2>>"$errfile" || rc=$?
	else
		timeout "$limit" env -u LD_PRELOAD -u OSALLOC_OPTIONS "$@" \
			2>>"$errfile" || rc=$?
	fi
	[ "$rc" = 0 ] || echo "$rc: $*" >>"$statusfile"
	return "$rc"
}

# The statistics of stats=1: lines of os_malloc_stats(3).
is_stats_line='^(osalloc statistics|  (heap bytes|heap free bytes|thread-cached bytes|in use bytes|mmap blocks|allocations|frees) +[0-9].*)$'

# run_program NAME MIN_ALLOCATIONS
run_program() {
	local name=$1 min=$2 top=$tmp/$1 t0 t1 t2 allocs nstats why=
	mkdir -p "$top/base/out" "$top/preload/out"
	: >"$top/err.base" >"$top/err.preload"
	: >"$top/status.base" >"$top/status.preload"
	t0=$(date +%s.%N)
	(cd "$top/base" && mode=base errfile=$top/err.base \
		statusfile=$top/status.base && "prog_$name") >"$top/log.base" 2>&1
	t1=$(date +%s.%N)
	(cd "$top/preload" && mode=preload errfile=$top/err.preload \
		statusfile=$top/status.preload && "prog_$name") \
		>"$top/log.preload" 2>&1
	t2=$(date +%s.%N)

	if [ -s "$top/status.base" ]; then
		why="fails without the drop-in: $(head -n 1 "$top/status.base")"
	elif ! cmp -s "$top/status.base" "$top/status.preload"; then
		why="exit status differs: $(head -n 1 "$top/status.preload")"
	elif ! diff -r "$top/base/out" "$top/preload/out" >"$top/diff" 2>&1; then
		why="output differs: $(head -n 1 "$top/diff")"
	fi
	grep -Ev "$is_stats_line" "$top/err.preload" >"$top/err.preload.filtered"
	if [ -z "$why" ] && ! cmp -s "$top/err.base" "$top/err.preload.filtered"; then
		why="stderr differs (statistics removed): $(diff "$top/err.base" \
			"$top/err.preload.filtered" | grep '^[<>]' | head -n 1)"
	fi
	nstats=$(grep -c '^osalloc statistics$' "$top/err.preload")
	allocs=$(sed -n 's/^  allocations  *\([0-9][0-9]*\)$/\1/p' "$top/err.preload" |
		awk '{ s += $1 } END { print s + 0 }')
	if [ -z "$why" ] && [ "$allocs" -lt "$min" ]; then
		why="only $allocs allocations counted by libosalloc (want >= $min; $nstats statistics blocks)"
	fi
	local times
	times=$(awk -v a="$t0" -v b="$t1" -v c="$t2" \
		'BEGIN { printf "%.1f s plain, %.1f s drop-in", b - a, c - b }')
	if [ -z "$why" ]; then
		pass "$name" "identical output; $allocs allocations via libosalloc in $nstats process(es); $times"
	else
		failure "$name" "$why ($times)"
		for f in log.preload err.preload; do
			[ -s "$top/$f" ] && sed -n '1,15s/^/      | /p' "$top/$f"
		done
	fi
}

# ---- the programs ------------------------------------------------------------

prog_python3() {
	cat >work.py <<'EOF'
import hashlib, json, re, collections

class Node:
    __slots__ = ("key", "kids", "data")
    def __init__(self, key):
        self.key = key
        self.kids = []
        self.data = {"k": key, "s": str(key) * (key % 7)}

def build(n):
    nodes = [Node(i) for i in range(n)]
    for i, node in enumerate(nodes[1:], 1):
        nodes[(i * 7919) % i].kids.append(node)
    return nodes

h = hashlib.sha256()
for rnd in range(SCALE * 3):
    nodes = build(60000)
    words = [("w%x" % ((i * 2654435761) % 1000003)) * (1 + i % 5) for i in range(80000)]
    counts = collections.Counter(w[:4] for w in words)
    d = {w: len(w) for w in words}
    doc = json.dumps([n.data for n in nodes[:20000]], sort_keys=True)
    back = json.loads(doc)
    pat = re.compile(r"w([0-9a-f]{3})")
    hits = sum(1 for w in words if pat.match(w))
    text = "".join(sorted(words)[::97])
    h.update(doc.encode())
    h.update(text.encode())
    print(rnd, len(nodes), sum(len(n.kids) for n in nodes), len(d),
          counts.most_common(3), len(back), hits, len(text))
    del nodes, words, d, back
print(h.hexdigest())
EOF
	sed -i "s/SCALE/$scale/" work.py
	x "$python" work.py >out/stdout
}

prog_perl() {
	cat >work.pl <<'EOF'
use strict; use warnings;
my %h; my @a; my $s = "";
for my $r (1 .. 3 * SCALE) {
    for my $i (1 .. 150000) {
        my $k = sprintf("k%x", ($i * 2654435761) % 1000003);
        $h{$k} .= chr(65 + $i % 26);
        push @a, [$i, $k, length $h{$k}] if $i % 3 == 0;
    }
    my @sorted = sort { $a->[1] cmp $b->[1] or $a->[0] <=> $b->[0] } @a;
    my $n = 0; $n += $_->[2] for @sorted;
    my @words = map { join ",", @$_ } @sorted[0 .. 999];
    $s .= join("|", @words[0 .. 9]);
    (my $t = join(" ", @words)) =~ s/k([0-9a-f]+)/K$1/g;
    print "$r ", scalar(keys %h), " ", scalar(@a), " $n ", length($t), "\n";
    @a = ();
}
my $sum = 0; $sum += length($h{$_}) for sort keys %h;
print length($s), " $sum\n";
EOF
	sed -i "s/SCALE/$scale/" work.pl
	x perl work.pl >out/stdout
}

prog_sort() {
	# About 25 MB per scale unit, generated outside the measurement.
	awk -v n=$((600000 * scale)) 'BEGIN {
		srand(42)
		for (i = 0; i < n; i++)
			printf "%08d %s %d\n", int(rand() * 1e8),
				substr("abcdefghijklmnopqrstuvwxyz", 1 + int(rand() * 20)),
				i
	}' >input.txt
	x sort -S 64M --parallel=2 input.txt >out/sorted
	x sort -k2,2 -k1,1n -S 8M -T . input.txt >out/sorted-keys
	x sort -u -k2,2 input.txt >out/unique
}

prog_gcc() {
	# A C file with many functions: work for cc1's parser and optimiser.
	awk -v n=$((400 * scale)) 'BEGIN {
		print "#include <stdio.h>"
		print "#include <string.h>"
		for (i = 0; i < n; i++) {
			printf "struct s%d { int a[%d]; char name[16]; double d; };\n", i, 1 + i % 7
			printf "static int f%d(int x, const char *s) {\n", i
			printf "  struct s%d v; memset(&v, 0, sizeof v);\n", i
			printf "  for (int k = 0; k < %d; k++) v.a[k %% %d] += x * k + (int)strlen(s);\n", 10 + i % 13, 1 + i % 7
			printf "  switch (x %% 5) { case 0: return v.a[0] + %d; case 1: return v.a[0] * 3;\n", i
			printf "  case 2: v.d = x / 3.0; return (int)v.d + %d; default: break; }\n", i % 11
			printf "  snprintf(v.name, sizeof v.name, \"%%d-%%s\", x, s);\n"
			printf "  return (int)strlen(v.name) + v.a[0];\n}\n"
		}
		print "int main(void) {"
		print "  long t = 0;"
		for (i = 0; i < n; i++)
			printf "  t += f%d(%d, \"x%d\");\n", i, i, i
		print "  printf(\"%ld\\n\", t);"
		print "  return 0;"
		print "}"
	}' >prog.c
	x gcc -O2 -Wall -c prog.c -o out/prog.o
	x gcc -O2 prog.c -o prog
	x ./prog >out/run.stdout
}

prog_sqlite3() {
	cat >work.sql <<EOF
CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, price REAL, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $((150000 * scale)))
INSERT INTO item SELECT i, 'item-' || hex(i * 2654435761 % 1000003), i % 97,
       (i * 7919 % 10007) / 100.0, printf('%.*c', 1 + i % 40, 'x') FROM n;
CREATE INDEX item_name ON item(name);
CREATE INDEX item_grp_price ON item(grp, price);
CREATE TABLE grp AS SELECT grp, count(*) AS n, sum(price) AS total, max(name) AS top
  FROM item GROUP BY grp;
UPDATE item SET note = upper(note) WHERE id % 3 = 0;
DELETE FROM item WHERE id % 11 = 0;
SELECT count(*), sum(price), min(name), max(name) FROM item;
SELECT grp, n, printf('%.2f', total), top FROM grp ORDER BY total DESC LIMIT 10;
SELECT name, price FROM item WHERE name LIKE 'item-1A%' ORDER BY name LIMIT 20;
SELECT a.grp, count(*) FROM item a JOIN grp g ON a.grp = g.grp
  WHERE a.price > g.total / g.n GROUP BY a.grp ORDER BY a.grp LIMIT 20;
SELECT group_concat(name, ',') FROM (SELECT name FROM item ORDER BY price DESC, id LIMIT 200);
SELECT json_group_array(json_object('id', id, 'n', name)) FROM (SELECT id, name FROM item WHERE grp = 5 LIMIT 50);
PRAGMA integrity_check;
EOF
	x sqlite3 db.sqlite <work.sql >out/stdout
	x sqlite3 db.sqlite .dump >out/dump.sql
}

prog_git() {
	export GIT_CONFIG_NOSYSTEM=1 HOME=$PWD/home
	export GIT_AUTHOR_NAME=CI GIT_AUTHOR_EMAIL=ci@example.org
	export GIT_COMMITTER_NAME=CI GIT_COMMITTER_EMAIL=ci@example.org
	mkdir -p home
	x git init -q -b main repo
	cd repo || return 1
	local c f
	for c in 1 2 3 4 5; do
		export GIT_AUTHOR_DATE="2026-01-0${c}T12:00:00Z"
		export GIT_COMMITTER_DATE=$GIT_AUTHOR_DATE
		# 300 files per scale unit, a third of them changed per commit.
		awk -v n=$((300 * scale)) -v c="$c" 'BEGIN {
			for (i = 0; i < n; i++) {
				if (c > 1 && i % 3 != c % 3) continue
				f = sprintf("src/d%02d/file%04d.txt", i % 20, i)
				system("mkdir -p src/d" sprintf("%02d", i % 20))
				for (l = 0; l < 40 + i % 60; l++)
					printf "line %d of file %d, commit %d%s\n", l, i,
						(l % 7 == 0 ? c : 1), (l % 5 ? "" : " extra") > f
				close(f)
			}
		}'
		x git add -A
		x git commit -q -m "commit $c"
	done
	x git log --stat --format='%H %an %ad %s' >../out/log
	x git diff --stat HEAD~3 HEAD >../out/diffstat
	x git diff HEAD~1 HEAD >../out/diff
	x git ls-tree -r HEAD >../out/tree
	x git gc -q
	x git fsck --no-progress >../out/fsck
	x git rev-list --objects --all >../out/objects
	x git grep -c extra HEAD~2 >../out/grep
}

prog_xz() {
	# About 10 MB per scale unit of compressible text, in blocks of 1 MiB
	# so that both threads work.
	awk -v n=$((400000 * scale)) 'BEGIN {
		srand(7)
		for (i = 0; i < n; i++)
			printf "%d,%s,%d,%.3f\n", i, (i % 3 ? "alpha" : "beta"),
				int(rand() * 1000), rand()
	}' >data.csv
	x xz -T2 -3 --block-size=1MiB -k -c data.csv >out/data.csv.xz
	x xz -T2 -d -c out/data.csv.xz >decoded.csv
	cmp data.csv decoded.csv >out/roundtrip 2>&1 || echo "round trip differs" >>out/roundtrip
	x xz -T2 -l out/data.csv.xz >out/list
}

# ---- driver ----------------------------------------------------------------------

# Program, command it needs, Debian package, minimum allocations.
# Debian's python3, not a wrapper (pyenv shims are shell scripts) that
# would run on the drop-in too.
python=python3
table='python3 python3 python3 100000
perl perl perl 10000
sort sort coreutils 50
gcc gcc gcc 10000
sqlite3 sqlite3 sqlite3 10000
git git git 1000
xz xz xz-utils 50'

for name in $programs; do
	line=$(printf '%s\n' "$table" | awk -v n="$name" '$1 == n')
	if [ -z "$line" ]; then
		failure "$name" "unknown program (known: python3 perl sort gcc sqlite3 git xz)"
		continue
	fi
	set -- $line
	if ! need "$2" "$3"; then
		failure "$name" "$2 not installed and cannot be installed (package $3)"
		continue
	fi
	if [ "$name" = python3 ] && [ -x /usr/bin/python3 ]; then
		python=/usr/bin/python3
	fi
	run_program "$name" "$4"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
