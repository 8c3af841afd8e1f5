#!/usr/bin/env bash
# Runs a test command RUNS times in a row with every core kept busy by a CPU
# hog, and prints each run's outcome and time: how the suite is shown to pass
# on a busy machine, not only on a quiet one (tests/README.md, "Under load").
#
#   tests/under-load.sh 10 cargo test -p kseal-controller --test restart
#   tests/under-load.sh 3 cargo test --workspace --no-fail-fast
#
# HOGS (default: the number of cores) sets how many hogs run. Stops at the
# first failing run unless KEEP_GOING=1. The hogs end with the script, also
# on Ctrl-C. Each run's output goes to $LOG_DIR/run-N.log (default: a temp
# dir, printed at the start). Exit status: 0 when every run passed.
set -uo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
runs="$1"
shift
hogs="${HOGS:-$(nproc)}"
log_dir="${LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/kseal-under-load-XXXXXX")}"
mkdir -p "$log_dir"

pids=()
stop_hogs() {
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
  pids=()
}
trap 'stop_hogs; exit 130' INT TERM
trap stop_hogs EXIT
for _ in $(seq "$hogs"); do
  sh -c 'while :; do :; done' &
  pids+=($!)
done
echo "under-load: $hogs CPU hog(s), $runs run(s) of: $*; logs in $log_dir"

passed=0
failed=0
for n in $(seq "$runs"); do
  start=$(date +%s)
  if "$@" >"$log_dir/run-$n.log" 2>&1; then
    passed=$((passed + 1))
    outcome=passed
  else
    failed=$((failed + 1))
    outcome="FAILED (see $log_dir/run-$n.log)"
  fi
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "run $n: $outcome in $(($(date +%s) - start)) s (load $load)"
  if [ "$failed" -gt 0 ] && [ "${KEEP_GOING:-0}" != 1 ]; then
    break
  fi
done
echo "under-load: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
