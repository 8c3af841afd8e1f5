#!/usr/bin/env bash
# Instructions per operation (seal, unseal, re-wrap of one value; parsing a
# 1,000-document manifest), counted by callgrind: unlike wall-clock time
# they do not depend on the machine's load, so before/after comparisons on
# a busy shared machine stay exact.
#
#   benches/callgrind.sh [OPS_BINARY]
#
# Without an argument it builds `cargo bench -p kseal-shared --bench ops`.
# Each operation runs twice, with 0 and N iterations; the difference / N is
# the cost of one operation (setup excluded), each count the least of 3
# runs. Output: a Markdown table.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
ops=${1:-}
if [[ -z $ops ]]; then
    ops=$(cargo bench --manifest-path "$root/Cargo.toml" -p kseal-shared --bench ops --no-run 2>&1 |
        sed -n 's/.*Executable benches\/ops.rs (\(.*\))/\1/p' | tail -n1)
    [[ $ops = /* ]] || ops=$root/$ops
fi

# The least of 3 runs: some builds (e.g. unsealing through the age crate's
# general reader) vary by up to ~40% between runs with fresh random keys.
instructions() { # operation count
    for _ in 1 2 3; do
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$ops" "$1" "$2" 2>&1 |
            sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
    done | sort -n | head -n1
}

echo "| operation | iterations | instructions per operation |"
echo "|---|---:|---:|"
for op in seal/32B seal/1KiB seal/64KiB unseal/32B unseal/1KiB unseal/64KiB \
    unseal/32B/age-identity rewrap manifest/1000-docs; do
    n=200
    [[ $op = manifest/* ]] && n=3
    [[ $op = */64KiB ]] && n=50
    base=$(instructions "$op" 0)
    total=$(instructions "$op" "$n")
    echo "| $op | $n | $(((total - base) / n)) |"
done
