#!/bin/bash
# tests/ci/valgrind.sh - the test programs of "make check" under valgrind's
# memcheck, in a copy of the tree: every Check program runs as
#     valgrind --error-exitcode=99 --trace-children=no ... PROGRAM
# (Check forks every case; valgrind follows forks, so each case is checked
# and an error makes its process exit 99, which fails the case).  Programs
# that re-execute themselves for death tests run those children natively
# (--trace-children=no).  Test scripts (*.sh) run as usual.  memcheck's
# logs are kept per process; any "ERROR SUMMARY" other than 0 errors fails.
# libosalloc is built with <valgrind/valgrind.h>, so memcheck sees its
# blocks as heap blocks.
#
#     bash tests/ci/valgrind.sh
#
# Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).

. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need valgrind autoreconf
WORK=$(ci_workdir valgrind)
tree=$WORK/libosalloc
copy_tree "$tree"
cd "$tree"
quiet "$tree/autoreconf.log" autoreconf -fi
quiet "$tree/configure.log" ./configure CFLAGS="-g -O1"
grep -q '^#define HAVE_VALGRIND_VALGRIND_H 1' config.h || {
	log "valgrind: <valgrind/valgrind.h> not found by configure (install valgrind)"
	exit 1
}

mkdir -p "$WORK/vglogs"
cat >"$WORK/vg-run" <<EOF
#!/bin/sh
exec valgrind --tool=memcheck --error-exitcode=99 --trace-children=no \\
	--child-silent-after-fork=no --leak-check=no --num-callers=30 \\
	--log-file="$WORK/vglogs/\$(basename "\$1").%p.log" "\$@"
EOF
chmod +x "$WORK/vg-run"

log "valgrind: make check with LOG_COMPILER=valgrind (memcheck)"
export CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-20}
# The thread stress of make check, shortened (valgrind serialises threads).
export OSALLOC_TEST_STRESS_OPS=${OSALLOC_TEST_STRESS_OPS:-5000}
rc=0
make -j"$(nproc)" check LOG_COMPILER="$WORK/vg-run" >"$tree/check.log" 2>&1 || rc=$?
grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' "$tree/check.log" | sed 's/^/  /'
# The Check cases of all programs, and the cases (or parts of cases) that
# test what valgrind does not emulate (TST_SKIP_UNDER_VALGRIND's notes).
cases=$(grep -hoE '[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' \
	"$tree"/tests/*.log "$tree"/tests/*/*.log 2>/dev/null |
	awk '{ split($0, a, /[:,] */); c += a[3]; f += a[5]; e += a[7] }
		END { printf "%d, failures %d, errors %d", c, f, e }')
skipped=$(cat "$tree"/tests/*.log 2>/dev/null | grep -c 'skipped under valgrind:' || true)
log "  Check cases: $cases ($skipped skipped in whole or part under valgrind)"
nlogs=$(find "$WORK/vglogs" -name '*.log' | wc -l)
nerrors=$(cat "$WORK"/vglogs/*.log 2>/dev/null |
	sed -n 's/.*ERROR SUMMARY: \([0-9][0-9]*\) errors.*/\1/p' |
	awk '{ n += $1 } END { print n + 0 }')
bad=$(grep -L 'ERROR SUMMARY: 0 errors' "$WORK"/vglogs/*.log 2>/dev/null |
	xargs -r grep -l 'ERROR SUMMARY' || true)
if [ -n "$bad" ]; then
	log "valgrind: memcheck found errors:"
	for f in $bad; do
		log "---- $f"
		head -n 60 "$f"
	done
	rc=1
fi
if [ "$nerrors" != 0 ]; then
	log "valgrind: $nerrors memcheck errors in $nlogs processes"
	rc=1
fi
if [ "$rc" != 0 ]; then
	log "valgrind: FAILED; failing tests:"
	grep -E '^(FAIL|ERROR):' "$tree/check.log" || tail -n 30 "$tree/check.log"
	exit 1
fi
log "valgrind: OK: make check passes under memcheck: Check cases $cases ($skipped skipped in whole or part); $nlogs processes checked, $nerrors memcheck errors (logs in $WORK)"
