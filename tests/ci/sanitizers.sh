#!/bin/bash
# tests/ci/sanitizers.sh - the whole test suite ("make check") in builds with
# AddressSanitizer and with UndefinedBehaviorSanitizer (clang,
# ./configure --enable-sanitizers=LIST), each in a copy of the tree.
#
#     bash tests/ci/sanitizers.sh                 address, then undefined
#     bash tests/ci/sanitizers.sh address         one of them
#
# Under ASan the C library's malloc is the sanitizer's; libosalloc's brk
# heap is unaffected (ASan intercepts malloc, not sbrk).  Tests that lower
# RLIMIT_AS/RLIMIT_DATA skip themselves in sanitizer builds (the shadow
# memory would not fit).  Any sanitizer report fails the test that made it
# (-fno-sanitize-recover=all, halt_on_error).
#
# Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).

. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

need clang autoreconf
KINDS=("$@")
[ ${#KINDS[@]} -gt 0 ] || KINDS=(address undefined)
WORK=$(ci_workdir sanitizers)
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:halt_on_error=1:detect_leaks=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# Check's per-case timeouts: sanitizers slow everything down.
export CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4}

failed=0
for kind in "${KINDS[@]}"; do
	tree=$WORK/$kind/libosalloc
	copy_tree "$tree"
	log "sanitizers: $kind: configure CC=clang --enable-sanitizers=$kind; make check"
	(
		cd "$tree"
		quiet "$tree/autoreconf.log" autoreconf -fi
		quiet "$tree/configure.log" ./configure CC=clang \
			--enable-sanitizers="$kind" --enable-werror
		rc=0
		make -j"$(nproc)" check >"$tree/check.log" 2>&1 || rc=$?
		grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' "$tree/check.log" |
			sed "s/^/  $kind: /"
		grep -hoE '[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' \
			$(find "$tree/tests" -name '*.log') 2>/dev/null |
			awk -v k="$kind" '{ split($0, a, /[:,] */); c += a[3]; f += a[5]; e += a[7] }
				END { printf "  %s: Check cases: %d, failures %d, errors %d\n", k, c, f, e }' |
			tee "$WORK/$kind.summary"
		if [ "$rc" != 0 ]; then
			log "sanitizers: $kind: make check FAILED; failing tests:"
			grep -E '^(FAIL|ERROR):' "$tree/check.log" || tail -n 30 "$tree/check.log"
			[ -f "$tree/test-suite.log" ] && head -n 200 "$tree/test-suite.log"
			exit 1
		fi
		if grep -rlE 'ERROR: AddressSanitizer|runtime error:' "$tree/tests" \
			--include='*.log' >"$tree/reports" 2>/dev/null; then
			log "sanitizers: $kind: sanitizer reports in passing tests:"
			cat "$tree/reports"
			exit 1
		fi
	) || failed=1
done
if [ "$failed" != 0 ]; then
	log "sanitizers: FAILED (logs in $WORK)"
	exit 1
fi
line=
for kind in "${KINDS[@]}"; do
	tests=$(sed -n 's/^# PASS: *//p' "$WORK/$kind/libosalloc/check.log")
	skips=$(sed -n 's/^# SKIP: *//p' "$WORK/$kind/libosalloc/check.log")
	line="$line; $(sed 's/^ *//' "$WORK/$kind.summary") ($tests tests pass, $skips skip)"
done
log "sanitizers: OK: make check under${line#;} (logs in $WORK)"
