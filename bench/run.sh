#!/bin/sh
# run.sh - run the libosalloc benchmark suite and print a Markdown report.
#
# Usage: bench/run.sh [BINDIR]
#   BINDIR holds the built workloads (<name>-os, <name>-std); default: the
#   directory of this script.  `make bench` builds them and calls this.
#
# Environment:
#   BENCH_RUNS=5          runs of every workload x allocator (median taken)
#   BENCH_SCALE=1         work multiplier passed to every workload
#   BENCH_ALLOCATORS=...  only these (e.g. "osalloc glibc"); default: all found
#   BENCH_CASES=...       only these workloads (e.g. "churn frag")
#   BENCH_CALLGRIND=1     0 skips the instruction count of the fast path
#   BENCH_REAL=1          0 skips the real programs (gcc, sqlite3)
#   BENCH_OUT=DIR         where results.md and results.raw go (default BINDIR)
#   BENCH_TOP_BUILDDIR    build tree holding lib/.libs (default BINDIR/..)
#   BENCH_DROPIN_LIB=...  the drop-in libosalloc-malloc.so to preload
#                         (default: BENCH_TOP_BUILDDIR/lib/.libs/, if built)
#   BENCH_TIMEOUT=120     seconds before a single run counts as hung
#   BENCH_STRICT=0        1: exit 1 when a target of issue 4 is missed
# Exit status: 0, or 1 when a run crashed, hung or failed its content check.

set -u
LC_ALL=C
export LC_ALL

here=$(cd "$(dirname "$0")" && pwd)
bindir=$(cd "${1:-${BENCH_BINDIR:-$here}}" && pwd) || exit 2
topbuild=${BENCH_TOP_BUILDDIR:-$bindir/..}
runs=${BENCH_RUNS:-5}
BENCH_SCALE=${BENCH_SCALE:-1}
export BENCH_SCALE
out=${BENCH_OUT:-$bindir}
timeout_s=${BENCH_TIMEOUT:-120}
mkdir -p "$out" || exit 2
raw=$out/results.raw
report=$out/results.md
tmp=$(mktemp -d "${TMPDIR:-/tmp}/osalloc-bench.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
: >"$raw"
: >"$tmp/notes"
: >"$tmp/failures"

note() {
	echo "$*" >>"$tmp/notes"
	echo "bench: $*" >&2
}

# --- workloads: label, program, arguments ---------------------------------
all_cases='churn:churn:
mixed:mixed:
realloc:realloc:
calloc:calloc:
prodcons-t1:prodcons:-t 1
prodcons-t2:prodcons:-t 2
larson-t1:larson:-t 1
larson-t2:larson:-t 2
frag:frag:
scaling-1e3:scaling:-n 1000
scaling-1e5:scaling:-n 100000
scaling-1e6:scaling:-n 1000000
prog-gcc:@gcc:
prog-sqlite3:@sqlite3:'

cases=
echo "$all_cases" >"$tmp/cases.all"
while IFS=: read -r label prog args; do
	if [ -n "${BENCH_CASES:-}" ]; then
		case " $BENCH_CASES " in *" $label "* | *" $prog "*) ;; *) continue ;; esac
	fi
	case $prog in
	@*)
		# real programs (issue 6), run by bench/timeit under LD_PRELOAD
		[ "${BENCH_REAL:-1}" != 0 ] || continue
		if ! command -v "${prog#@}" >/dev/null 2>&1; then
			note "$label skipped: ${prog#@} is not installed"
			continue
		fi
		;;
	esac
	echo "$label:$prog:$args" >>"$tmp/cases"
	cases="$cases $label"
done <"$tmp/cases.all"
[ -s "$tmp/cases" ] || { echo "bench: no workload selected" >&2; exit 2; }

# --- allocators: name, variant, library to preload ------------------------
multiarch=$( (${CC:-cc} -print-multiarch) 2>/dev/null)
[ -n "$multiarch" ] ||
	multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
