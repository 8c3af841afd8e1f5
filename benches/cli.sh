#!/usr/bin/env bash
# Whole-process timings of the kseal CLI with hyperfine (Debian: apt-get
# install hyperfine), release build:
#   1. `kseal seal` of one Secret (5 values)             target < 20 ms
#   2. `kseal seal` of a file of 1,000 Secrets (5,000 values)
#   3. `kseal rewrap --in-place` of a tree of 1,000 files × 5 values
#      (5,000 values), reset before every run with --prepare
#   4. side by side with Bitnami: `kseal seal -R FILE` against
#      `kubeseal --cert FILE` (v0.36.6, built with `go install` and cached in
#      ~/.cache/kseal/bin/kubeseal-v0.36.6/ as cli/tests/migrate.rs does;
#      KUBESEAL=/path overrides) for the same 1 and 1,000 Secrets; the
#      certificate is an RSA-4096 self-signed one as Bitnami's controller
#      makes (openssl). Skipped with a note when Go or openssl is missing.
#
#   benches/cli.sh [OUT_DIR]         (default: target/bench-cli)
#
# KSEAL=/path/to/kseal measures another build (e.g. an older commit);
# otherwise `cargo build --release -p kseal-cli` runs first. RUNS and
# WARMUP override hyperfine's run counts. Results: OUT_DIR/*.json (hyperfine
# --export-json) and OUT_DIR/*.md; the machine load is printed before each.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/bench-cli}
runs=${RUNS:-30}
warmup=${WARMUP:-3}
if [[ -z ${KSEAL:-} ]]; then
    cargo build --release --quiet -p kseal-cli --manifest-path "$root/Cargo.toml"
    target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    KSEAL=$target/release/kseal
fi
KSEAL=$(realpath "$KSEAL")
mkdir -p "$out"
out=$(realpath "$out")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# Two identities: values are sealed to the first and re-wrapped to the second.
"$KSEAL" keygen -o id1.txt 2>/dev/null
"$KSEAL" keygen -o id2.txt 2>/dev/null
recipient() { grep -o 'age1[0-9a-z]*' "$1" | head -n1; }
r1=$(recipient id1.txt)
r2=$(recipient id2.txt)
[[ -n $r1 && -n $r2 ]] || { echo "cannot read the recipients of the generated identities" >&2; exit 1; }

# A Secret with 5 values of 32 bytes (base64 in `data`).
secret() { # name
    printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: bench\ntype: Opaque\ndata:\n' "$1"
    for k in 0 1 2 3 4; do
        printf '  key%s: %s\n' "$k" "$(printf '%-32s' "$1-value-$k" | tr ' ' x | base64 -w0)"
    done
}
secret app-0 > one.yaml
for i in $(seq 0 999); do secret "app-$i"; done > many.yaml
# The re-wrap tree: 1,000 SealedSecret files of 5 values each, in 10 dirs.
mkdir -p plain tree.orig
for i in $(seq 0 999); do
    d=tree.orig/team-$((i % 10))
    mkdir -p "$d"
    secret "app-$i" > plain/app-$i.yaml
    "$KSEAL" seal -r "$r1" -f plain/app-$i.yaml -o "$d/app-$i.yaml"
done
values=$(grep -c 'key[0-4]: ' many.yaml)
echo "kseal: $KSEAL ($("$KSEAL" --version))" >&2
echo "inputs: one.yaml (5 values), many.yaml ($values values), tree.orig ($(find tree.orig -name '*.yaml' | wc -l) files)" >&2

bench() { # name, hyperfine arguments…
    local name=$1
    shift
    echo "== $name; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    hyperfine --style basic --warmup "$warmup" --runs "$runs" \
        --export-json "$out/$name.json" --export-markdown "$out/$name.md" "$@"
}

bench seal-one -N "$KSEAL seal -r $r1 -f one.yaml"

# Side by side with kubeseal: both read their public key from a file.
kubeseal=${KUBESEAL:-}
if [[ -z $kubeseal ]]; then
    cache=${KSEAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kseal}
    kubeseal=$cache/bin/kubeseal-v0.36.6/kubeseal
    if [[ ! -x $kubeseal ]] && command -v go >/dev/null; then
        mkdir -p "$cache/bin/.kubeseal-tmp-$$"
        GOBIN=$cache/bin/.kubeseal-tmp-$$ GOTOOLCHAIN=local CGO_ENABLED=0 \
            go install github.com/bitnami-labs/sealed-secrets/cmd/kubeseal@v0.36.6
        mv "$cache/bin/.kubeseal-tmp-$$" "$cache/bin/kubeseal-v0.36.6"
    fi
fi
if [[ -x $kubeseal ]] && command -v openssl >/dev/null; then
    openssl req -x509 -newkey rsa:4096 -nodes -keyout bitnami.key -out bitnami.crt \
        -subj /CN=sealed-secret/O=sealed-secret -days 3650 2>/dev/null
    echo "$r1" > cluster.pub
    export HOME=$work KUBECONFIG=
    bench kubeseal-one -N "$kubeseal --cert bitnami.crt -f one.yaml -o yaml"
    bench seal-one-R -N "$KSEAL seal -R cluster.pub -f one.yaml"
    bench kubeseal-1000 -N "$kubeseal --cert bitnami.crt -f many.yaml -o yaml"
    bench seal-1000-R -N "$KSEAL seal -R cluster.pub -f many.yaml"
else
    echo "== skipped: kubeseal side by side (no kubeseal at $kubeseal, or no openssl)" >&2
fi
bench seal-1000 -N "$KSEAL seal -r $r1 -f many.yaml"
bench rewrap-5000 --prepare "rm -rf tree && cp -r tree.orig tree" \
    "$KSEAL rewrap -i id1.txt -r $r2 --in-place tree"
echo "== done; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
