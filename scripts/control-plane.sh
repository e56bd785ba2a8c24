#!/usr/bin/env bash
# Build a local Kubernetes control plane and the Pulumi kubernetes provider from their Go
# modules, once per machine, and print the directory that holds them.
#
#   scripts/control-plane.sh           build if needed, print the bin directory
#   scripts/control-plane.sh --check   print the bin directory if it is built, else exit 1
#
# Why a build: no machine here can download release binaries, but the module proxy serves the
# sources. Each binary comes from a wrapper module under scripts/control-plane/ whose go.mod and
# go.sum pin every dependency by checksum (-mod=readonly):
#   kubernetes/           k8s.io/kubernetes v1.34.3: kube-apiserver, kube-controller-manager and
#                         kube-scheduler, in one `go build` so the packages they share compile
#                         once. Its own
#                         go.mod replaces 31 staging modules with ./staging; the wrapper points
#                         each at the same module's v0.34.3 release instead.
#   kwok/                 sigs.k8s.io/kwok v0.8.0 (plays the kubelet: fake nodes, Pods that
#                         become Running and Ready). Its own module: it needs a newer k8s.io/api
#                         than the provider accepts.
#   kubernetes-provider/  github.com/pulumi/pulumi-kubernetes/provider/v4 (a pseudo-version) with
#                         a small main of ours; its sdk/v4 replace points at v4.32.0 and the
#                         Pulumi sdk/v3 at the v3.215.0 its pkg/v3 needs. The schema it embeds
#                         is written from the module's own schema.json, as its generate step does.
#   prometheus-operator/  nothing compiled: the module ships the operator's CRDs (PrometheusRule,
#                         PodMonitor), which devenv/kube.py installs on the clusters that say
#                         they run the operator.
# etcd comes from Debian (`etcd-server`, scripts/system-packages.sh).
#
# The result lives outside the repository, in ${HYBRID_INFRA_CACHE:-~/.cache/hybrid-infra},
# keyed by a hash of the wrapper modules and this script: a second run returns in milliseconds.
# Cold, on 2 cores: about 35 min (most of it kube-apiserver and the provider); the three builds
# run at once so that one's link overlaps another's compile.
set -euo pipefail
here="$(cd "$(dirname "$0")/control-plane" && pwd)"
# The provider reports the version of the Python SDK the program uses (uv.lock), so the engine's
# plugin and SDK agree on it.
provider_version="$(sed -n '/^name = "pulumi-kubernetes"$/{n;s/^version = "\(.*\)"$/\1/p;}' \
  "$here/../../uv.lock")"

key="$(cat "$here"/*/go.mod "$here"/*/go.sum "$here"/kubernetes-provider/main.go "$0" \
  <(echo "$provider_version") | sha256sum | cut -c1-12)"
cache="${HYBRID_INFRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hybrid-infra}"
bin="$cache/control-plane-$key/bin"
if [ -f "$bin/.complete" ]; then
  echo "$bin"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "control-plane: not built yet (run scripts/control-plane.sh)" >&2
  exit 1
fi
# One build at a time per cache: a second caller waits, then finds the first one's result.
mkdir -p "$cache"
exec 9>"$cache/control-plane.lock"
flock 9
if [ -f "$bin/.complete" ]; then
  echo "$bin"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "control-plane: go not found; install Go 1.26 or newer to build the control plane" >&2
  exit 1
fi

started=$SECONDS
staging="$bin.partial"
rm -rf "$staging"
mkdir -p "$staging"
logs="$staging/logs"
mkdir -p "$logs"
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
export CGO_ENABLED=0
ldflags="-s -w"
echo "control-plane: building into $bin (first time on this machine: ~35 min on 2 cores)" >&2

build_kubernetes() {
  (cd "$here/kubernetes" && go build -ldflags "$ldflags" -o "$staging/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler)
}

build_kwok() {
  (cd "$here/kwok" && go build -ldflags "$ldflags" -o "$staging/kwok" sigs.k8s.io/kwok/cmd/kwok)
  # kwok acts only through Stages: the ones its module ships for nodes that become Ready and
  # keep their lease, and Pods that are created, become Ready and are deleted.
  local stages
  stages="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
  mkdir -p "$staging/kwok-stages"
  install -m 0644 "$stages"/node/fast/node-initialize.yaml \
    "$stages"/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    "$stages"/pod/general/pod-{create,init-container-running,init-container-completed,ready,complete,delete}.yaml \
    "$staging/kwok-stages/"
}

build_provider() {
  # A copy of the wrapper, so the generated schema files never land in the repository.
  local work
  work="$(mktemp -d)"
  cp "$here/kubernetes-provider/go.mod" "$here/kubernetes-provider/go.sum" \
    "$here/kubernetes-provider/main.go" "$work/"
  (cd "$work" && go mod download github.com/pulumi/pulumi-kubernetes/provider/v4)
  local module
  module="$(cd "$work" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)"
  python3 - "$module/cmd/pulumi-resource-kubernetes" "$work" "$provider_version" <<'EOF'
import json, sys
source, target, version = sys.argv[1:]
schema = json.load(open(f"{source}/schema.json"))
schema["version"] = version
json.dump(schema, open(f"{target}/schema-embed.json", "w"), separators=(",", ":"))
mapping = json.load(open(f"{source}/terraform-mapping.json"))
json.dump(mapping, open(f"{target}/terraform-mapping-embed.json", "w"), separators=(",", ":"))
EOF
  (cd "$work" && go build \
    -ldflags "$ldflags -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$provider_version" \
    -o "$staging/pulumi-resource-kubernetes" .)
  rm -rf "$work"
}

install_crds() {
  local module
  module="$(cd "$here/prometheus-operator" && go mod download -json \
    github.com/prometheus-operator/prometheus-operator | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  mkdir -p "$staging/crds"
  install -m 0644 "$module"/example/prometheus-operator-crd/monitoring.coreos.com_{prometheusrules,podmonitors}.yaml \
    "$staging/crds/"
}
install_crds

pids=()
for part in kubernetes kwok provider; do
  ( "build_$part" >"$logs/$part.log" 2>&1 && echo "control-plane: $part built at $((SECONDS - started)) s" >&2 ) &
  pids+=("$!")
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
if [ "$failed" -ne 0 ]; then
  for log in "$logs"/*.log; do
    echo "control-plane: --- $(basename "$log")" >&2
    tail -n 20 "$log" >&2
  done
  echo "control-plane: build failed; the logs above are in $logs" >&2
  exit 1
fi

touch "$staging/.complete"
rm -rf "$bin"
mv "$staging" "$bin"
echo "control-plane: done in $((SECONDS - started)) s" >&2
echo "$bin"