libdirs="/usr/lib/$multiarch /lib/$multiarch /usr/lib64 /usr/lib /usr/local/lib"

findlib() {
	for n in "$@"; do
		for d in $libdirs; do
			if [ -f "$d/$n" ]; then
				echo "$d/$n"
				return 0
			fi
		done
	done
	return 1
}

wanted() {
	[ -z "${BENCH_ALLOCATORS:-}" ] && return 0
	case " $BENCH_ALLOCATORS " in *" $1 "*) return 0 ;; esac
	return 1
}

# A preloaded library must load cleanly (ld.so only warns when it cannot).
preload_ok() {
	env LD_PRELOAD="$1" "$bindir/fastpath-std" 10 >"$tmp/pl.out" 2>"$tmp/pl.err" &&
		! [ -s "$tmp/pl.err" ]
}

: >"$tmp/allocs"
add_alloc() {
	echo "$1:$2:$3" >>"$tmp/allocs"
	allocs="$allocs $1"
	if [ -n "$3" ]; then
		pkg=$(dpkg -S "$(readlink -f "$3")" 2>/dev/null | sed -n '1s/:.*//p')
		ver=
		[ -n "$pkg" ] && ver=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)
		echo "- $1: LD_PRELOAD=$3${pkg:+ ($pkg $ver)}" >>"$tmp/allocinfo"
	fi
}

allocs=
: >"$tmp/allocinfo"
if ! [ -x "$bindir/fastpath-std" ]; then
	echo "bench: no built workloads in $bindir (run 'make bench')" >&2
	exit 2
fi
if wanted osalloc; then
	if [ -x "$bindir/fastpath-os" ]; then
		add_alloc osalloc os ""
		echo "- osalloc: the os_* functions (workloads built with -DBENCH_OSALLOC, linked with libosalloc)" >>"$tmp/allocinfo"
	else
		note "osalloc skipped: $bindir/fastpath-os not built"
	fi
fi
if wanted glibc; then
	add_alloc glibc std ""
	echo "- glibc: the C library's malloc ($(ldd --version 2>/dev/null | sed -n '1s/.* //p'))" >>"$tmp/allocinfo"
fi
for peer in "jemalloc libjemalloc.so.2" \
	"tcmalloc libtcmalloc_minimal.so.4 libtcmalloc.so.4" \
	"mimalloc libmimalloc.so.2"; do
	set -- $peer
	name=$1
	shift
	wanted "$name" || continue
	if lib=$(findlib "$@"); then
		if preload_ok "$lib"; then
			add_alloc "$name" std "$lib"
		else
			note "$name skipped: LD_PRELOAD=$lib fails: $(head -n 1 "$tmp/pl.err")"
		fi
	else
		note "$name skipped: none of $* in $libdirs (install its Debian package)"
	fi
done
# The drop-in library of issue 6 (malloc & co. on top of libosalloc).
dropin=${BENCH_DROPIN_LIB:-}
if [ -z "$dropin" ]; then
	for f in "$topbuild"/lib/.libs/libosalloc-malloc.so \
		"$topbuild"/lib/.libs/libosalloc-malloc.so.*; do
		[ -f "$f" ] && { dropin=$f; break; }
	done
fi
if [ -n "$dropin" ] && wanted osalloc-dropin; then
	if preload_ok "$dropin"; then
		add_alloc osalloc-dropin std "$(readlink -f "$dropin")"
	else
		note "osalloc-dropin skipped: LD_PRELOAD=$dropin fails: $(head -n 1 "$tmp/pl.err")"
	fi
fi
nalloc=$(wc -l <"$tmp/allocs")
[ "$nalloc" -gt 0 ] || { echo "bench: no allocator selected" >&2; exit 2; }

if command -v timeout >/dev/null 2>&1; then
	tmo="timeout $timeout_s"
else
	tmo=
fi

