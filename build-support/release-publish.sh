#!/usr/bin/env bash
# Signs and publishes a release directory that `cargo xtask release` built.
# The only code that touches signing keys, OIDC tokens and registry
# credentials: it runs cosign, crane and helm and nothing built from the
# repository, so the release workflow runs it in a job of its own that
# compiles nothing (.github/workflows/release.yml), and `cargo xtask
# release` and the tests run the very same script (tests/testenv/src/release).
#
#   release-publish.sh sign DIR
#       check DIR against its SHA256SUMS, write cosign.pub (with a key),
#       then sign SHA256SUMS, the chart and the provenance into
#       <file>.cosign.bundle
#   release-publish.sh push DIR
#       push the image index (OCI layout, tagged with the version) and the
#       chart to the registry named in DIR/release.json, check the registry
#       serves the digests the release names, and sign both there by digest;
#       prints `chart-digest sha256:…` last
#
# Environment:
#   COSIGN, CRANE, HELM   the tools (default: from PATH)
#   COSIGN_KEY            a cosign private key (its password in
#                         COSIGN_PASSWORD); unset: keyless signing with the
#                         ambient OIDC identity
#   PLAIN_HTTP=1          the registry speaks plain HTTP (one on loopback)
#   OFFLINE=1             HTTP(S) through a proxy that refuses everything but
#                         loopback: nothing may reach past this machine (the
#                         tests' runs)
set -euo pipefail

COSIGN="${COSIGN:-cosign}"
CRANE="${CRANE:-crane}"
HELM="${HELM:-helm}"

die() { echo "release-publish.sh: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: release-publish.sh sign|push DIR"
phase="$1"
dir="$2"
[ -d "$dir" ] || die "$dir is not a directory"
[ -f "$dir/release.json" ] || die "$dir has no release.json: not a release directory"

if [ "${OFFLINE:-}" = 1 ]; then
  export HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1,localhost
  export https_proxy="$HTTPS_PROXY" http_proxy="$HTTP_PROXY" no_proxy="$NO_PROXY"
fi

# One field of release.json (flat strings only; written by kseal-testenv).
field() {
  sed -n "s/^  \"$1\": \"\\([^\"]*\\)\",\\{0,1\\}\$/\\1/p" "$dir/release.json"
}

cosign_signing() {
  if [ -n "${COSIGN_KEY:-}" ]; then
    "$COSIGN" "$@" --new-bundle-format --key "$COSIGN_KEY" --tlog-upload=false
  else
    "$COSIGN" "$@" --new-bundle-format
  fi
}

case "$phase" in
  sign)
    # What is signed is what was built: every listed file matches.
    (cd "$dir" && sha256sum --check --strict --quiet SHA256SUMS) \
      || die "$dir does not match its SHA256SUMS"
    if [ -n "${COSIGN_KEY:-}" ]; then
      "$COSIGN" public-key --key "$COSIGN_KEY" > "$dir/cosign.pub"
    fi
    chart="$(field chartFile)"
    for f in SHA256SUMS "$chart" provenance.intoto.json; do
      [ -f "$dir/$f" ] || die "$dir/$f is missing"
      cosign_signing sign-blob --yes --bundle "$dir/$f.cosign.bundle" "$dir/$f" > /dev/null
      # cosign writes 0600; release files are for everyone to read.
      chmod 0644 "$dir/$f.cosign.bundle"
    done
    ;;
  push)
    version="$(field version)"
    repository="$(field imageRepository)"
    digest="$(field imageDigest)"
    charts="$(field chartRepository)"
    chart="$(field chartFile)"
    image_file="$(field imageFile)"
    for v in version repository digest charts chart image_file; do
      [ -n "${!v}" ] || die "release.json has no $v"
    done
    insecure=()
    plain=()
    allow_http=()
    if [ "${PLAIN_HTTP:-}" = 1 ]; then
      insecure=(--insecure)
      plain=(--plain-http)
      allow_http=(--allow-http-registry)
    fi
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    mkdir "$work/layout"
    tar -xf "$dir/$image_file" -C "$work/layout"
    # A version is published once: a tag that names another image stays.
    if existing="$("$CRANE" digest "${insecure[@]}" "$repository:$version" 2>/dev/null)" \
        && [ "$existing" != "$digest" ]; then
      die "$repository:$version is already $existing; the release built $digest"
    fi
    # The layout as it is: the digest served is the digest built.
    "$CRANE" push "${insecure[@]}" "$work/layout" "$repository:$version" > /dev/null
    served="$("$CRANE" digest "${insecure[@]}" "$repository:$version")"
    [ "$served" = "$digest" ] \
      || die "the registry serves $repository:$version as $served; the release built $digest"
    cosign_signing sign --yes "${allow_http[@]}" "$repository@$digest" > /dev/null

    out="$(COSIGN_PASSWORD= "$HELM" push "$dir/$chart" "$charts" "${plain[@]}" 2>&1)" \
      || die "helm push failed: $out"
    chart_digest="$(printf '%s\n' "$out" | sed -n 's/^Digest: *\(sha256:[0-9a-f]\{64\}\)$/\1/p')"
    [ -n "$chart_digest" ] || die "helm push printed no digest: $out"
    # What the registry holds is the chart file this release lists.
    chart_sha="$(sha256sum "$dir/$chart" | cut -d' ' -f1)"
    manifest="$("$CRANE" manifest "${insecure[@]}" "${charts#oci://}/kseal@$chart_digest")"
    case "$manifest" in
      *"\"sha256:$chart_sha\""*) ;;
      *) die "the chart pushed as $chart_digest is not $chart" ;;
    esac
    cosign_signing sign --yes "${allow_http[@]}" "${charts#oci://}/kseal@$chart_digest" > /dev/null
    echo "chart-digest $chart_digest"
    ;;
  *)
    die "unknown phase $phase: sign or push"
    ;;
esac
