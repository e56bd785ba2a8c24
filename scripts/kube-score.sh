#!/usr/bin/env bash
# Build kube-score (a third-party checker of Kubernetes objects) from its Go module, once per
# machine, and print the path of the binary.
#
#   scripts/kube-score.sh                     build if needed, print the binary's path
#   "$(scripts/kube-score.sh)" score -o ci manifests.yaml
#
# Why a build: no machine here can download release binaries, but the module proxy serves the
# source. The binary comes from the wrapper module scripts/kube-score/, whose go.mod and go.sum
# pin github.com/zegl/kube-score and every dependency by checksum (-mod=readonly).
# tests/live/test_hardened_workloads.py runs it on the prod stack's Kubernetes objects.
#
# The result lives outside the repository, in ${HYBRID_INFRA_CACHE:-~/.cache/hybrid-infra},
# keyed by a hash of the wrapper module and this script: a second run returns in milliseconds.
# Cold (empty module and build caches), on 2 cores: about 3 min.
set -euo pipefail
here="$(cd "$(dirname "$0")/kube-score" && pwd)"
version="$(sed -n 's|^require github.com/zegl/kube-score \(v[0-9.]*\)$|\1|p' "$here/go.mod")"

key="$(cat "$here/go.mod" "$here/go.sum" "$here/tools.go" "$0" | sha256sum | cut -c1-12)"
cache="${HYBRID_INFRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hybrid-infra}"
dir="$cache/kube-score-$version-$key"
if [ -f "$dir/.complete" ]; then
  echo "$dir/kube-score"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "kube-score: go not found; install Go 1.26 or newer to build it" >&2
  exit 1
fi
# One build at a time per cache: a second caller waits, then finds the first one's result.
mkdir -p "$cache"
exec 9>"$cache/kube-score.lock"
flock 9
if [ -f "$dir/.complete" ]; then
  echo "$dir/kube-score"
  exit 0
fi

started=$SECONDS
staging="$dir.partial"
rm -rf "$staging"
mkdir -p "$staging"
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
export CGO_ENABLED=0
echo "kube-score: building $version into $dir" >&2
(cd "$here" && go build -ldflags "-s -w -X main.version=$version" -o "$staging/kube-score" \
  github.com/zegl/kube-score/cmd/kube-score)
touch "$staging/.complete"
rm -rf "$dir"
mv "$staging" "$dir"
echo "kube-score: done in $((SECONDS - started)) s: $("$dir/kube-score" version)" >&2
echo "$dir/kube-score"