# --- real programs: inputs, and how each is run --------------------------
realc=$out/real-gcc.c
awk -v n=80 -f "$here/real-gcc.awk" >"$realc"
run_real() { # name label preload; sets repro, output in $tmp/prog.out
	rlabel=$2
	rpre=$3
	case $1 in
	gcc) set -- gcc -O2 -S -o - "$realc" ;;
	sqlite3) set -- sqlite3 -init /dev/null :memory: ".read $here/real-sqlite.sql" ;;
	esac
	repro="./timeit -w $rlabel ${rpre:+-p $rpre }-- $*"
	$tmo "$bindir/timeit" -w "$rlabel" ${rpre:+-p "$rpre"} -o "$tmp/prog.out" \
		-- "$@" >"$tmp/out" 2>"$tmp/err"
}

# --- one run -------------------------------------------------------------
nfail=0
run_one() { # round alloc variant preload label prog args
	why=
	case $6 in
	@*)
		# a real program runs on the standard malloc only
		[ "$3" = std ] || return 0
		run_real "${6#@}" "$5" "$4"
		st=$?
		# every allocator must give the output of the first one
		if [ "$st" -eq 0 ]; then
			if ! [ -f "$tmp/ref.$5" ]; then
				cp "$tmp/prog.out" "$tmp/ref.$5"
				echo "$2" >"$tmp/ref.$5.by"
			elif ! cmp -s "$tmp/prog.out" "$tmp/ref.$5"; then
				st=1
				why="output differs from that with $(cat "$tmp/ref.$5.by")"
			fi
		fi
		;;
	*)
		exe=$bindir/$6-$3
		repro="${4:+LD_PRELOAD=$4 }BENCH_SCALE=$BENCH_SCALE ./$6-$3${7:+ $7}"
		if [ -n "$4" ]; then
			env LD_PRELOAD="$4" $tmo "$exe" $7 >"$tmp/out" 2>"$tmp/err"
		else
			env -u LD_PRELOAD $tmo "$exe" $7 >"$tmp/out" 2>"$tmp/err"
		fi
		st=$?
		;;
	esac
	line=$(grep '^RESULT ' "$tmp/out" | head -n 1)
	if [ "$st" -eq 0 ] && [ -n "$line" ]; then
		echo "alloc=$2 case=$5 run=$1 $line" >>"$raw"
		return 0
	fi
	if [ -n "$why" ]; then
		:
	elif [ "$st" -eq 124 ] && [ -n "$tmo" ]; then
		why="hung (killed after ${timeout_s}s)"
	elif [ "$st" -gt 128 ]; then
		why="killed by SIG$(kill -l $((st - 128)) 2>/dev/null)"
	else
		why="exit status $st"
	fi
	# the first failure of an allocator on a workload is kept in full,
	# later ones are counted
	f=$tmp/fail.$2.$5
	if ! [ -f "$f" ]; then
		echo "$2 $5" >>"$tmp/failures"
		{
			echo "$why"
			echo "cd $bindir && $repro"
			sed -n '1,5p' "$tmp/err"
		} >"$f"
	fi
	echo "$1 $why" >>"$f.runs"
	echo "FAILED alloc=$2 case=$5 run=$1 status=$st" >>"$raw"
	echo "bench: FAILED: $2 on $5: $why" >&2
	nfail=$((nfail + 1))
	return 1
}

# --- the rounds: every workload, allocators interleaved --------------------
echo "bench: $runs rounds of$cases on$allocs (scale $BENCH_SCALE)" >&2
start=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
r=1
while [ "$r" -le "$runs" ]; do
	ci=0
	while IFS=: read -r label prog args; do
		ci=$((ci + 1))
		# rotate the allocator order from workload to workload and round
		# to round, so slow drifts of a shared machine hit all alike
		rot=$(((r + ci) % nalloc))
		{ tail -n +$((rot + 1)) "$tmp/allocs"; head -n "$rot" "$tmp/allocs"; } >"$tmp/order"
		while IFS=: read -r name variant preload; do
			run_one "$r" "$name" "$variant" "$preload" "$label" "$prog" "$args"
		done <"$tmp/order"
	done <"$tmp/cases"
	echo "bench: round $r/$runs done ($(($(date +%s) - start)) s)" >&2
	r=$((r + 1))
