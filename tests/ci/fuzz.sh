#!/bin/bash
# tests/ci/fuzz.sh - builds the libFuzzer target tests/fuzz/fuzz_ops.c with
# clang -fsanitize=fuzzer,address,undefined against the library sources,
# replays the seed corpus (tests/fuzz/corpus/), then runs a fixed budget of
# $FUZZ_RUNS executions (default 200000), split over $FUZZ_JOBS processes
# (default: one per core) with -seed=1, -seed=2, ...  Fails on any finding;
# prints the executions run and the executions per second.  A short run
# without sanitizers measures the raw speed.
#
#     bash tests/ci/fuzz.sh            (from anywhere)
#     FUZZ_RUNS=1000000 bash tests/ci/fuzz.sh
#
# The corpus in the tree is only read: libFuzzer adds what it finds to
# copies in the work directory ($OSALLOC_CI_WORK or /tmp).  A crashing
# input is left there as crash-*; replay it with
#     $WORK/fuzz_ops crash-...
#
# Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).

. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RUNS=${FUZZ_RUNS:-200000}
MAX_LEN=${FUZZ_MAX_LEN:-512}
JOBS=${FUZZ_JOBS:-$(nproc)}
need clang

WORK=$(ci_workdir fuzz)
mapfile -t SOURCES < <(lib_sources)
CFLAGS=(-std=gnu11 -g -O2 -fno-omit-frame-pointer -I"$TOP/include" -I"$TOP/lib"
	-Wall -Wextra)

log "fuzz: building $WORK/fuzz_ops (clang -fsanitize=fuzzer,address,undefined)"
quiet "$WORK/build.log" clang "${CFLAGS[@]}" \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	-fsanitize-coverage-ignorelist="$TOP/tests/fuzz/coverage-ignore.txt" \
	"$TOP/tests/fuzz/fuzz_ops.c" "${SOURCES[@]}" -o "$WORK/fuzz_ops"
quiet "$WORK/build-fast.log" clang "${CFLAGS[@]}" -fsanitize=fuzzer \
	-fsanitize-coverage-ignorelist="$TOP/tests/fuzz/coverage-ignore.txt" \
	"$TOP/tests/fuzz/fuzz_ops.c" "${SOURCES[@]}" -o "$WORK/fuzz_ops_fast"

seeds=$(find "$TOP/tests/fuzz/corpus" -type f | wc -l)

# UBSan: stop at the first report, with a stack.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1

log "fuzz: replaying the $seeds seed inputs"
quiet "$WORK/replay.log" "$WORK/fuzz_ops" -runs=0 \
	-artifact_prefix="$WORK/" "$TOP/tests/fuzz/corpus"

# The budget is split over JOBS processes with seeds 1..JOBS (one per
# core), each fuzzing its own copy of the seed corpus.
run_job() { # run_job SEED RUNS BINARY LOG
	local dir=$WORK/corpus-$1-$(basename "$3")
	mkdir -p "$dir"
	cp "$TOP"/tests/fuzz/corpus/* "$dir/"
	"$WORK/$3" -seed="$1" -runs="$2" -max_len="$MAX_LEN" \
		-print_final_stats=1 -artifact_prefix="$WORK/" "$dir" >"$4" 2>&1
}

per_job=$(((RUNS + JOBS - 1) / JOBS))
log "fuzz: $JOBS x (-seed=N -runs=$per_job -max_len=$MAX_LEN), N = 1..$JOBS"
start=$(date +%s.%N)
pids=()
for ((j = 1; j <= JOBS; j++)); do
	run_job "$j" "$per_job" fuzz_ops "$WORK/fuzz-$j.log" &
	pids+=($!)
done
failed=0
for ((j = 1; j <= JOBS; j++)); do
	if ! wait "${pids[$((j - 1))]}"; then
		log "fuzz: FINDING in job $j; end of $WORK/fuzz-$j.log:"
		tail -n 60 "$WORK/fuzz-$j.log"
		failed=1
	fi
done
end=$(date +%s.%N)
if [ "$failed" != 0 ]; then
	ls "$WORK"/crash-* "$WORK"/leak-* "$WORK"/timeout-* 2>/dev/null || true
	exit 1
fi
execs=0
for ((j = 1; j <= JOBS; j++)); do
	n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/fuzz-$j.log")
	execs=$((execs + ${n:-0}))
done
if [ "$execs" -lt "$RUNS" ]; then
	log "fuzz: only $execs of $RUNS executions ran"
	exit 1
fi
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
rate=$(awk -v n="$execs" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
cov=$(grep -E '^#[0-9]+.*cov:' "$WORK/fuzz-1.log" | tail -n 1 |
	sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/cov \1, ft \2, corpus \3/')
log "fuzz: $execs executions in $secs s = $rate exec/s over $JOBS jobs (ASan+UBSan), 0 findings; job 1: $cov"

# Raw speed without sanitizers (information only).
fast_runs=$((RUNS / 10))
if ! run_job 1 "$fast_runs" fuzz_ops_fast "$WORK/fuzz-fast.log"; then
	log "fuzz: FINDING in the build without sanitizers"
	tail -n 40 "$WORK/fuzz-fast.log"
	exit 1
fi
fast=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$WORK/fuzz-fast.log")
log "fuzz: without sanitizers, one job: ${fast:-?} exec/s ($fast_runs runs)"
log "fuzz: OK: $execs executions in $secs s, $rate exec/s over $JOBS jobs with ASan+UBSan, ${fast:-?} exec/s without sanitizers (one job), 0 findings (logs in $WORK)"
