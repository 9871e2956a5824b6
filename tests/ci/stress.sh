#!/bin/bash
# tests/ci/stress.sh - the thread stress test (tests/stress/stress.c) at full
# size, and again under ThreadSanitizer:
#   - gcc -O2: 8 threads x 1,000,000 operations (cross-thread frees through
#     a shared exchange array, content checks), then 40 generations of
#     thread churn;
#   - clang -fsanitize=thread: 8 threads x 100,000 operations and 10
#     generations by default (TSan runs some 10 times slower); .ci/run
#     gives TSAN_OPS=1000000, the full size.  Any report fails.
# Both compile the library sources directly with the test program.
#
#     bash tests/ci/stress.sh
#     STRESS_OPS=2000000 TSAN_OPS=200000 bash tests/ci/stress.sh
#
# Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).

. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

THREADS=${STRESS_THREADS:-8}
OPS=${STRESS_OPS:-1000000}
GENERATIONS=${STRESS_GENERATIONS:-40}
TSAN_OPS=${TSAN_OPS:-100000}
TSAN_GENERATIONS=${TSAN_GENERATIONS:-10}
need gcc clang

WORK=$(ci_workdir stress)
mapfile -t SOURCES < <(lib_sources)
CFLAGS=(-std=gnu11 -g -pthread -I"$TOP/include" -I"$TOP/lib" -Wall -Wextra)

log "stress: building (gcc -O2, and clang -fsanitize=thread)"
quiet "$WORK/build.log" gcc "${CFLAGS[@]}" -O2 \
	"$TOP/tests/stress/stress.c" "${SOURCES[@]}" -o "$WORK/stress"
quiet "$WORK/build-tsan.log" clang "${CFLAGS[@]}" -O1 -fsanitize=thread \
	"$TOP/tests/stress/stress.c" "${SOURCES[@]}" -o "$WORK/stress-tsan"

log "stress: $THREADS threads x $OPS operations, $GENERATIONS generations of churn"
start=$SECONDS
if ! "$WORK/stress" "$THREADS" "$OPS" "$GENERATIONS" >"$WORK/stress.log" 2>&1; then
	log "stress: FAILED; end of $WORK/stress.log:"
	tail -n 30 "$WORK/stress.log"
	exit 1
fi
sed 's/^/  /' "$WORK/stress.log"
plain_secs=$((SECONDS - start))

log "stress: ThreadSanitizer, $THREADS threads x $TSAN_OPS operations, $TSAN_GENERATIONS generations"
rc=0
start=$SECONDS
TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1" \
	"$WORK/stress-tsan" "$THREADS" "$TSAN_OPS" "$TSAN_GENERATIONS" \
	>"$WORK/stress-tsan.log" 2>&1 || rc=$?
if [ "$rc" != 0 ] || grep -q 'WARNING: ThreadSanitizer' "$WORK/stress-tsan.log"; then
	log "stress: ThreadSanitizer run FAILED (exit $rc); $WORK/stress-tsan.log:"
	head -n 80 "$WORK/stress-tsan.log"
	exit 1
fi
sed 's/^/  /' "$WORK/stress-tsan.log"
tsan_secs=$((SECONDS - start))
total() { sed -n 's/^stress: OK, \([0-9]*\) operations.*/\1/p' "$1"; }
log "stress: OK: $THREADS threads x $OPS operations with cross-thread frees, $(total "$WORK/stress.log") operations with the churn in ${plain_secs} s; under ThreadSanitizer $THREADS x $TSAN_OPS, $(total "$WORK/stress-tsan.log") operations in ${tsan_secs} s, no report (logs in $WORK)"
