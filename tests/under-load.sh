#!/usr/bin/env bash
# Runs a test command RUNS times in a row with every core kept busy by a CPU
# hog, and prints each run's outcome and time: how a test is shown to pass on
# a busy machine, not only on a quiet one (tests/README.md, "Tests that pass
# on a busy machine").
#
#   tests/under-load.sh 10 cargo test -p kseal-controller --test restart
#   tests/under-load.sh 3 cargo test --workspace --no-fail-fast
#
# HOGS: how many hogs (default: the number of cores). KEEP_GOING=1: go on
# after a failed run. LOG_DIR: where run-N.log goes (default: a new temp
# dir). CI defaults to true, so end-to-end tests fail instead of skipping.
# Build first (`cargo test --no-run`), or the first run's time includes it.
# Exit status: 0 when all RUNS passed, 1 otherwise, 2 on a usage error.
set -uo pipefail
usage() {
  echo "usage: tests/under-load.sh RUNS COMMAND [ARG…]" >&2
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ $# -ge 2 ] || usage
runs="$1"
shift
hogs="${HOGS:-$(nproc)}"
case "$runs" in '' | *[!0-9]*) usage ;; esac
case "$hogs" in '' | *[!0-9]*) usage ;; esac
[ "$runs" -ge 1 ] || usage
export CI="${CI:-true}"
log_dir="${LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/kseal-under-load-XXXXXX")}"
mkdir -p "$log_dir"

# The hogs die with this script even when it is SIGKILLed (the kernel's
# parent-death signal, where util-linux' setpriv is there).
hog=(sh -c 'while :; do :; done')
if setpriv --pdeathsig KILL -- true 2>/dev/null; then
  hog=(setpriv --pdeathsig KILL -- "${hog[@]}")
fi
pids=()
child=""
stop() {
  [ -n "$child" ] && kill "$child" 2>/dev/null
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null
  pids=()
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT
for _ in $(seq "$hogs"); do
  "${hog[@]}" &
  pids+=($!)
done
echo "under-load: $hogs CPU hog(s), $runs run(s) of: $*; logs in $log_dir"

passed=0
failed=0
for n in $(seq "$runs"); do
  start=$(date +%s)
  # In the background, so a signal to this script is handled at once.
  "$@" >"$log_dir/run-$n.log" 2>&1 &
  child=$!
  if wait "$child"; then
    passed=$((passed + 1))
    outcome=passed
  else
    failed=$((failed + 1))
    outcome="FAILED (see $log_dir/run-$n.log)"
  fi
  child=""
  # The 1-minute load average as the run ended.
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "run $n: $outcome in $(($(date +%s) - start)) s (load $load)"
  if [ "$failed" -gt 0 ] && [ "${KEEP_GOING:-0}" != 1 ]; then
    echo "under-load: stopped after run $n of $runs"
    break
  fi
done
echo "under-load: $passed passed, $failed failed"
[ "$passed" -eq "$runs" ]
