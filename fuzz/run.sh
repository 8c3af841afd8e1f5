#!/usr/bin/env bash
# Runs kseal's fuzz targets one after another, SECONDS each (default 600).
#
#   fuzz/run.sh                 # every target, 10 minutes each
#   fuzz/run.sh 5               # every target, 5 s each (the CI smoke run)
#   fuzz/run.sh 3600 manifest   # one target, an hour
#   FUZZ_BUILD_ONLY=1 fuzz/run.sh   # build every target, run none
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --version 0.13.1 --locked`). On
# a stable toolchain rustc-bootstrap.sh (as RUSTC_WRAPPER: RUSTC_BOOTSTRAP=1
# for rustc only) lets cargo-fuzz pass its -Z flags (AddressSanitizer,
# SanitizerCoverage). New inputs go to fuzz/corpus/<target>
# (not committed), crashes to fuzz/artifacts/<target>; fuzz/seeds/<target> is
# read as a second corpus. The runs are niced: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sealed_value key_files manifest config http_body key_backup)
export RUSTC_WRAPPER="$PWD/rustc-bootstrap.sh"
unset RUSTC_BOOTSTRAP
export CARGO_TARGET_DIR="${KSEAL_FUZZ_TARGET_DIR:-$PWD/target}"
nice -n 10 cargo fuzz build -O
# FUZZ_BUILD_ONLY=1: build, run nothing (.ci/run builds ahead of the run).
[ -z "${FUZZ_BUILD_ONLY:-}" ] || exit 0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  log="artifacts/$target/last-run.log"
  echo "== fuzz $target for ${secs}s (log: fuzz/$log)"
  status=0
  nice -n 10 cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="artifacts/$target/" > "$log" 2>&1 || status=$?
  # libFuzzer's summary: executions, speed, coverage, corpus, peak memory.
  grep -E '^(Done |stat::)|DONE ' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed (exit $status); inputs in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