done

# --- instructions per malloc(32)+free pair, with callgrind -----------------
: >"$tmp/callgrind"
# libosalloc turns its thread caches off when it finds itself under
# valgrind (for memcheck); cache=1 keeps them, so that the fast path counted
# is the one that runs outside valgrind.  Peers ignore the variable.
cg_options=${OSALLOC_OPTIONS:-cache=1}
count_ir() { # variant preload K
	if [ -n "$2" ]; then
		env LD_PRELOAD="$2" OSALLOC_OPTIONS="$cg_options" valgrind \
			--tool=callgrind --callgrind-out-file=/dev/null \
			"$bindir/fastpath-$1" "$3" 2>&1
	else
		env -u LD_PRELOAD OSALLOC_OPTIONS="$cg_options" valgrind \
			--tool=callgrind --callgrind-out-file=/dev/null \
			"$bindir/fastpath-$1" "$3" 2>&1
	fi | sed -n 's/.*Collected : *\([0-9][0-9]*\).*/\1/p' | tail -n 1
}
if [ "${BENCH_CALLGRIND:-1}" != 0 ]; then
	if command -v valgrind >/dev/null 2>&1; then
		echo "bench: counting fast-path instructions with callgrind" >&2
		k=100000
		while IFS=: read -r name variant preload; do
			a=$(count_ir "$variant" "$preload" $k)
			b=$(count_ir "$variant" "$preload" $((2 * k)))
			if [ -n "$a" ] && [ -n "$b" ]; then
				echo "$name $a $b $k" >>"$tmp/callgrind"
			else
				note "callgrind failed for $name"
			fi
		done <"$tmp/allocs"
	else
		note "valgrind not installed: no instruction counts (apt-get install valgrind)"
	fi
fi

# --- the report -------------------------------------------------------------
{
	echo "# libosalloc benchmark results"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -sr), $(nproc 2>/dev/null || echo ?) CPUs" \
		"($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1))," \
		"load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) at the end."
	echo "Median of $runs runs per cell, allocators interleaved within each round;" \
		"BENCH_SCALE=$BENCH_SCALE; $(($(date +%s) - start)) s in all."
	# other work on the machine (a load average near or above the number
	# of CPUs) makes the times, and above all the thread scaling, noisy
	busy=$(awk -v l="${load0%% *}" -v n="$(nproc 2>/dev/null || echo 1)" \
		'BEGIN { print (l + 0 >= n / 2) ? 1 : 0 }')
	if [ "$busy" = 1 ]; then
		echo
		echo "**Warning**: the machine was busy when the run started" \
			"(load average ${load0%% *}); timings and thread scaling are unreliable."
	fi
	echo
	cat "$tmp/allocinfo"
	if [ -s "$tmp/notes" ]; then
		echo
		sed 's/^/- note: /' "$tmp/notes"
	fi
	echo
	awk -v allocs="$allocs" -v cases="$cases" -v cgfile="$tmp/callgrind" \
		-f "$here/report.awk" "$raw"
	if [ -s "$tmp/failures" ]; then
		echo
		echo "## Failed runs"
		echo
		while read -r fa fc; do
			f=$tmp/fail.$fa.$fc
			n=$(wc -l <"$f.runs")
			echo "- $fa on $fc: $(sed -n 1p "$f") in $n of $runs runs;" \
				"reproduce: \`$(sed -n 2p "$f")\`"
			if [ "$(wc -l <"$f")" -gt 2 ]; then
				echo
				echo '  ```'
				sed -n '3,$s/^/  /p' "$f"
				echo '  ```'
			fi
		done <"$tmp/failures"
	fi
} >"$report"
cat "$report"
echo "bench: report in $report, raw results in $raw" >&2

status=0
[ "$nfail" -eq 0 ] || status=1
if [ "${BENCH_STRICT:-0}" = 1 ] && grep -q '^- \*\*missed\*\*' "$report"; then
	status=1
fi
exit $status
